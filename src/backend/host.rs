//! What sessions share on the host: the configuration a setup derives from a session's
//! column sums (every backend, the GPU's included), and the f64 descent state of the
//! sessions whose optimizer runs on the host (reference, CPU, data-parallel).

use rayon::prelude::*;

use crate::data::Dataset;
use crate::descent::{ClassWeights, Configured, RowSet, Setup, Snapshot, Split, Step};
use crate::error::{Error, Result};
use crate::model::Model;
use crate::optim::Standardization;
use crate::params::Params;
use crate::sparse::SparseDataset;

/// What `setup` derives from a session's training rows, through its
/// [`Session::column_sums`](super::Session::column_sums) alone (`sums`, called once, or twice when standardizing): the
/// training rows' means and standard deviations, the class weights, and the row counts
/// (`rows` in all). The session must have fixed `setup.split` already, and weigh every
/// class 1 while it sums.
pub(crate) fn configuration(
    setup: &Setup,
    features: usize,
    outputs: usize,
    rows: u64,
    sums: &mut dyn FnMut(&[f64]) -> Result<Vec<f64>>,
) -> Result<Configured> {
    let (d, slots) = (features, outputs.max(2));
    let first = sums(&vec![0.0; d])?;
    let training = first[2 * d + slots];
    if training == 0.0 {
        return Err(Error::option(
            "validation fraction",
            setup.split.map_or(0.0, |s| s.fraction),
            "leaves no training rows",
        ));
    }
    let standardization = if setup.standardize {
        let mean: Vec<f64> = first[..d].iter().map(|s| s / training).collect();
        let second = sums(&mean)?;
        let variance: Vec<f64> = second[d..2 * d].iter().map(|s| s / training).collect();
        Some(Standardization::from_moments(mean, &variance))
    } else {
        None
    };
    let class_weights = match &setup.class_weights {
        None => None,
        Some(ClassWeights::Given(w)) => Some(w.clone()),
        Some(ClassWeights::Balanced) => Some(balanced(&first[2 * d..2 * d + slots])),
    };
    Ok(Configured {
        standardization,
        class_weights,
        training_rows: training as u64,
        held_out_rows: rows - training as u64,
    })
}

/// scikit-learn's balanced class weights, n / (classes · n_c), over the classes present
/// (an absent class gets weight 1; no row uses it).
fn balanced(counts: &[f64]) -> Vec<f64> {
    let n: f64 = counts.iter().sum();
    let present = counts.iter().filter(|&&c| c > 0.0).count() as f64;
    counts
        .iter()
        .map(|&c| if c > 0.0 { n / (present * c) } else { 1.0 })
        .collect()
}

/// Rows per part of [`column_sums`]: fixed, so the parts, and the order their sums are
/// added in, depend on the rows alone, never on the thread count.
const COLUMN_PART_ROWS: usize = 8192;

/// [`Session::column_sums`](super::Session::column_sums) of rows in host memory: `data`
/// holds global rows from `offset`; rows the split holds out are skipped. In f64: parts of
/// [`COLUMN_PART_ROWS`] rows on all cores, each in row order, the parts added in order
/// (the CPU's are the reference's). Run serially, a pass took 7 times a gradient pass
/// (70 ms at 1 000 000 × 64), and a solver's fit takes three.
fn column_sums(
    data: &Dataset,
    offset: usize,
    split: Option<&Split>,
    outputs: usize,
    center: &[f64],
) -> Vec<f64> {
    use rayon::prelude::*;
    let (d, slots) = (data.features(), outputs.max(2));
    let width = 2 * d + slots + 1;
    let part = |rows: std::ops::Range<usize>| {
        let mut out = vec![0.0; width];
        let (sums, squares) = out.split_at_mut(d);
        for i in rows {
            if !Split::contains(split, RowSet::Training, (i + offset) as u32) {
                continue;
            }
            for ((&x, c), (s, q)) in data
                .row(i)
                .iter()
                .zip(center)
                .zip(sums.iter_mut().zip(squares.iter_mut()))
            {
                let v = f64::from(x) - c;
                *s += v;
                *q += v * v;
            }
            squares[d + (data.y()[i] as usize).min(slots - 1)] += 1.0;
            squares[d + slots] += 1.0;
        }
        out
    };
    let starts: Vec<usize> = (0..data.rows()).step_by(COLUMN_PART_ROWS).collect();
    let parts: Vec<Vec<f64>> = starts
        .par_iter()
        .map(|&start| part(start..(start + COLUMN_PART_ROWS).min(data.rows())))
        .collect();
    let mut out = vec![0.0; width];
    for p in parts {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    out
}

/// Parameters given to a session must match its features and outputs.
pub(crate) fn check_params_shape(params: &Params, features: usize, outputs: usize) -> Result<()> {
    if params.features() != features || params.outputs() != outputs {
        return Err(Error::Shape {
            what: "parameters".into(),
            expected: format!("{features} features × {outputs} outputs"),
            found: format!(
                "{} features × {} outputs",
                params.features(),
                params.outputs()
            ),
        });
    }
    Ok(())
}

/// A direction given to a curvature pass must have θ's length.
pub(crate) fn check_direction(v: &[f64], parameters: usize) -> Result<()> {
    if v.len() != parameters {
        return Err(Error::Shape {
            what: "Hessian-vector direction".into(),
            expected: format!("{parameters} values"),
            found: format!("{} values", v.len()),
        });
    }
    Ok(())
}

/// The descent as a host session carries it, in f64: θ in the optimizer's space
/// (standardized when standardizing; W row-major d×k, then b), the optimizer's moments,
/// and the setup with what it derived from the rows.
#[derive(Clone, Debug)]
pub(crate) struct HostDescent {
    pub theta: Vec<f64>,
    pub state: Vec<f64>,
    pub setup: Setup,
    pub configured: Configured,
    features: usize,
    outputs: usize,
    /// Scratch for a step's candidate θ and state, kept so that steps do not allocate.
    next: (Vec<f64>, Vec<f64>),
}

impl HostDescent {
    /// All-zero parameters, nothing configured.
    pub fn new(features: usize, outputs: usize) -> Self {
        HostDescent {
            theta: vec![0.0; (features + 1) * outputs],
            state: Vec::new(),
            setup: Setup::default(),
            configured: Configured::default(),
            features,
            outputs,
            next: (Vec::new(), Vec::new()),
        }
    }

    /// [`Session::column_sums`](super::Session::column_sums) of host rows `data`, global
    /// rows from `offset`, under this descent's split.
    pub fn column_sums(&self, data: &Dataset, offset: usize, center: &[f64]) -> Vec<f64> {
        column_sums(
            data,
            offset,
            self.setup.split.as_ref(),
            self.outputs,
            center,
        )
    }

    /// The weight of global row `row` (sample weight `sample`, label `label`) in a pass over
    /// `rows` of a `model`: the sample weight times the class's weight, or 0 when the pass
    /// does not use the row.
    pub fn row_weight(
        &self,
        model: Model,
        row: usize,
        sample: Option<f32>,
        label: f32,
        rows: RowSet,
    ) -> f64 {
        if !Split::contains(self.setup.split.as_ref(), rows, row as u32) {
            return 0.0;
        }
        let class = match (self.class_weights(), model) {
            (Some(cw), Model::Logistic | Model::Softmax) => cw[(label as usize).min(cw.len() - 1)],
            _ => 1.0,
        };
        sample.map_or(1.0, f64::from) * class
    }

    pub fn standardization(&self) -> Option<&Standardization> {
        self.configured.standardization.as_ref()
    }

    pub fn class_weights(&self) -> Option<&[f64]> {
        self.configured.class_weights.as_deref()
    }

    /// The raw-space parameters θ stands for (θ itself without standardization).
    pub fn raw(&self) -> Vec<f64> {
        match self.standardization() {
            Some(s) => s.to_raw(&self.theta, self.outputs),
            None => self.theta.clone(),
        }
    }

    pub fn params(&self) -> Params {
        Params::from_flat_f64(self.features, self.outputs, &self.raw())
    }

    /// θ for raw-space `params`, after checking their shape.
    pub fn set_params(&mut self, params: &Params) -> Result<()> {
        check_params_shape(params, self.features, self.outputs)?;
        self.set_raw(params.flat());
        Ok(())
    }

    fn set_raw(&mut self, raw: Vec<f64>) {
        self.theta = match self.standardization() {
            Some(s) => s.from_raw(&raw, self.outputs),
            None => raw,
        };
    }

    /// Forgets the configuration, keeping the raw-space parameters: what a session does
    /// before it sums its rows for a new setup. Returns those parameters.
    pub fn unconfigure(&mut self, setup: &Setup) -> Vec<f64> {
        let raw = self.raw();
        self.setup = Setup {
            split: setup.split,
            ..Setup::default()
        };
        self.configured = Configured::default();
        self.theta.clone_from(&raw);
        raw
    }

    /// Takes `setup` and what it derived from the rows: θ is `raw` in the new space, the
    /// optimizer's state starts at zero.
    pub fn configure(&mut self, setup: &Setup, configured: Configured, raw: Vec<f64>) {
        self.setup = setup.clone();
        self.configured = configured;
        self.set_raw(raw);
        self.state = vec![0.0; setup.rule.optimizer.state_len() * self.theta.len()];
    }

    /// Takes `setup` through [`configuration`] of the rows' column sums (`sums`, under
    /// this descent's split), for a session of `rows` rows whose sums need nothing else.
    pub fn reconfigure(
        &mut self,
        setup: &Setup,
        rows: u64,
        sums: impl Fn(&Self, &[f64]) -> Vec<f64>,
    ) -> Result<Configured> {
        setup.rule.validate()?;
        let raw = self.unconfigure(setup);
        let (d, k) = (self.features, self.outputs);
        let configured = configuration(setup, d, k, rows, &mut |c| Ok(sums(self, c)))?;
        self.configure(setup, configured.clone(), raw);
        Ok(configured)
    }

    /// One step of the setup's rule in f64: θ and the optimizer state move along the
    /// raw-space mean gradient `grad` (taken into the standardized space first when
    /// standardizing). When the gradient or the new θ is not finite, both stay as they
    /// were and the result is false.
    pub fn step(&mut self, mut grad: Vec<f64>, step: &Step) -> bool {
        let k = self.outputs;
        if let Some(st) = self.standardization() {
            st.gradient_to_standardized(&mut grad, k);
        }
        let (next, next_state) = &mut self.next;
        next.clone_from(&self.theta);
        next_state.clone_from(&self.state);
        let weights = self.theta.len() - k;
        self.setup
            .rule
            .apply(next, &grad, next_state, weights, step.t, step.lr);
        if grad.iter().chain(next.iter()).any(|v| !v.is_finite()) {
            return false;
        }
        std::mem::swap(&mut self.theta, next);
        std::mem::swap(&mut self.state, next_state);
        true
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            theta: self.theta.clone(),
            state: self.state.clone(),
            raw: self.raw(),
        }
    }

    /// Puts back θ and the optimizer state of `snapshot`, after checking their lengths
    /// (the raw parameters follow from θ).
    pub fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        snapshot.check(self.theta.len(), self.state.len())?;
        self.theta.clone_from(&snapshot.theta);
        self.state.clone_from(&snapshot.state);
        Ok(())
    }
}

/// [`Session::column_sums`] of global rows `window` of `data`, skipping the rows `split`
/// holds out: Σ(x − c), Σ(x − c)² per feature from the sums of the non-zeros (each zero
/// adds −c and c²), the count of each label (max(k, 2) slots) and the row count.
pub(crate) fn sparse_column_sums(
    data: &SparseDataset,
    window: std::ops::Range<usize>,
    split: Option<&Split>,
    outputs: usize,
    center: &[f64],
) -> Vec<f64> {
    let (d, slots) = (data.features(), outputs.max(2));
    let rows: Vec<usize> = window.collect();
    // At most 16 parts of at least 1 024 rows: the same sums on any number of threads.
    let parts = 16.min(rows.len().div_ceil(1024)).max(1);
    let size = rows.len().div_ceil(parts).max(1);
    let partials: Vec<Vec<f64>> = rows
        .par_chunks(size)
        .map(|part| {
            let mut out = vec![0.0; 2 * d + slots + 1];
            for &i in part {
                if !Split::contains(split, RowSet::Training, i as u32) {
                    continue;
                }
                for (j, v) in data.row(i).entries() {
                    let v = f64::from(v);
                    out[j] += v;
                    out[d + j] += v * v;
                }
                out[2 * d + (data.y()[i] as usize).min(slots - 1)] += 1.0;
                out[2 * d + slots] += 1.0;
            }
            out
        })
        .collect();
    let mut out = vec![0.0; 2 * d + slots + 1];
    for p in partials {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    let m = out[2 * d + slots];
    for (j, &c) in center.iter().enumerate() {
        let (s1, s2) = (out[j], out[d + j]);
        out[j] = s1 - m * c;
        out[d + j] = s2 - 2.0 * c * s1 + m * c * c;
    }
    out
}

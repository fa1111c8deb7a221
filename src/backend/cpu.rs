//! The fast CPU backend: the same fused one-pass structure as the GPU kernel, on all cores.
//!
//! Rows are split into fixed chunks (their boundaries do not depend on the thread count);
//! each chunk computes z, δ and its partial Xᵀδ and Σδ from one read of its rows, adding
//! blocks of rows in f32 lanes and the blocks in f64; the chunks' partials are then added
//! in chunk order, so the result is the same bits whatever the thread scheduling. The hot
//! loop is compiled three times, for AVX-512, for AVX2 with FMA (each with hand-written
//! kernels for one output's two passes over the rows, in `avx512` and `avx2`) and for the
//! baseline, and the widest the CPU has is chosen at run time; the three add in different
//! orders, so their last bits differ (`DOWNHILL_CPU_SIMD` keeps a CPU to a narrower one).

use std::borrow::Cow;
use std::ops::Range;

use crate::backend::Snapshot;

use rayon::prelude::*;

use super::reference::{ReferenceSession, check_params_shape};
use super::{
    Backend, Batch, Configured, Data, Evaluation, Evaluations, HostRows, PassSums, RowSet,
    RunOutcome, Session, Setup, Split, Step, evaluate_then_run,
};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Gradient, Loss, Model, Objective, Params};
use crate::optim::Standardization;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// Tiles whose sums are added in f32 before they are moved into f64: 256 rows at d = 64,
/// few enough that f32 loses nothing a test at 1e-5 could see.
const FLUSH_TILES: usize = 16;

/// The environment variable that caps the vector instructions of the default [`Cpu`]
/// backend: `avx2` or `portable` (or `avx512`, the widest there is). The loops add in
/// different orders, so their last bits differ; the cap reproduces a narrower CPU's bits.
pub const SIMD_VAR: &str = "DOWNHILL_CPU_SIMD";

/// The vector instructions a CPU loop is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// Plain loops the compiler vectorizes for the baseline target.
    Portable,
    /// AVX2 with FMA, hand-written kernels for one output.
    Avx2,
    /// AVX-512F (with AVX2 and FMA), hand-written kernels for one output.
    Avx512,
}

impl Simd {
    /// Every level, narrowest first.
    pub const ALL: [Simd; 3] = [Simd::Portable, Simd::Avx2, Simd::Avx512];

    /// The widest level this CPU has, within `DOWNHILL_CPU_SIMD` when it is set; an
    /// unknown value of it is reported once on the log and ignored.
    pub fn detected() -> Simd {
        static FOUND: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
        *FOUND.get_or_init(|| {
            let widest = Simd::ALL
                .into_iter()
                .rfind(|s| s.available())
                .unwrap_or(Simd::Portable);
            match Simd::from_env() {
                Ok(Some(cap)) => cap.min(widest),
                Ok(None) => widest,
                Err(e) => {
                    log::warn!("{e}; using {}", widest.name());
                    widest
                }
            }
        })
    }

    /// The cap `DOWNHILL_CPU_SIMD` asks for, if it is set; an error names a value that is
    /// not a level.
    pub fn from_env() -> Result<Option<Simd>> {
        let Some(value) = std::env::var_os(SIMD_VAR) else {
            return Ok(None);
        };
        let value = value.to_string_lossy();
        Simd::ALL
            .into_iter()
            .find(|s| s.name() == value.trim())
            .map(Some)
            .ok_or_else(|| Error::option(SIMD_VAR, &value, "expected portable, avx2 or avx512"))
    }

    /// Whether this CPU can run the level.
    pub fn available(self) -> bool {
        match self {
            Simd::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => {
                Simd::Avx2.available() && std::arch::is_x86_feature_detected!("avx512f")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The level's name, as `DOWNHILL_CPU_SIMD` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Simd::Portable => "portable",
            Simd::Avx2 => "avx2",
            Simd::Avx512 => "avx512",
        }
    }
}

/// Most rows per parallel work item.
const CHUNK_ROWS: usize = 4096;

/// Rows per parallel work item for a batch of `len` rows: small batches are cut finer so
/// that every core has work. It depends on the batch alone, never on the thread count, so
/// the sums come out the same on any number of cores.
fn chunk_rows(len: usize) -> usize {
    (len / 8).clamp(256, CHUNK_ROWS)
}

/// How far ahead of the rows being read the loop asks for memory, in bytes. Measured on
/// the development machine (2 cores): 8 KiB into the second-level cache keeps enough reads
/// in flight; into the first level, the prefetches compete with the loop's own loads.
const PREFETCH_BYTES: usize = 8192;

/// The multi-threaded CPU backend (rayon's global pool), its loop compiled for one level
/// of vector instructions: by default the widest this CPU has ([`Simd::detected`]).
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    simd: Simd,
}

impl Default for Cpu {
    fn default() -> Self {
        Cpu {
            simd: Simd::detected(),
        }
    }
}

impl Cpu {
    /// The backend with its loop at `simd`, if this CPU has it.
    pub fn with_simd(simd: Simd) -> Result<Cpu> {
        if !simd.available() {
            return Err(Error::option(
                SIMD_VAR,
                simd.name(),
                "this CPU does not have these instructions",
            ));
        }
        Ok(Cpu { simd })
    }

    /// The level its loop runs at.
    pub fn simd(&self) -> Simd {
        self.simd
    }
}

impl Backend for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn open<'a>(&'a self, data: Data<'a>, objective: Objective) -> Result<Box<dyn Session + 'a>> {
        let n = data.window().len();
        let chunks = n.div_ceil(chunk_rows(n));
        super::check_host_memory(&data, objective, chunks)?;
        Ok(Box::new(CpuSession::from_host(
            data.into_host_rows()?,
            objective,
            self.simd,
        )))
    }
}

/// Data in host memory; the optimizer's parameters in f64, the raw-space ones the loop
/// reads in f32.
pub struct CpuSession<'a> {
    /// Global rows `offset..offset + data.rows()` of a problem of `total` rows.
    data: Cow<'a, Dataset>,
    offset: usize,
    total: usize,
    objective: Objective,
    /// The optimizer's parameters (W row-major d×k, then b; standardized space when
    /// standardizing), its state, and what the session was configured with.
    theta: Vec<f64>,
    state: Vec<f64>,
    setup: Setup,
    standardization: Option<Standardization>,
    class_weights: Option<Vec<f64>>,
    /// Raw-space Wᵀ (k rows of d) then b: each class's weights contiguous for the dot
    /// products.
    wt: Vec<f32>,
    /// One partial per chunk ((d + 1)·k gradient sums class-major, then Σwℓ, Σw,
    /// Σw[correct], Σwy, Σwy², then those five of the held-out rows), reused every step.
    partials: Vec<Vec<f64>>,
    /// The vector instructions the loop runs with.
    simd: Simd,
    /// Bit r % 64 of word r / 64: whether local row r is held out (empty without a
    /// split). Hashing each row's index again in every pass cost more than the pass.
    held_out: Vec<u64>,
}

/// Metric sums after the gradient sums of a partial.
const METRICS: usize = 5;

/// What a pass over the rows is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wanted {
    /// A descent step: ∇J (and Σw).
    Gradient,
    /// An evaluation: the loss and metrics, no ∇J (the pass skips Σ δ·x).
    Metrics,
    Both,
    /// Both, and the metrics of the held-out rows, which the pass reads anyway.
    BothAndHeldOut,
}

/// What a pass over the rows added up.
struct Summed {
    /// The weighted mean ∇J (raw space, W's layout then b; zeros unless wanted).
    grad: Vec<f64>,
    /// Σwℓ, Σw, Σw[correct], Σwy, Σwy² (Σw only unless wanted).
    metrics: [f64; METRICS],
    /// The same five of the held-out rows ([`Wanted::BothAndHeldOut`]; else zeros).
    held_out: [f64; METRICS],
}

impl<'a> CpuSession<'a> {
    /// A session on `data` whose loop runs at this CPU's widest level.
    pub fn new(data: Cow<'a, Dataset>, objective: Objective) -> Self {
        let total = data.rows();
        Self::from_host(
            HostRows {
                data,
                offset: 0,
                total,
            },
            objective,
            Simd::detected(),
        )
    }

    pub(crate) fn from_host(rows: HostRows<'a>, objective: Objective, simd: Simd) -> Self {
        let (d, k) = (rows.data.features(), objective.outputs());
        CpuSession {
            data: rows.data,
            offset: rows.offset,
            total: rows.total,
            objective,
            theta: vec![0.0; (d + 1) * k],
            state: Vec::new(),
            setup: Setup::default(),
            standardization: None,
            class_weights: None,
            wt: vec![0.0; (d + 1) * k],
            partials: Vec::new(),
            simd,
            held_out: Vec::new(),
        }
    }

    /// The raw-space parameters (W row-major, then b).
    fn raw(&self) -> Vec<f64> {
        super::raw_parameters(
            &self.theta,
            self.standardization.as_ref(),
            self.objective.outputs(),
        )
    }

    /// Rewrites the loop's f32 Wᵀ and b from θ.
    fn refresh(&mut self) {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let raw = self.raw();
        for c in 0..k {
            for j in 0..d {
                self.wt[c * d + j] = raw[j * k + c] as f32;
            }
            self.wt[d * k + c] = raw[d * k + c] as f32;
        }
    }

    /// The weighted mean ∇J and the metric sums over the batch's rows in `rows`.
    fn batch_gradient(&mut self, batch: &Batch, rows: RowSet, wanted: Wanted) -> Summed {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let p = (d + 1) * k + 2 * METRICS;
        let chunk = chunk_rows(batch.len as usize);
        let chunks = (batch.len as usize).div_ceil(chunk);
        if self.partials.len() < chunks {
            self.partials.resize_with(chunks, || vec![0.0; p]);
        }
        let pass = Pass {
            data: &self.data,
            offset: self.offset,
            objective: self.objective,
            wt: &self.wt,
            with_gradient: wanted != Wanted::Metrics,
            with_metrics: wanted != Wanted::Gradient,
            with_held_out: wanted == Wanted::BothAndHeldOut && self.setup.split.is_some(),
            simd: self.simd,
            weights: Weighting {
                sample: self.data.weights(),
                class: self.class_weights.as_deref(),
                held_out: self.setup.split.is_some().then_some(&self.held_out[..]),
                rows,
            },
        };
        self.partials[..chunks]
            .par_iter_mut()
            .enumerate()
            .for_each(|(i, partial)| {
                let start = batch.start + (i * chunk) as u32;
                let end = (start + chunk as u32).min(batch.start + batch.len);
                partial.fill(0.0);
                pass.run(batch, start..end, partial);
            });
        // In chunk order: the same sums whatever thread ran which chunk.
        let mut total = vec![0.0; p];
        for partial in &self.partials[..chunks] {
            for (t, v) in total.iter_mut().zip(partial) {
                *t += v;
            }
        }
        let mut metrics = [0.0; METRICS];
        metrics.copy_from_slice(&total[(d + 1) * k..][..METRICS]);
        let mut held_out = [0.0; METRICS];
        held_out.copy_from_slice(&total[(d + 1) * k + METRICS..]);
        let weight = metrics[1];
        let mean = |v: f64| if weight > 0.0 { v / weight } else { 0.0 };
        // Partials hold Wᵀ's layout (class-major); return W's (feature-major).
        let mut grad = vec![0.0; (d + 1) * k];
        for c in 0..k {
            for j in 0..d {
                grad[j * k + c] = mean(total[c * d + j]);
            }
            grad[d * k + c] = mean(total[d * k + c]);
        }
        Summed {
            grad,
            metrics,
            held_out,
        }
    }

    /// Applies `steps` (see [`Session::run`]); the first step's pass sums what `first`
    /// asks for. When it asks for metrics, they give the evaluations at the parameters
    /// before that step (of the training rows, and of the held-out rows with
    /// [`Wanted::BothAndHeldOut`]) when the step is over every row; when the training loss
    /// is not finite, no step is applied (and the outcome says `Completed`).
    fn descend(&mut self, steps: &[Step], first: Wanted) -> (Option<Evaluations>, RunOutcome) {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let model = self.objective.model();
        let mut next = self.theta.clone();
        let mut state = self.state.clone();
        let mut evaluations = None;
        for (s, step) in steps.iter().enumerate() {
            let wanted = if s == 0 { first } else { Wanted::Gradient };
            let summed = self.batch_gradient(&step.batch, RowSet::Training, wanted);
            let mut grad = summed.grad;
            if wanted != Wanted::Gradient {
                let training = Evaluation::from_sums(model, summed.metrics);
                evaluations = Some(Evaluations {
                    training,
                    validation: (wanted == Wanted::BothAndHeldOut)
                        .then(|| Evaluation::from_sums(model, summed.held_out)),
                });
                if !training.loss.is_finite() {
                    return (evaluations, RunOutcome::Completed);
                }
            }
            if let Some(st) = &self.standardization {
                st.gradient_to_standardized(&mut grad, k);
            }
            next.copy_from_slice(&self.theta);
            state.copy_from_slice(&self.state);
            self.setup
                .rule
                .apply(&mut next, &grad, &mut state, d * k, step.t, step.lr);
            if grad.iter().chain(&next).any(|v| !v.is_finite()) {
                return (evaluations, RunOutcome::Diverged { step: s });
            }
            std::mem::swap(&mut self.theta, &mut next);
            std::mem::swap(&mut self.state, &mut state);
            self.refresh();
            if self.wt.iter().any(|v| !v.is_finite()) {
                return (evaluations, RunOutcome::Diverged { step: s });
            }
        }
        (evaluations, RunOutcome::Completed)
    }

    fn full_batch(&self) -> Batch {
        Batch {
            start: 0,
            len: self.total as u32,
            order: None,
        }
    }
}

impl Session for CpuSession<'_> {
    fn describe(&self) -> String {
        format!(
            "cpu ({} threads, {})",
            rayon::current_num_threads(),
            match self.simd {
                Simd::Avx512 => "AVX-512",
                Simd::Avx2 => "AVX2+FMA",
                Simd::Portable => "portable loops",
            }
        )
    }

    fn objective(&self) -> Objective {
        self.objective
    }

    fn rows(&self) -> usize {
        self.total
    }

    fn features(&self) -> usize {
        self.data.features()
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        let (d, k) = (self.data.features(), self.objective.outputs());
        check_params_shape(params, d, k)?;
        let raw: Vec<f64> = params.flat();
        self.theta = match &self.standardization {
            Some(s) => s.from_raw(&raw, k),
            None => raw,
        };
        self.refresh();
        Ok(())
    }

    fn params(&mut self) -> Result<Params> {
        // What the loop computes with: the f32 parameters.
        let (d, k) = (self.data.features(), self.objective.outputs());
        let mut params = Params::zeros(d, k);
        for c in 0..k {
            for j in 0..d {
                params.weights_mut()[j * k + c] = f64::from(self.wt[c * d + j]);
            }
            params.bias_mut()[c] = f64::from(self.wt[d * k + c]);
        }
        Ok(params)
    }

    fn gradient(&mut self) -> Result<Gradient> {
        let dk = self.data.features() * self.objective.outputs();
        let Summed { grad, metrics, .. } =
            self.batch_gradient(&self.full_batch(), RowSet::All, Wanted::Both);
        Ok(Gradient {
            loss: metrics[0] / metrics[1],
            weights: grad[..dk].to_vec(),
            bias: grad[dk..].to_vec(),
        })
    }

    fn loss(&mut self) -> Result<f64> {
        Ok(self.evaluate(RowSet::All)?.loss)
    }

    fn predict(&mut self) -> Result<Vec<f64>> {
        let raw = self.raw();
        let k = self.objective.outputs();
        let data = &self.data;
        let mut z = crate::memory::filled(data.rows().saturating_mul(k), 0.0, || {
            format!("the predictions ({} × {k} numbers)", data.rows())
        })?;
        z.par_chunks_mut(k * 4096)
            .enumerate()
            .for_each(|(chunk, zs)| {
                for (i, zi) in zs.chunks_mut(k).enumerate() {
                    crate::math::logits(data.row(chunk * 4096 + i), &raw, zi);
                }
            });
        Ok(z)
    }

    fn run(&mut self, steps: &[Step]) -> Result<RunOutcome> {
        Ok(self.descend(steps, Wanted::Gradient).1)
    }

    fn evaluate_and_run(
        &mut self,
        steps: &[Step],
        held_out: bool,
    ) -> Result<(Evaluations, Option<RunOutcome>)> {
        let first = if held_out {
            Wanted::BothAndHeldOut
        } else {
            Wanted::Both
        };
        if steps.first().is_some_and(|s| s.batch == self.full_batch())
            && let (Some(evaluations), outcome) = self.descend(steps, first)
        {
            let finite = evaluations.training.loss.is_finite();
            return Ok((evaluations, finite.then_some(outcome)));
        }
        evaluate_then_run(self, steps, held_out)
    }

    fn configure(&mut self, setup: &Setup) -> Result<Configured> {
        setup.rule.validate()?;
        let raw = self.raw();
        // The statistics of the training rows, as the reference computes them (f64, two
        // passes); they are computed once per fit.
        let rows = HostRows {
            data: Cow::Borrowed(self.data.as_ref()),
            offset: self.offset,
            total: self.total,
        };
        let configured = ReferenceSession::new(rows, self.objective).configure(setup)?;
        let k = self.objective.outputs();
        self.setup = setup.clone();
        self.held_out = match setup.split {
            Some(split) => held_out_bits(&split, self.offset, self.data.rows()),
            None => Vec::new(),
        };
        self.standardization = configured.standardization.clone();
        self.class_weights = configured.class_weights.clone();
        self.theta = match &self.standardization {
            Some(s) => s.from_raw(&raw, k),
            None => raw,
        };
        self.state = vec![0.0; setup.rule.optimizer.state_len() * self.theta.len()];
        self.refresh();
        Ok(configured)
    }

    fn evaluate(&mut self, rows: RowSet) -> Result<Evaluation> {
        let metrics = self
            .batch_gradient(&self.full_batch(), rows, Wanted::Metrics)
            .metrics;
        Ok(Evaluation::from_sums(self.objective.model(), metrics))
    }

    fn pass_sums(&mut self, step: &Step, rows: RowSet) -> Result<PassSums> {
        let Summed { grad, metrics, .. } = self.batch_gradient(&step.batch, rows, Wanted::Both);
        let weight = metrics[1];
        Ok(PassSums {
            gradient: grad.iter().map(|g| g * weight).collect(),
            metrics,
        })
    }

    fn column_sums(&mut self, center: &[f64]) -> Result<Vec<f64>> {
        let rows = HostRows {
            data: Cow::Borrowed(self.data.as_ref()),
            offset: self.offset,
            total: self.total,
        };
        let mut reference = ReferenceSession::new(rows, self.objective);
        reference.configure(&Setup {
            split: self.setup.split,
            ..Setup::default()
        })?;
        reference.column_sums(center)
    }

    fn snapshot(&mut self) -> Result<Snapshot> {
        Ok(Snapshot::of_host(
            &self.theta,
            &self.state,
            self.standardization.as_ref(),
            self.objective.outputs(),
        ))
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        snapshot.restore_into(&mut self.theta, &mut self.state)?;
        self.refresh();
        Ok(())
    }
}

/// How rows count in a pass: their sample weight times their class's weight, or nothing
/// when the pass does not use them.
#[derive(Clone, Copy)]
struct Weighting<'p> {
    sample: Option<&'p [f32]>,
    class: Option<&'p [f64]>,
    /// The held-out rows' bits ([`CpuSession::held_out`]), when rows are held out.
    held_out: Option<&'p [u64]>,
    rows: RowSet,
}

impl Weighting<'_> {
    /// True when every row weighs 1.
    fn plain(&self) -> bool {
        self.sample.is_none()
            && self.class.is_none()
            && (self.held_out.is_none() || self.rows == RowSet::All)
    }

    #[inline(always)]
    fn of(&self, row: usize, label: f32) -> f32 {
        self.in_set(self.rows, row, label)
    }

    /// The row's weight in the pass's rows and in the held-out rows.
    #[inline(always)]
    fn and_held_out(&self, row: usize, label: f32) -> (f32, f32) {
        (
            self.of(row, label),
            self.in_set(RowSet::Validation, row, label),
        )
    }

    #[inline(always)]
    fn in_set(&self, rows: RowSet, row: usize, label: f32) -> f32 {
        let held = self
            .held_out
            .map(|bits| bits[row / 64] >> (row % 64) & 1 == 1);
        if !rows.uses(held) {
            return 0.0;
        }
        let sample = self.sample.map_or(1.0, |w| w[row]);
        let class = self
            .class
            .map_or(1.0, |c| c[(label as usize).min(c.len() - 1)] as f32);
        sample * class
    }
}

/// What one chunk needs to compute its partial.
struct Pass<'p> {
    /// Global rows `offset..offset + data.rows()`.
    data: &'p Dataset,
    offset: usize,
    objective: Objective,
    wt: &'p [f32],
    with_gradient: bool,
    with_metrics: bool,
    /// Sum the held-out rows' metrics too (after the pass's own, in each partial).
    with_held_out: bool,
    simd: Simd,
    weights: Weighting<'p>,
}

impl Pass<'_> {
    /// Adds the chunk's rows (batch positions `positions`) into `partial`.
    fn run(&self, batch: &Batch, positions: Range<u32>, partial: &mut [f64]) {
        SCRATCH.with_borrow_mut(|scratch| {
            #[cfg(target_arch = "x86_64")]
            match self.simd {
                // SAFETY: the CPU has AVX-512F, AVX2 and FMA (the level is available).
                Simd::Avx512 => {
                    return unsafe { self.run_avx512(batch, positions, partial, scratch) };
                }
                // SAFETY: the CPU has AVX2 and FMA (the level is available).
                Simd::Avx2 => return unsafe { self.run_avx2(batch, positions, partial, scratch) },
                Simd::Portable => {}
            }
            self.run_portable(batch, positions, partial, scratch)
        })
    }

    // Everything the hot loop calls is `#[inline(always)]` and free of closures (a closure
    // is a function of its own, compiled without these target features).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(
        &self,
        batch: &Batch,
        positions: Range<u32>,
        partial: &mut [f64],
        scratch: &mut Scratch,
    ) {
        self.run_generic::<true, false>(batch, positions, partial, scratch)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn run_avx512(
        &self,
        batch: &Batch,
        positions: Range<u32>,
        partial: &mut [f64],
        scratch: &mut Scratch,
    ) {
        self.run_generic::<true, true>(batch, positions, partial, scratch)
    }

    fn run_portable(
        &self,
        batch: &Batch,
        positions: Range<u32>,
        partial: &mut [f64],
        scratch: &mut Scratch,
    ) {
        self.run_generic::<false, false>(batch, positions, partial, scratch)
    }

    /// The fused loop, a tile of rows at a time: (1) z of every row of the tile (k dot
    /// products, eight rows at a time for one output; the rows come from memory once, asked
    /// for a few kilobytes ahead), (2) δ of every row, vectorized across rows, (3) Σ δ·x
    /// from the same rows, now in cache, into f32 sums moved into f64 once per tile.
    /// `FMA`: the CPU has AVX2 and FMA, so fused multiply-adds (one rounding) and the
    /// kernels of `avx2` are used; `WIDE`: it has AVX-512F too, and those of `avx512`.
    #[inline(always)]
    fn run_generic<const FMA: bool, const WIDE: bool>(
        &self,
        batch: &Batch,
        positions: Range<u32>,
        partial: &mut [f64],
        scratch: &mut Scratch,
    ) {
        let d = self.data.features();
        let ahead = PREFETCH_BYTES.div_ceil(4 * d);
        let window = self.offset..self.offset + self.data.rows();
        match batch.order {
            None => {
                // In order, position p is row p: the positions within the window.
                let start = (positions.start as usize).max(window.start);
                let end = (positions.end as usize).min(window.end);
                if start >= end {
                    return;
                }
                let rows = InOrder {
                    start: start - self.offset,
                    len: end - start,
                    ahead,
                };
                self.tiles_for::<FMA, WIDE, _>(rows, partial, scratch)
            }
            Some(order) => {
                // Each position's row once (a permutation costs a few dozen integer
                // operations, sixteen positions at a time), kept for the tile passes: the
                // rows of the window, local.
                scratch.rows.clear();
                order.apply_all(positions, &mut scratch.rows);
                scratch.rows.retain(|i| window.contains(i));
                for i in &mut scratch.rows {
                    *i -= self.offset;
                }
                let rows = std::mem::take(&mut scratch.rows);
                let listed = Listed {
                    rows: &rows,
                    ahead,
                    y: self.data.y(),
                };
                self.tiles_for::<FMA, WIDE, _>(listed, partial, scratch);
                scratch.rows = rows;
            }
        }
    }

    /// [`Self::tiles`] with k known at compile time when it is 1 (linear, logistic).
    #[inline(always)]
    fn tiles_for<const FMA: bool, const WIDE: bool, R: RowOrder>(
        &self,
        rows: R,
        partial: &mut [f64],
        s: &mut Scratch,
    ) {
        if self.objective.outputs() == 1 {
            self.tiles::<FMA, WIDE, true, R>(rows, partial, s)
        } else {
            self.tiles::<FMA, WIDE, false, R>(rows, partial, s)
        }
    }

    /// The three passes over each tile of `rows`. `ONE`: k = 1.
    #[inline(always)]
    fn tiles<const FMA: bool, const WIDE: bool, const ONE: bool, R: RowOrder>(
        &self,
        rows: R,
        partial: &mut [f64],
        s: &mut Scratch,
    ) {
        let d = self.data.features();
        let k = if ONE { 1 } else { self.objective.outputs() };
        let x = self.data.x();
        let y = self.data.y();
        let (wt, bias) = self.wt.split_at(d * k);
        let tile = tile_rows(d);
        s.sized(tile, d, k);
        let (starts, z, labels, losses, weights, held_weights) = (
            &mut s.starts[..tile],
            &mut s.z[..tile * k],
            &mut s.labels[..tile],
            &mut s.losses[..tile],
            &mut s.weights[..tile],
            &mut s.held_weights[..tile],
        );
        let predictions = &mut s.predictions[..tile];
        let (sums, bias_sums) = (&mut s.sums[..d * k], &mut s.bias_sums[..k]);
        let plain = self.weights.plain();
        let mut metrics = [0.0f64; METRICS];
        let mut held_out = [0.0f64; METRICS];
        let len = rows.len();
        for (t, first) in (0..len).step_by(tile).enumerate() {
            let count = tile.min(len - first);
            let starts = &mut starts[..count];
            // Where each row begins, its label and its weight: consecutive rows' labels
            // are read in place.
            let labels: &[f32] = match rows.consecutive() {
                Some(row0) if plain => {
                    let i = row0 + first;
                    for (r, start) in starts.iter_mut().enumerate() {
                        *start = (i + r) * d;
                    }
                    &y[i..i + count]
                }
                _ => {
                    for (r, start) in starts.iter_mut().enumerate() {
                        let i = rows.row(first + r);
                        *start = i * d;
                        labels[r] = y[i];
                        if self.with_held_out {
                            (weights[r], held_weights[r]) = self.weights.and_held_out(i, y[i]);
                        } else if !plain {
                            weights[r] = self.weights.of(i, y[i]);
                        }
                    }
                    &labels[..count]
                }
            };
            // (1) z = x·W + b, row-major in `z` (k per row).
            let together = if ONE {
                tile_dots::<FMA, WIDE, R>(&rows, first, starts, x, wt, bias[0], z)
            } else {
                0
            };
            for r in together..count {
                rows.prefetch(x, d, first + r..first + r + 1);
                let xr = &x[starts[r]..starts[r] + d];
                for c in 0..k {
                    z[r * k + c] = bias[c] + dot::<FMA>(xr, &wt[c * d..(c + 1) * d]);
                }
            }
            if self.with_metrics {
                for (r, p) in predictions[..count].iter_mut().enumerate() {
                    *p = predicted(&z[r * k..(r + 1) * k]) as f32;
                }
            }
            // (2) z becomes δ, and the loss of each row.
            row_deltas::<FMA>(
                &self.objective,
                &mut z[..count * k],
                labels,
                &mut losses[..count],
                self.with_metrics,
            );
            // (3) Σ w δ·x and Σ w δ, from the rows now in cache, asking for the rows a
            // tile further on meanwhile, so that memory stays busy while this pass computes.
            if ONE {
                rows.prefetch(x, d, first + tile..first + tile + count);
                if self.with_gradient {
                    if !plain {
                        for (zr, w) in z[..count].iter_mut().zip(&weights[..count]) {
                            *zr *= w;
                        }
                    }
                    bias_sums[0] += lane_sum(&z[..count]);
                    tile_gradient::<FMA, WIDE>(x, starts, &z[..count], sums);
                }
            } else if !self.with_gradient {
                rows.prefetch(x, d, first + tile..first + tile + count);
            } else {
                for r in 0..count {
                    rows.prefetch(x, d, first + tile + r..first + tile + r + 1);
                    let xr = &x[starts[r]..starts[r] + d];
                    let w = if plain { 1.0 } else { weights[r] };
                    if w == 0.0 {
                        continue;
                    }
                    for c in 0..k {
                        let delta = if plain {
                            z[r * k + c]
                        } else {
                            w * z[r * k + c]
                        };
                        axpy::<FMA>(delta, xr, &mut sums[c * d..(c + 1) * d]);
                        bias_sums[c] += delta;
                    }
                }
            }
            if plain && !self.with_metrics {
                // Σw of unit weights, without a chain of dependent adds per row.
                metrics[1] += count as f64;
            } else if !self.with_metrics {
                for &w in &weights[..count] {
                    metrics[1] += f64::from(w);
                }
            } else {
                for r in 0..count {
                    let w = if plain { 1.0 } else { weights[r] };
                    add_metrics(&mut metrics, w, losses[r], predictions[r], labels[r]);
                }
                if self.with_held_out {
                    for r in 0..count {
                        let w = held_weights[r];
                        add_metrics(&mut held_out, w, losses[r], predictions[r], labels[r]);
                    }
                }
            }
            if (t + 1) % FLUSH_TILES == 0 {
                flush(sums, bias_sums, partial);
            }
        }
        flush(sums, bias_sums, partial);
        for (p, m) in partial[(d + 1) * k..]
            .iter_mut()
            .zip(metrics.iter().chain(&held_out))
        {
            *p += m;
        }
    }
}

/// Adds a row of weight `w` to the metric sums Σwℓ, Σw, Σw[correct], Σwy, Σwy².
#[inline(always)]
fn add_metrics(sums: &mut [f64; METRICS], w: f32, loss: f32, predicted: f32, label: f32) {
    let (w, label) = (f64::from(w), f64::from(label));
    let correct = f64::from(predicted == label.round() as f32);
    sums[0] += w * f64::from(loss);
    sums[1] += w;
    sums[2] += w * correct;
    sums[3] += w * label;
    sums[4] += w * label * label;
}

/// z of a tile's rows for one output (row r at `x[starts[r]..]`, `w` holding d weights),
/// eight rows at a time where the CPU has AVX2 and FMA; returns how many rows it computed.
#[inline(always)]
fn tile_dots<const FMA: bool, const WIDE: bool, R: RowOrder>(
    rows: &R,
    first: usize,
    starts: &[usize],
    x: &[f32],
    w: &[f32],
    b: f32,
    z: &mut [f32],
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        let eights = starts.chunks_exact(8);
        let done = starts.len() - eights.remainder().len();
        for (e, eight) in eights.enumerate() {
            rows.prefetch(x, w.len(), first + 8 * e..first + 8 * e + 8);
            let eight: &[usize; 8] = eight.try_into().expect("eight rows");
            let dots = if WIDE {
                // SAFETY: `WIDE` is set only by `run_avx512`, on CPUs with AVX-512F too.
                unsafe { avx512::dot8(x, eight, w, b) }
            } else {
                // SAFETY: `FMA` is set only by `run_avx2` and `run_avx512`, on CPUs with
                // AVX2 and FMA.
                unsafe { avx2::dot8(x, eight, w, b) }
            };
            z[8 * e..8 * e + 8].copy_from_slice(&dots);
        }
        return done;
    }
    let _ = (rows, first, starts, x, w, b, z);
    0
}

/// The class predicted from z: z > 0 for one output, else the first largest.
#[inline(always)]
fn predicted(z: &[f32]) -> usize {
    if z.len() == 1 {
        return usize::from(z[0] > 0.0);
    }
    let mut best = 0;
    for (c, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = c;
        }
    }
    best
}

/// The rows of a chunk, in the order the loop visits them.
trait RowOrder {
    fn len(&self) -> usize;
    /// The row visited `i`-th.
    fn row(&self, i: usize) -> usize;
    /// The first row when the rows are consecutive (row i visited i-th from it).
    fn consecutive(&self) -> Option<usize>;
    /// Asks for the rows visited `ahead` places after those visited in `visits` to be
    /// brought into cache.
    fn prefetch(&self, x: &[f32], d: usize, visits: Range<usize>);
}

/// Consecutive rows (a full batch in file order).
struct InOrder {
    start: usize,
    len: usize,
    ahead: usize,
}

impl RowOrder for InOrder {
    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    fn row(&self, i: usize) -> usize {
        self.start + i
    }

    #[inline(always)]
    fn consecutive(&self) -> Option<usize> {
        Some(self.start)
    }

    #[inline(always)]
    fn prefetch(&self, x: &[f32], d: usize, visits: Range<usize>) {
        // Rows are contiguous: the floats `ahead` rows on, up to the chunk's end.
        let end = self.start + self.len;
        let from = (self.start + visits.start + self.ahead).min(end);
        let to = (self.start + visits.end + self.ahead).min(end);
        prefetch(&x[from * d..to * d]);
    }
}

/// Rows listed by index (a shuffled batch), and the labels, asked for with their rows.
struct Listed<'r> {
    rows: &'r [usize],
    ahead: usize,
    y: &'r [f32],
}

impl RowOrder for Listed<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.rows.len()
    }

    #[inline(always)]
    fn row(&self, i: usize) -> usize {
        self.rows[i]
    }

    #[inline(always)]
    fn consecutive(&self) -> Option<usize> {
        None
    }

    #[inline(always)]
    fn prefetch(&self, x: &[f32], d: usize, visits: Range<usize>) {
        let ahead = (visits.start + self.ahead).min(self.rows.len())
            ..(visits.end + self.ahead).min(self.rows.len());
        for &row in &self.rows[ahead] {
            prefetch(&x[row * d..(row + 1) * d]);
            prefetch(&self.y[row..row + 1]);
        }
    }
}

/// Per-thread buffers of the fused loop, kept between calls so steps do not allocate.
#[derive(Default)]
struct Scratch {
    rows: Vec<usize>,
    /// Where each row of the tile begins in X.
    starts: Vec<usize>,
    z: Vec<f32>,
    labels: Vec<f32>,
    losses: Vec<f32>,
    weights: Vec<f32>,
    /// The rows' weights in the held-out set, when a pass sums its metrics too.
    held_weights: Vec<f32>,
    predictions: Vec<f32>,
    sums: Vec<f32>,
    bias_sums: Vec<f32>,
}

impl Scratch {
    /// Sizes the buffers for tiles of `tile` rows, d and k; the sums start at zero.
    fn sized(&mut self, tile: usize, d: usize, k: usize) {
        self.starts.resize(tile, 0);
        self.z.resize(tile * k, 0.0);
        self.labels.resize(tile, 0.0);
        self.losses.resize(tile, 0.0);
        self.weights.resize(tile, 0.0);
        self.held_weights.resize(tile, 0.0);
        self.predictions.resize(tile, 0.0);
        self.sums.clear();
        self.sums.resize(d * k, 0.0);
        self.bias_sums.clear();
        self.bias_sums.resize(k, 0.0);
    }
}

/// [`CpuSession::held_out`] for local rows `0..rows` of global rows from `offset`.
fn held_out_bits(split: &Split, offset: usize, rows: usize) -> Vec<u64> {
    let mut bits = vec![0u64; rows.div_ceil(64)];
    bits.par_iter_mut().enumerate().for_each(|(w, word)| {
        for b in 0..64 {
            let row = 64 * w + b;
            if row < rows && split.holds_out((offset + row) as u32) {
                *word |= 1 << b;
            }
        }
    });
    bits
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Rows per tile of the CPU loop: about 4 KiB of them, so the second pass over the tile
/// reads from the first-level cache and the loop alternates reading and computing finely;
/// at least eight (wide rows: 16 KiB at d = 512), the dot products' group.
fn tile_rows(d: usize) -> usize {
    (4096 / (4 * d.max(1))).clamp(8, 64)
}

/// Asks the CPU to start loading `floats` into the second-level cache. The loop's work
/// between loads otherwise keeps too few of them in flight to use the memory bandwidth.
/// Four hints per turn of the loop: one per turn made the loop's own counting half of the
/// instructions of a tile, and the fewer instructions the core has to get through between
/// reads, the more of the reads it overlaps.
#[inline(always)]
fn prefetch(floats: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
        // One hint per 64-byte line (16 floats): X's rows start on a line (`Floats`).
        let lines = floats.len().div_ceil(16);
        // In bounds: 16·line < floats.len() for every line < lines.
        let at = |line: usize| floats.as_ptr().wrapping_add(16 * line).cast::<i8>();
        let mut line = 0;
        while line + 4 <= lines {
            // SAFETY: a prefetch only hints, and every line is within `floats`.
            unsafe {
                _mm_prefetch::<_MM_HINT_T1>(at(line));
                _mm_prefetch::<_MM_HINT_T1>(at(line + 1));
                _mm_prefetch::<_MM_HINT_T1>(at(line + 2));
                _mm_prefetch::<_MM_HINT_T1>(at(line + 3));
            }
            line += 4;
        }
        while line < lines {
            // SAFETY: as above.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(at(line)) };
            line += 1;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = floats;
}

/// Σ v in eight independent lanes: one chain of adds would wait for each add in turn.
#[inline(always)]
fn lane_sum(v: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let eights = v.chunks_exact(8);
    let rest: f32 = eights.remainder().iter().sum();
    for eight in eights {
        for (l, &e) in lanes.iter_mut().zip(eight) {
            *l += e;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// Moves the f32 tile sums into the f64 partial and clears them.
#[inline(always)]
fn flush(sums: &mut [f32], bias_sums: &mut [f32], partial: &mut [f64]) {
    let wk = sums.len();
    for (p, b) in partial[..wk].iter_mut().zip(sums.iter_mut()) {
        *p += f64::from(*b);
        *b = 0.0;
    }
    for (p, b) in partial[wk..wk + bias_sums.len()]
        .iter_mut()
        .zip(bias_sums.iter_mut())
    {
        *p += f64::from(*b);
        *b = 0.0;
    }
}

/// a·b + c, fused when `FMA` (without hardware FMA, `mul_add` is a slow library call).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// x·w with sixteen independent lanes (two vector registers, so two chains of FMAs).
#[inline(always)]
fn dot<const FMA: bool>(x: &[f32], w: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 16];
    let (xc, wc) = (x.chunks_exact(16), w.chunks_exact(16));
    let (xr, wr) = (xc.remainder(), wc.remainder());
    for (a, b) in xc.zip(wc) {
        for l in 0..16 {
            lanes[l] = madd::<FMA>(a[l], b[l], lanes[l]);
        }
    }
    let mut sum = lanes.iter().sum::<f32>();
    for (a, b) in xr.iter().zip(wr) {
        sum = madd::<FMA>(*a, *b, sum);
    }
    sum
}

/// Σ δ_r·x_r over the rows of a tile (row r at `x[starts[r]..]`) into `sums` (one
/// output), a block of columns at a time so that the block's sums stay in registers across
/// the rows: each row is read once from the first-level cache and each sum written once
/// per tile, not once per row.
#[inline(always)]
fn tile_gradient<const FMA: bool, const WIDE: bool>(
    x: &[f32],
    starts: &[usize],
    deltas: &[f32],
    sums: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        if WIDE {
            // SAFETY: `WIDE` is set only by `run_avx512`, on CPUs with AVX-512F too.
            return unsafe { avx512::gradient(x, starts, deltas, sums) };
        }
        // SAFETY: `FMA` is set only by `run_avx2` and `run_avx512`, on CPUs with AVX2 and
        // FMA.
        return unsafe { avx2::gradient(x, starts, deltas, sums) };
    }
    const BLOCK: usize = 32;
    let d = sums.len();
    let mut start = 0;
    while start + BLOCK <= d {
        let mut acc = [0.0f32; BLOCK];
        acc.copy_from_slice(&sums[start..start + BLOCK]);
        for (&row, &delta) in starts.iter().zip(deltas) {
            let at = row + start;
            let xr: &[f32; BLOCK] = x[at..at + BLOCK].try_into().expect("a block of the row");
            for l in 0..BLOCK {
                acc[l] = madd::<FMA>(delta, xr[l], acc[l]);
            }
        }
        sums[start..start + BLOCK].copy_from_slice(&acc);
        start += BLOCK;
    }
    if start < d {
        for (&row, &delta) in starts.iter().zip(deltas) {
            axpy::<FMA>(delta, &x[row + start..row + d], &mut sums[start..d]);
        }
    }
}

/// acc ← acc + a·x.
#[inline(always)]
fn axpy<const FMA: bool>(a: f32, x: &[f32], acc: &mut [f32]) {
    for (s, v) in acc.iter_mut().zip(x) {
        *s = madd::<FMA>(a, *v, *s);
    }
}

/// Turns the z of each row (k per row in `z`) into δ = ∂ℓ/∂z in place, and writes ℓ when
/// `with_loss` (it costs a logarithm per row). The twin of `math::row_loss_and_delta`, in
/// f32, with a branch-free exponential so that single-output models vectorize across rows.
#[inline(always)]
fn row_deltas<const FMA: bool>(
    objective: &Objective,
    z: &mut [f32],
    y: &[f32],
    loss: &mut [f32],
    with_loss: bool,
) {
    if let Loss::Custom(_) = objective.loss() {
        // The graph is interpreted per row, in f64, as the reference does.
        let k = objective.outputs();
        let (mut z64, mut delta) = (vec![0.0; k], vec![0.0; k]);
        for ((zr, &yr), l) in z.chunks_exact_mut(k).zip(y).zip(loss.iter_mut()) {
            for (a, &b) in z64.iter_mut().zip(zr.iter()) {
                *a = f64::from(b);
            }
            *l = crate::math::row_loss_and_delta(objective, &z64, f64::from(yr), &mut delta) as f32;
            for (a, &b) in zr.iter_mut().zip(&delta) {
                *a = b as f32;
            }
        }
        return;
    }
    match (objective.model(), objective.loss()) {
        (Model::Linear, _) => {
            for ((zr, &yr), l) in z.iter_mut().zip(y).zip(loss.iter_mut()) {
                let r = *zr - yr;
                *zr = 2.0 * r;
                *l = r * r;
            }
        }
        (Model::Logistic, Loss::Bce) if with_loss => {
            for ((zr, &yr), l) in z.iter_mut().zip(y).zip(loss.iter_mut()) {
                let (s, e) = sigmoid::<FMA>(*zr);
                // softplus(z) − y z, softplus(z) = max(z, 0) + ln(1 + e^−|z|).
                *l = zr.max(0.0) + ln_1p_unit::<FMA>(e) - yr * *zr;
                *zr = s - yr;
            }
        }
        (Model::Logistic, Loss::Bce) => {
            for (zr, &yr) in z.iter_mut().zip(y) {
                *zr = sigmoid::<FMA>(*zr).0 - yr;
            }
        }
        (Model::Logistic, _) => {
            for ((zr, &yr), l) in z.iter_mut().zip(y).zip(loss.iter_mut()) {
                let (s, _) = sigmoid::<FMA>(*zr);
                let r = s - yr;
                *zr = 2.0 * r * s * (1.0 - s);
                *l = r * r;
            }
        }
        (Model::Softmax, _) => {
            let k = objective.outputs();
            for ((zr, &yr), l) in z.chunks_exact_mut(k).zip(y).zip(loss.iter_mut()) {
                let m = zr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let label = yr as usize;
                let z_label = zr[label];
                let mut sum = 0.0;
                for v in zr.iter_mut() {
                    *v = exp_nonpositive::<FMA>(*v - m);
                    sum += *v;
                }
                for (c, v) in zr.iter_mut().enumerate() {
                    *v = *v / sum - if c == label { 1.0 } else { 0.0 };
                }
                if with_loss {
                    *l = m + sum.ln() - z_label;
                }
            }
        }
    }
}

/// σ(z) and exp(−|z|), from one exponential that cannot overflow; no branches.
#[inline(always)]
fn sigmoid<const FMA: bool>(z: f32) -> (f32, f32) {
    let e = exp_nonpositive::<FMA>(-z.abs());
    let s = if z >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    };
    (s, e)
}

/// e^x for x ≤ 0, branch-free so loops over it vectorize: x = n·ln 2 + r with n an integer
/// and |r| ≤ ½ ln 2 (ln 2 split in two so that n·ln 2 is exact enough), e^r by its Taylor
/// polynomial to degree 7 (error below 1e-8), 2^n put into the exponent bits. Below −87,
/// where e^x leaves the normal floats, it returns e^−87.
#[inline(always)]
fn exp_nonpositive<const FMA: bool>(x: f32) -> f32 {
    const INVERSE_FACTORIALS: [f32; 8] = [
        1.0,
        1.0,
        0.5,
        0.166_666_67,
        0.041_666_668,
        0.008_333_334,
        0.001_388_889,
        0.000_198_412_7,
    ];
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding then subtracting 1.5·2^23 rounds to the nearest integer in f32 arithmetic.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 0.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = INVERSE_FACTORIALS[7];
    for &c in INVERSE_FACTORIALS[..7].iter().rev() {
        p = madd::<FMA>(p, r, c);
    }
    // `shifted`'s low mantissa bits hold n (|n| ≤ 126 < 2^22): integer arithmetic on the
    // bits gives 2^n without a float-to-integer conversion, which would not vectorize.
    let biased = shifted
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127);
    p * f32::from_bits(biased << 23)
}

/// ln(1 + e) for 0 ≤ e ≤ 1, branch-free so loops over it vectorize: 2 atanh(s) with
/// s = e / (2 + e) ≤ 1/3 (no cancellation when e is tiny), by its odd series to s¹⁷
/// (truncation below 1e-10 relative).
#[inline(always)]
fn ln_1p_unit<const FMA: bool>(e: f32) -> f32 {
    const INVERSE_ODDS: [f32; 9] = [
        1.0,
        1.0 / 3.0,
        1.0 / 5.0,
        1.0 / 7.0,
        1.0 / 9.0,
        1.0 / 11.0,
        1.0 / 13.0,
        1.0 / 15.0,
        1.0 / 17.0,
    ];
    let s = e / (2.0 + e);
    let t = s * s;
    let mut p = INVERSE_ODDS[8];
    for &c in INVERSE_ODDS[..8].iter().rev() {
        p = madd::<FMA>(p, t, c);
    }
    2.0 * s * p
}

/// One streaming read of `x` on all cores, and nothing else: the memory floor of an epoch.
/// Returns the sum so the reads cannot be optimised away.
pub fn stream_read(x: &[f32]) -> f32 {
    // The floor is as good a read as this file can write: the loop's widest loads and its
    // prefetch distance (each measured faster than without).
    let ahead = PREFETCH_BYTES / 4;
    x.par_chunks(CHUNK_ROWS * 16)
        .map(|chunk| match Simd::detected() {
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA (the detected level).
            #[cfg(target_arch = "x86_64")]
            Simd::Avx512 => unsafe { avx512::stream_sum(chunk, ahead) },
            // SAFETY: the CPU has AVX2 and FMA (the detected level).
            #[cfg(target_arch = "x86_64")]
            Simd::Avx2 => unsafe { avx2::stream_sum(chunk, ahead) },
            _ => sum_lanes(chunk),
        })
        .sum()
}

/// Σ x with 32 independent lanes.
fn sum_lanes(x: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 32];
    let chunks = x.chunks_exact(32);
    let rest: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..32 {
            lanes[l] += c[l];
        }
    }
    lanes.iter().sum::<f32>() + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_logarithm_is_within_two_ulps() {
        for ln_1p in [ln_1p_unit::<false>, ln_1p_unit::<true>] {
            let mut worst = 0.0f64;
            for i in 0..=1_000_000 {
                // Tiny e too: e^−87 is the smallest the logistic loss passes.
                let e = if i < 1000 {
                    (-87.0f32 + i as f32 * 0.08).exp()
                } else {
                    i as f32 * 1e-6
                };
                let exact = f64::from(e).ln_1p();
                let ulp = f64::from(f32::EPSILON) * exact.max(f64::from(f32::MIN_POSITIVE));
                worst = worst.max((f64::from(ln_1p(e)) - exact).abs() / ulp);
            }
            assert!(worst <= 2.0, "{worst} ulps");
        }
    }

    #[test]
    fn the_polynomial_exponential_is_within_two_ulps() {
        // Both forms: fused multiply-adds (the AVX2 and AVX-512 loops) and separate ones.
        for exp in [exp_nonpositive::<false>, exp_nonpositive::<true>] {
            let mut worst = 0.0f64;
            for i in 0..=870_000 {
                let x = -(i as f32) * 1e-4;
                let exact = f64::from(x).exp();
                let ulp = f64::from(f32::EPSILON) * exact;
                worst = worst.max((f64::from(exp(x)) - exact).abs() / ulp);
            }
            assert!(worst <= 2.0, "worst error {worst} ulp");
            assert_eq!(exp(0.0), 1.0);
            assert!(exp(-1000.0) > 0.0);
        }
    }
}

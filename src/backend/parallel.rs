//! Data-parallel descent: the rows split across workers (several GPUs, the CPU, and with
//! MPI several processes), each computing the sums of its own rows for every step. The sums
//! are added in a fixed order (workers in order, then processes in rank order), the update
//! is applied once in f64, and every worker is given the same new parameters. Per step only
//! (d + 1)·k + 5 numbers per worker cross between workers.

use super::host::{self, HostDescent};
use super::{Backend, Session, evaluate_then_run, full_step};
use crate::descent::{
    ClassWeights, Configured, Data, Evaluation, Evaluations, HessianSums, PassSums, RowSet,
    RunOutcome, Setup, Snapshot, Step,
};
use crate::error::{Error, Result};
use crate::model::{Objective, Params};

/// Adds vectors across processes. Within one process there is nothing to add.
pub trait Combine: Send + Sync {
    /// The element-wise sum of `local` over every process, added in rank order, the same
    /// bits on every process.
    fn sum(&self, local: Vec<f64>) -> Result<Vec<f64>>;

    /// This process's rank and the number of processes.
    fn rank(&self) -> (usize, usize) {
        (0, 1)
    }
}

/// One process: the sum is the local vector.
#[derive(Clone, Copy, Debug, Default)]
pub struct Local;

impl Combine for Local {
    fn sum(&self, local: Vec<f64>) -> Result<Vec<f64>> {
        Ok(local)
    }
}

/// Rows `[r·n/p, (r + 1)·n/p)` of `n`: the share of part `r` of `p`.
pub fn share(n: usize, r: usize, p: usize) -> std::ops::Range<usize> {
    let at = |i: usize| ((n as u128 * i as u128) / p as u128) as usize;
    at(r)..at(r + 1)
}

/// Part `r` of `p` of rows `rows`, for `data`: sparse rows are split so that each part
/// holds about the same number of non-zeros (a pass's work), cut between rows, with at
/// least one row each where there are as many rows as parts; other rows evenly
/// ([`share`]). Every process computes the same parts.
pub fn share_of(
    data: &Data<'_>,
    rows: std::ops::Range<usize>,
    r: usize,
    p: usize,
) -> std::ops::Range<usize> {
    let Some(sparse) = data.sparse() else {
        let local = share(rows.len(), r, p);
        return rows.start + local.start..rows.start + local.end;
    };
    let offsets = sparse.offsets();
    let (first, total) = (offsets[rows.start], offsets[rows.end] - offsets[rows.start]);
    let at = |i: usize| {
        if i == 0 || i == p {
            return if i == 0 { rows.start } else { rows.end };
        }
        let target = first + ((u128::from(total) * i as u128) / p as u128) as u64;
        // The first row of the window whose non-zeros start at or past the target.
        let row = rows.start + offsets[rows.clone()].partition_point(|&o| o < target);
        if rows.len() >= p {
            row.clamp(rows.start + i, rows.end - (p - i))
        } else {
            row
        }
    };
    at(r)..at(r + 1)
}

/// Several backends (and, through [`Combine`], several processes) as one.
pub struct Parallel {
    workers: Vec<Box<dyn Backend>>,
    combine: Box<dyn Combine>,
}

impl Parallel {
    /// The rows split evenly across `workers`, in order.
    pub fn new(workers: Vec<Box<dyn Backend>>) -> Self {
        Parallel {
            workers,
            combine: Box::new(Local),
        }
    }

    /// Across processes too: this process takes its rank's share of the rows.
    pub fn across(mut self, combine: Box<dyn Combine>) -> Self {
        self.combine = combine;
        self
    }
}

impl Backend for Parallel {
    fn name(&self) -> &'static str {
        "parallel"
    }

    fn open<'a>(&'a self, data: Data<'a>, objective: Objective) -> Result<Box<dyn Session + 'a>> {
        if self.workers.is_empty() {
            return Err(Error::option(
                "devices",
                "(none)",
                "name at least one device",
            ));
        }
        let (rows, features) = (data.rows(), data.features());
        let (rank, processes) = self.combine.rank();
        let mine = share_of(&data, 0..rows, rank, processes);
        let parts = self.workers.len();
        if mine.len() < parts {
            return Err(Error::option(
                "devices",
                parts * processes,
                format!("more workers than the {}", crate::error::count(rows, "row")),
            ));
        }
        let mut sessions = Vec::with_capacity(parts);
        for (i, worker) in self.workers.iter().enumerate() {
            let window = share_of(&data, mine.clone(), i, parts);
            sessions.push(worker.open(Data::part(data.clone(), window)?, objective)?);
        }
        Ok(Box::new(ParallelSession {
            workers: sessions,
            combine: self.combine.as_ref(),
            objective,
            rows,
            features,
            descent: HostDescent::new(features, objective.outputs()),
        }))
    }
}

/// Workers of one problem, driven step by step.
pub struct ParallelSession<'a> {
    workers: Vec<Box<dyn Session + 'a>>,
    combine: &'a dyn Combine,
    objective: Objective,
    rows: usize,
    features: usize,
    /// The optimizer's parameters and state, in f64, the same in every process.
    descent: HostDescent,
}

impl ParallelSession<'_> {
    /// Gives every worker the raw-space parameters θ stands for.
    fn broadcast(&mut self) -> Result<()> {
        let params = self.descent.params();
        for w in &mut self.workers {
            w.set_params(&params)?;
        }
        Ok(())
    }

    /// Sums `each` over workers (in order) and processes (in rank order).
    fn total(
        &mut self,
        each: &mut dyn FnMut(&mut dyn Session) -> Result<Vec<f64>>,
    ) -> Result<Vec<f64>> {
        let mut sum: Vec<f64> = Vec::new();
        for w in &mut self.workers {
            let part = each(w.as_mut())?;
            if sum.is_empty() {
                sum = part;
            } else {
                for (a, b) in sum.iter_mut().zip(&part) {
                    *a += b;
                }
            }
        }
        self.combine.sum(sum)
    }

    fn sums(&mut self, step: &Step, rows: RowSet) -> Result<PassSums> {
        let flat = self.total(&mut |w| Ok(w.pass_sums(step, rows)?.to_flat()))?;
        Ok(PassSums::from_flat(&flat))
    }

    /// Applies `steps` (see [`Session::run`]). With `evaluate`, the first step's sums
    /// also give the evaluation of its rows at the parameters before it; when that loss is
    /// not finite, no step is applied (and the outcome says `Completed`).
    fn descend(
        &mut self,
        steps: &[Step],
        evaluate: bool,
    ) -> Result<(Option<Evaluation>, RunOutcome)> {
        let mut evaluation = None;
        for (s, step) in steps.iter().enumerate() {
            let sums = self.sums(step, RowSet::Training)?;
            if evaluate && s == 0 {
                let e = Evaluation::from_sums(self.objective.model(), sums.metrics);
                evaluation = Some(e);
                if !e.loss.is_finite() {
                    return Ok((evaluation, RunOutcome::Completed));
                }
            }
            let grad = sums.mean_gradient();
            let loss = sums.metrics[0] / sums.metrics[1].max(f64::MIN_POSITIVE);
            if !loss.is_finite() || !self.descent.step(grad, step) {
                return Ok((evaluation, RunOutcome::Diverged { step: s }));
            }
            self.broadcast()?;
        }
        Ok((evaluation, RunOutcome::Completed))
    }
}

impl Session for ParallelSession<'_> {
    fn describe(&self) -> String {
        let workers: Vec<String> = self.workers.iter().map(|w| w.describe()).collect();
        let (_, processes) = self.combine.rank();
        let across = if processes > 1 {
            format!(" in each of {processes} processes")
        } else {
            String::new()
        };
        format!("parallel ({}){across}", workers.join(" + "))
    }

    fn objective(&self) -> Objective {
        self.objective
    }

    fn rows(&self) -> usize {
        self.rows
    }

    fn features(&self) -> usize {
        self.features
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        self.descent.set_params(params)?;
        self.broadcast()
    }

    fn params(&mut self) -> Result<Params> {
        Ok(self.descent.params())
    }

    fn predict(&mut self) -> Result<Vec<f64>> {
        if self.combine.rank().1 > 1 {
            return Err(Error::option(
                "predict",
                "across processes",
                "each process holds only its share of the rows; predict in one process",
            ));
        }
        let mut z = Vec::new();
        for w in &mut self.workers {
            z.extend(w.predict()?);
        }
        Ok(z)
    }

    fn run(&mut self, steps: &[Step]) -> Result<RunOutcome> {
        Ok(self.descend(steps, false)?.1)
    }

    fn evaluate_and_run(
        &mut self,
        steps: &[Step],
        held_out: bool,
    ) -> Result<(Evaluations, Option<RunOutcome>)> {
        let full = full_step(self.rows).batch;
        if steps.first().is_some_and(|s| s.batch == full) {
            // The workers' sums of the first step hold the training rows' metrics; the
            // held-out rows' are a pass of their own.
            let validation = if held_out {
                Some(self.evaluate(RowSet::Validation)?)
            } else {
                None
            };
            if let (Some(training), outcome) = self.descend(steps, true)? {
                let evaluations = Evaluations {
                    training,
                    validation,
                };
                return Ok((evaluations, training.loss.is_finite().then_some(outcome)));
            }
        }
        evaluate_then_run(self, steps, held_out)
    }

    fn configure(&mut self, setup: &Setup) -> Result<Configured> {
        setup.rule.validate()?;
        let raw = self.descent.unconfigure(setup);
        let (d, k) = (self.features, self.objective.outputs());
        // Workers only compute sums: they need the split and the row weights, not the
        // update rule or the standardization (the raw-space parameters are what they see).
        let mut plain = Setup {
            split: setup.split,
            ..Setup::default()
        };
        for w in &mut self.workers {
            w.configure(&plain)?;
        }
        let rows = self.rows as u64;
        let configured = host::configuration(setup, d, k, rows, &mut |c| self.column_sums(c))?;
        if let Some(w) = &configured.class_weights {
            plain.class_weights = Some(ClassWeights::Given(w.clone()));
            for worker in &mut self.workers {
                worker.configure(&plain)?;
            }
        }
        self.descent.configure(setup, configured.clone(), raw);
        self.broadcast()?;
        Ok(configured)
    }

    fn pass_sums(&mut self, step: &Step, rows: RowSet) -> Result<PassSums> {
        self.sums(step, rows)
    }

    fn has_curvature(&self) -> bool {
        self.workers.iter().all(|w| w.has_curvature())
    }

    fn has_hessian(&self) -> bool {
        self.workers.iter().all(|w| w.has_hessian())
    }

    fn prefers_products(&self) -> bool {
        self.workers.iter().any(|w| w.prefers_products())
    }

    fn hessian_sums(&mut self, rows: RowSet) -> Result<HessianSums> {
        let p = (self.features + 1) * self.objective.outputs();
        let flat = self.total(&mut |w| Ok(w.hessian_sums(rows)?.to_flat()))?;
        Ok(HessianSums::from_flat(&flat, p))
    }

    fn hessian_vector_sums(&mut self, v: &[f64], rows: RowSet) -> Result<Vec<f64>> {
        self.total(&mut |w| w.hessian_vector_sums(v, rows))
    }

    fn column_sums(&mut self, center: &[f64]) -> Result<Vec<f64>> {
        self.total(&mut |w| w.column_sums(center))
    }

    fn snapshot(&mut self) -> Result<Snapshot> {
        Ok(self.descent.snapshot())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.descent.restore(snapshot)?;
        self.broadcast()
    }
}

#[cfg(test)]
mod tests {
    use super::{share, share_of};
    use crate::backend::Data;
    use crate::sparse::SparseDataset;

    #[test]
    fn sparse_rows_are_shared_by_their_non_zeros() {
        // 100 rows of 9 non-zeros, then 900 rows of 1: 1 800 non-zeros in all.
        let lengths: Vec<u64> = (0..1000).map(|i| if i < 100 { 9 } else { 1 }).collect();
        let mut offsets = vec![0u64];
        for l in &lengths {
            offsets.push(offsets[offsets.len() - 1] + l);
        }
        let indices: Vec<u32> = lengths.iter().flat_map(|&l| 0..l as u32).collect();
        let rows =
            SparseDataset::from_csr(offsets.clone(), indices, None, vec![0.0; 1000], 9).unwrap();
        let data = Data::Sparse(&rows);
        let parts: Vec<_> = (0..2).map(|r| share_of(&data, 0..1000, r, 2)).collect();
        assert_eq!(parts, vec![0..100, 100..1000], "900 non-zeros each");
        let quarters: Vec<_> = (0..4).map(|r| share_of(&data, 100..1000, r, 4)).collect();
        assert_eq!(quarters, vec![100..325, 325..550, 550..775, 775..1000]);
        // More parts than non-zero-heavy rows: every part keeps a row.
        let few =
            SparseDataset::from_csr(vec![0, 5, 5, 5], vec![0, 1, 2, 3, 4], None, vec![0.0; 3], 5)
                .unwrap();
        let data = Data::Sparse(&few);
        let parts: Vec<_> = (0..3).map(|r| share_of(&data, 0..3, r, 3)).collect();
        assert_eq!(parts, vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn shares_cover_every_row_once() {
        for (n, p) in [(10, 3), (7, 7), (1_000_003, 4), (5, 1)] {
            let parts: Vec<_> = (0..p).map(|r| share(n, r, p)).collect();
            assert_eq!(parts[0].start, 0);
            assert_eq!(parts[p - 1].end, n);
            for w in parts.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
            let (min, max) = parts
                .iter()
                .fold((n, 0), |(a, b), r| (a.min(r.len()), b.max(r.len())));
            assert!(max - min <= 1, "{n} over {p}: {parts:?}");
        }
    }
}

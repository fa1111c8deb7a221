//! The CPU session: the rows, the parameters and their optimizer state, and the
//! session contract over the passes of `pass.rs`.

use std::borrow::Cow;

use rayon::prelude::*;

use super::order::{chunk_rows, held_out_bits};
use super::pass::{METRICS, Pass, Summed, Wanted, Weighting};
use crate::backend::host::HostDescent;
use crate::backend::host::check_direction;
use crate::backend::{
    Batch, Configured, Evaluation, Evaluations, HessianSums, HostRows, PassSums, RowSet,
    RunOutcome, Session, Setup, Snapshot, Step, evaluate_then_run,
};
use crate::data::Dataset;
use crate::error::Result;
use crate::model::{Objective, Params};
use crate::simd::Simd;

/// Data in host memory; the optimizer's parameters in f64, the raw-space ones the loop
/// reads in f32.
pub struct CpuSession<'a> {
    /// Global rows `offset..offset + data.rows()` of a problem of `total` rows.
    pub(super) data: Cow<'a, Dataset>,
    pub(super) offset: usize,
    pub(super) total: usize,
    pub(super) objective: Objective,
    /// The optimizer's parameters and state in f64, and what the session was configured
    /// with.
    pub(super) descent: HostDescent,
    /// Raw-space Wᵀ (k rows of d) then b: each class's weights contiguous for the dot
    /// products.
    pub(super) wt: Vec<f32>,
    /// One partial per chunk ((d + 1)·k gradient sums class-major, then Σwℓ, Σw,
    /// Σw[correct], Σwy, Σwy², then those five of the held-out rows), reused every step.
    pub(super) partials: Vec<Vec<f64>>,
    /// The vector instructions the loop runs with.
    pub(super) simd: Simd,
    /// Bit r % 64 of word r / 64: whether local row r is held out (empty without a
    /// split). Hashing each row's index again in every pass cost more than the pass.
    pub(super) held_out: Vec<u64>,
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
            descent: HostDescent::new(d, k),
            wt: vec![0.0; (d + 1) * k],
            partials: Vec::new(),
            simd,
            held_out: Vec::new(),
        }
    }

    /// Rewrites the loop's f32 Wᵀ and b from θ.
    pub(super) fn refresh(&mut self) {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let raw = self.descent.raw();
        for c in 0..k {
            for j in 0..d {
                self.wt[c * d + j] = raw[j * k + c] as f32;
            }
            self.wt[d * k + c] = raw[d * k + c] as f32;
        }
    }

    /// How the rows count in a pass over `rows`.
    pub(super) fn weighting(&self, rows: RowSet) -> Weighting<'_> {
        Weighting {
            sample: self.data.weights(),
            class: self.descent.class_weights(),
            held_out: self
                .descent
                .setup
                .split
                .is_some()
                .then_some(&self.held_out[..]),
            rows,
        }
    }

    /// The weighted mean ∇J and the metric sums over the batch's rows in `rows`.
    pub(super) fn batch_gradient(&mut self, batch: &Batch, rows: RowSet, wanted: Wanted) -> Summed {
        let (d, k) = (self.data.features(), self.objective.outputs());
        let p = (d + 1) * k + 2 * METRICS;
        let chunk = chunk_rows(batch.len as usize);
        let chunks = (batch.len as usize).div_ceil(chunk);
        let mut partials = std::mem::take(&mut self.partials);
        if partials.len() < chunks {
            partials.resize_with(chunks, || vec![0.0; p]);
        }
        let pass = Pass {
            data: &self.data,
            offset: self.offset,
            objective: self.objective,
            wt: &self.wt,
            with_gradient: wanted != Wanted::Metrics,
            with_metrics: wanted != Wanted::Gradient,
            with_held_out: wanted == Wanted::BothAndHeldOut && self.descent.setup.split.is_some(),
            simd: self.simd,
            weights: self.weighting(rows),
            id: Pass::next_id(),
        };
        partials[..chunks]
            .par_iter_mut()
            .enumerate()
            .for_each(|(i, partial)| {
                let start = batch.start + (i * chunk) as u32;
                let end = (start + chunk as u32).min(batch.start + batch.len);
                partial.fill(0.0);
                pass.run(batch, start..end, partial);
            });
        // In chunk order: the same sums whatever thread ran which chunk.
        let summed = &partials[..chunks];
        let sum = |e: usize| summed.iter().fold(0.0, |t, partial| t + partial[e]);
        let (mut metrics, mut held_out) = ([0.0; METRICS], [0.0; METRICS]);
        for m in 0..METRICS {
            metrics[m] = sum((d + 1) * k + m);
            held_out[m] = sum((d + 1) * k + METRICS + m);
        }
        let weight = metrics[1];
        let mean = |v: f64| if weight > 0.0 { v / weight } else { 0.0 };
        // Partials hold Wᵀ's layout (class-major); W's is feature-major. Each block of
        // features is summed and transposed by one core, a class's line of them at a time.
        let mut grad = vec![0.0; (d + 1) * k];
        let (weights, bias) = grad.split_at_mut(d * k);
        let add_and_transpose = |(b, rows): (usize, &mut [f64])| {
            let (j0, width) = (b * FEATURE_BLOCK, rows.len() / k);
            let mut line = [0.0; FEATURE_BLOCK];
            let line = &mut line[..width];
            for c in 0..k {
                let at = c * d + j0;
                line.fill(0.0);
                for partial in summed {
                    for (t, v) in line.iter_mut().zip(&partial[at..at + width]) {
                        *t += v;
                    }
                }
                for (j, &v) in line.iter().enumerate() {
                    rows[j * k + c] = mean(v);
                }
            }
        };
        let blocks = FEATURE_BLOCK * k;
        if d * k >= PARALLEL_SUMS {
            weights
                .par_chunks_mut(blocks)
                .enumerate()
                .for_each(add_and_transpose);
        } else {
            weights
                .chunks_mut(blocks)
                .enumerate()
                .for_each(add_and_transpose);
        }
        for (c, g) in bias.iter_mut().enumerate() {
            *g = mean(sum(d * k + c));
        }
        self.partials = partials;
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
    pub(super) fn descend(
        &mut self,
        steps: &[Step],
        first: Wanted,
    ) -> (Option<Evaluations>, RunOutcome) {
        let model = self.objective.model();
        let mut evaluations = None;
        for (s, step) in steps.iter().enumerate() {
            let wanted = if s == 0 { first } else { Wanted::Gradient };
            let summed = self.batch_gradient(&step.batch, RowSet::Training, wanted);
            let grad = summed.grad;
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
            if !self.descent.step(grad, step) {
                return (evaluations, RunOutcome::Diverged { step: s });
            }
            self.refresh();
            if self.wt.iter().any(|v| !v.is_finite()) {
                return (evaluations, RunOutcome::Diverged { step: s });
            }
        }
        (evaluations, RunOutcome::Completed)
    }

    pub(super) fn full_batch(&self) -> Batch {
        Batch {
            start: 0,
            len: self.total as u32,
            order: None,
        }
    }
}

/// Gradients of at least this many weights are summed over the chunks on all cores (fewer
/// are not worth waking them for: logistic regression on 64 features has 64).
const PARALLEL_SUMS: usize = 1 << 16;

/// Features whose sums one core adds and transposes at a time: a line of a class's sums
/// from each partial (512 bytes), and the block's rows of the gradient in cache.
const FEATURE_BLOCK: usize = 64;

impl Session for CpuSession<'_> {
    fn describe(&self) -> String {
        format!(
            "cpu ({} threads, {})",
            rayon::current_num_threads(),
            match self.simd {
                Simd::Amx => "AVX-512 and AMX",
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
        self.descent.set_params(params)?;
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

    fn predict(&mut self) -> Result<Vec<f64>> {
        let raw = self.descent.raw();
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
        self.held_out = match setup.split {
            Some(split) => held_out_bits(&split, self.offset, self.data.rows()),
            None => Vec::new(),
        };
        let (data, offset) = (&self.data, self.offset);
        let rows = data.rows() as u64;
        let configured = self.descent.reconfigure(setup, rows, |descent, c| {
            descent.column_sums(data, offset, c)
        })?;
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

    fn has_curvature(&self) -> bool {
        true
    }

    fn hessian_sums(&mut self, rows: RowSet) -> Result<HessianSums> {
        Ok(self.hessian_pass(rows))
    }

    fn hessian_vector_sums(&mut self, v: &[f64], rows: RowSet) -> Result<Vec<f64>> {
        check_direction(v, self.descent.theta.len())?;
        Ok(self.hessian_vector_pass(v, rows))
    }

    fn column_sums(&mut self, center: &[f64]) -> Result<Vec<f64>> {
        Ok(self.descent.column_sums(&self.data, self.offset, center))
    }

    fn snapshot(&mut self) -> Result<Snapshot> {
        Ok(self.descent.snapshot())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.descent.restore(snapshot)?;
        self.refresh();
        Ok(())
    }
}

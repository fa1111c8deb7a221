//! Backends behind one small trait: a [`Backend`] opens a [`Session`] on some data, and
//! the session holds the data and the parameters where the backend computes (device
//! memory for the GPU) and runs descent steps there.
//!
//! Each backend lives in its own module below this one: [`cpu`], [`gpu`], [`mod@reference`],
//! [`parallel`] (a backend made of backends) and `mpi`. The vocabulary they speak
//! ([`Step`], [`RowSet`], [`PassSums`], …) is [`crate::descent`], re-exported here;
//! choosing one is [`crate::selection`], above them all.

pub mod cpu;
#[cfg(feature = "gpu")]
pub mod gpu;
pub(crate) mod host;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod options;
pub mod parallel;
pub mod reference;
pub mod sparse;

pub use options::GpuOptions;

use crate::data::Dataset;
pub use crate::descent::{
    Batch, ClassWeights, Configured, Data, Evaluation, Evaluations, HessianSums, PassSums, RowSet,
    RunOutcome, Setup, Snapshot, Split, Step,
};
pub(crate) use crate::descent::{HostRows, check_host_memory};
use crate::error::Result;
use crate::model::{Gradient, Objective, Params};

impl Evaluations {
    /// [`Session::evaluate`] of the training rows and, with `held_out`, of the held-out
    /// rows: a pass each.
    pub fn of<S: Session + ?Sized>(session: &mut S, held_out: bool) -> Result<Self> {
        let training = session.evaluate(RowSet::Training)?;
        let validation = if held_out {
            Some(session.evaluate(RowSet::Validation)?)
        } else {
            None
        };
        Ok(Evaluations {
            training,
            validation,
        })
    }
}

/// [`Session::evaluate_and_run`] in separate passes: [`Evaluations::of`], then
/// [`Session::run`] unless the training loss is not finite.
pub fn evaluate_then_run<S: Session + ?Sized>(
    session: &mut S,
    steps: &[Step],
    held_out: bool,
) -> Result<(Evaluations, Option<RunOutcome>)> {
    let evaluations = Evaluations::of(session, held_out)?;
    if !evaluations.training.loss.is_finite() {
        return Ok((evaluations, None));
    }
    Ok((evaluations, Some(session.run(steps)?)))
}

/// A problem loaded on a backend: data and parameters live where the backend computes.
pub trait Session {
    /// What runs this session, e.g. `gpu (llvmpipe (LLVM 15.0.6, 256 bits), Vulkan)`.
    fn describe(&self) -> String;

    fn objective(&self) -> Objective;

    fn rows(&self) -> usize;

    fn features(&self) -> usize;

    fn set_params(&mut self, params: &Params) -> Result<()>;

    fn params(&mut self) -> Result<Params>;

    /// J and ∇J at the current parameters, over all rows: the weighted means of
    /// [`Session::pass_sums`] of one full batch.
    fn gradient(&mut self) -> Result<Gradient> {
        let sums = self.pass_sums(&full_step(self.rows()), RowSet::All)?;
        let mean = sums.mean_gradient();
        let dk = self.features() * self.objective().outputs();
        Ok(Gradient {
            loss: sums.metrics[0] / sums.metrics[1].max(f64::MIN_POSITIVE),
            weights: mean[..dk].to_vec(),
            bias: mean[dk..].to_vec(),
        })
    }

    /// J at the current parameters, over all rows: [`Session::evaluate`]'s loss.
    fn loss(&mut self) -> Result<f64> {
        Ok(self.evaluate(RowSet::All)?.loss)
    }

    /// z = xW + b of every row at the current parameters: n rows of k values, row-major.
    /// See [`crate::predict::Predictions`] for the activations.
    fn predict(&mut self) -> Result<Vec<f64>>;

    /// Applies the steps in order, stopping before the first one whose batch loss,
    /// gradient or updated parameters are not all finite. Training passes skip held-out
    /// rows.
    fn run(&mut self, steps: &[Step]) -> Result<RunOutcome>;

    /// [`Session::evaluate`] of the training rows (and of the held-out rows with
    /// `held_out`), then [`Session::run`] of `steps` unless the training loss is not
    /// finite (`None`: no step ran). A backend may take the evaluations from the first
    /// step's own pass when that step is over every row (the same rows at the same
    /// parameters), which saves a read of X for each.
    fn evaluate_and_run(
        &mut self,
        steps: &[Step],
        held_out: bool,
    ) -> Result<(Evaluations, Option<RunOutcome>)> {
        evaluate_then_run(self, steps, held_out)
    }

    /// Fixes the update rule, the held-out rows, class weights and standardization for
    /// the steps to come; resets the optimizer state. The parameters keep their raw-space
    /// values.
    fn configure(&mut self, setup: &Setup) -> Result<Configured>;

    /// The loss and metrics of the current parameters on `rows`: the metric sums of
    /// [`Session::pass_sums`] of one full batch. A backend may override it with a pass
    /// that skips the gradient.
    fn evaluate(&mut self, rows: RowSet) -> Result<Evaluation> {
        let sums = self.pass_sums(&full_step(self.rows()), rows)?;
        Ok(Evaluation::from_sums(
            self.objective().model(),
            sums.metrics,
        ))
    }

    /// The unnormalized sums of a pass over this session's rows of `step`'s batch, at the
    /// current parameters: what data-parallel descent adds up across workers.
    fn pass_sums(&mut self, step: &Step, rows: RowSet) -> Result<PassSums>;

    /// Whether this session has the curvature passes, [`Session::hessian_sums`] and
    /// [`Session::hessian_vector_sums`], that the Newton solvers take.
    fn has_curvature(&self) -> bool {
        false
    }

    /// Whether [`Session::hessian_sums`], the exact Newton's pass, is among its curvature
    /// passes (the GPU's sparse rows have Hessian-vector products only).
    fn has_hessian(&self) -> bool {
        self.has_curvature()
    }

    /// Whether `auto` should take Hessian-vector products (`newton-cg`) even where this
    /// session builds the exact Hessian: sparse rows, whose Hessian costs each row's
    /// non-zeros squared and a dense factorization, where a product costs a pass.
    fn prefers_products(&self) -> bool {
        false
    }

    /// The sums of a gradient pass over `rows` at the current parameters and, from the
    /// same read of the rows, Σ w·(x̃x̃ᵀ ⊗ ∂²ℓ/∂z∂zᵀ): see [`HessianSums`].
    fn hessian_sums(&mut self, rows: RowSet) -> Result<HessianSums> {
        let _ = rows;
        Err(no_curvature(self.describe()))
    }

    /// Σ w·x̃ ⊗ (∂²ℓ/∂z∂zᵀ · (x̃·V)) over `rows` at the current parameters: the Hessian
    /// sums times the raw-space direction `v` (θ's layout: V row-major d×k, then its bias
    /// part), in one pass.
    fn hessian_vector_sums(&mut self, v: &[f64], rows: RowSet) -> Result<Vec<f64>> {
        let _ = (v, rows);
        Err(no_curvature(self.describe()))
    }

    /// Over this session's training rows (after [`Session::configure`] fixed the split):
    /// Σ(x − center) and Σ(x − center)² per feature, the count of each label (max(k, 2)
    /// slots, the last one taking larger labels), and the row count.
    fn column_sums(&mut self, center: &[f64]) -> Result<Vec<f64>>;

    /// Everything the descent carries from step to step, exactly as the session holds it
    /// (f32 values widened to f64 on the GPU): restoring it continues bit for bit.
    fn snapshot(&mut self) -> Result<Snapshot>;

    /// Puts back a [`Session::snapshot`] of a session of the same problem and setup.
    fn restore(&mut self, snapshot: &Snapshot) -> Result<()>;
}

/// What a backend without passes over sparse rows answers them.
#[cfg(feature = "gpu")]
pub(crate) fn no_sparse_passes(backend: &str) -> crate::error::Error {
    crate::error::Error::option(
        "backend",
        backend,
        "has no passes over sparse rows yet; --backend cpu fits them (and reference, on \
         rows few enough to make dense)",
    )
}

/// What a session without curvature passes answers the Newton solvers.
fn no_curvature(session: String) -> crate::error::Error {
    crate::error::Error::option(
        "solver",
        "newton",
        format!(
            "{session} has no Hessian passes yet; solver lbfgs needs only gradients, and the \
             cpu and reference backends have them"
        ),
    )
}

/// A step over all `rows` rows in file order, for passes that take no step (its `t` is
/// the first step's, so that nothing derived from it divides by zero).
pub(crate) fn full_step(rows: usize) -> Step {
    Step {
        epoch: 0,
        t: 1,
        batch: Batch {
            start: 0,
            len: rows as u32,
            order: None,
        },
        lr: 0.0,
    }
}

/// A place to compute: opens sessions on data. Shareable between threads: each thread
/// opens its own sessions.
pub trait Backend: Send + Sync {
    /// A short name: `gpu`, `cpu`, `reference`.
    fn name(&self) -> &'static str;

    /// Loads `data` for `objective`, with all-zero parameters.
    fn open<'a>(&'a self, data: Data<'a>, objective: Objective) -> Result<Box<dyn Session + 'a>>;
}

/// J and ∇J over all rows of `data` at `params` (zeros when `None`), on `backend`.
pub fn gradient(
    backend: &dyn Backend,
    data: &Dataset,
    objective: Objective,
    params: Option<&Params>,
) -> Result<Gradient> {
    data.check_labels(&objective)?;
    let mut session = backend.open(Data::Host(data), objective)?;
    if let Some(p) = params {
        session.set_params(p)?;
    }
    session.gradient()
}

//! The descent loop, shared by every backend: which steps to take at which learning rate,
//! when to evaluate and log, when to stop, and what to do when the loss stops being finite.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::backend::{Backend, Session};
use crate::checkpoint::{Best, Checkpoint, Checkpointing, RngState};
pub use crate::descent::LogEntry;
use crate::descent::{
    Batch, ClassWeights, Configured, Data, Evaluations, RunOutcome, Setup, Split, Step,
};
use crate::error::{Error, Result, number};
use crate::model::{Loss, Model, Objective, Params};
use crate::model_file::FittedModel;
pub use crate::optim::OptimizerKind;
use crate::optim::{Regularization, Schedule, UpdateRule};
use crate::rng::Permutation;
pub use crate::solve::{Solved, Solver};

/// Descent options. Every setter states its default.
#[derive(Clone, Debug, PartialEq)]
pub struct Trainer {
    lr: f64,
    epochs: u64,
    batch_size: Option<usize>,
    seed: u64,
    log_every: u64,
    init: Option<Params>,
    optimizer: OptimizerKind,
    momentum: Option<f64>,
    beta1: Option<f64>,
    beta2: Option<f64>,
    eps: Option<f64>,
    regularization: Regularization,
    schedule: Schedule,
    warmup: u64,
    tol: Option<f64>,
    patience: Option<u64>,
    validation_fraction: Option<f64>,
    standardize: bool,
    fit_intercept: bool,
    class_weights: Option<ClassWeights>,
    solver: Solver,
    max_iter: Option<u64>,
    lbfgs_memory: usize,
    /// Whether a descent option was set (`auto` then means gd).
    descent_given: bool,
    /// What the fit is wired to, apart from the hyperparameters.
    wiring: Wiring,
}

/// What a fit is wired to beyond its hyperparameters: an interrupt, the checkpoints to
/// write, one to resume from, and the fingerprint of the rows the checkpoints carry. Set
/// through the [`Trainer`]'s setters; none of it is among the options a checkpoint
/// compares or the fit's description.
#[derive(Clone, Debug, Default, PartialEq)]
struct Wiring {
    interrupt: Option<Interrupt>,
    checkpointing: Option<Checkpointing>,
    resume: Option<Box<Checkpoint>>,
    data_id: Option<String>,
}

/// A flag another thread (a Ctrl-C handler) sets to stop a fit after its current step.
#[derive(Clone, Debug, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the fit to stop. Safe from any thread, or a signal handler's thread.
    pub fn raise(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

impl PartialEq for Interrupt {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// What a fit reports while it runs. Every method does nothing unless overridden.
pub trait Observer {
    /// After each batch of steps the session ran: `epoch` epochs are complete.
    fn progress(&mut self, _epoch: u64) {}

    /// At each logged epoch, with the parameters then when [`Observer::wants_params`].
    fn logged(&mut self, _entry: &LogEntry, _params: Option<&Params>) {}

    /// Whether [`Observer::logged`] needs the parameters (reading them costs a copy from
    /// the device).
    fn wants_params(&self) -> bool {
        false
    }
}

impl Default for Trainer {
    fn default() -> Self {
        Trainer {
            lr: 0.1,
            epochs: 100,
            batch_size: None,
            seed: 0,
            log_every: 10,
            init: None,
            optimizer: OptimizerKind::Sgd,
            momentum: None,
            beta1: None,
            beta2: None,
            eps: None,
            regularization: Regularization::default(),
            schedule: Schedule::Constant,
            warmup: 0,
            tol: None,
            patience: None,
            validation_fraction: None,
            standardize: false,
            fit_intercept: true,
            class_weights: None,
            solver: Solver::Auto,
            max_iter: None,
            lbfgs_memory: 10,
            descent_given: false,
            wiring: Wiring::default(),
        }
    }
}

/// Why a fit ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StopReason {
    /// It ran every epoch asked for.
    Epochs,
    /// The monitored loss (validation loss when rows are held out, else training loss)
    /// did not improve by more than `tol` for `patience` epochs in a row; the best was at
    /// `best_epoch`.
    NoImprovement { best_epoch: u64 },
    /// An [`Interrupt`] was raised; it stopped after global step `step` (the parameters are
    /// those after that step; a solver's iteration, for a solver).
    Interrupted { step: u64 },
    /// A solver met its tolerance.
    Converged,
    /// A solver stopped short of its tolerance: its iteration limit, or a line search
    /// that found no decrease ([`Solved::reason`] says which).
    NotConverged,
}

impl StopReason {
    pub fn describe(&self) -> String {
        match self {
            StopReason::Epochs => "ran every epoch".into(),
            StopReason::NoImprovement { best_epoch } => {
                format!("no improvement beyond the tolerance; best at epoch {best_epoch}")
            }
            StopReason::Interrupted { step } => format!("interrupted after step {step}"),
            StopReason::Converged => "converged".into(),
            StopReason::NotConverged => "did not converge".into(),
        }
    }
}

/// The outcome of a fit.
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    /// The final parameters (the best ones, when held-out rows chose them).
    pub params: Params,
    /// J at the final parameters over all training rows.
    pub loss: f64,
    /// J over the training rows at each logged epoch, starting with epoch 0.
    pub history: Vec<f64>,
    /// The epoch of each entry of `history`.
    pub history_epochs: Vec<u64>,
    /// Everything logged, epoch by epoch (the same epochs as `history`).
    pub log: Vec<LogEntry>,
    /// Losses and metrics of the final parameters.
    pub last: LogEntry,
    /// Epochs run.
    pub epochs: u64,
    pub stop: StopReason,
    /// What the session derived: standardization, class weights, row counts.
    pub configured: Configured,
    /// Seconds spent in the descent loop alone (no loading, generation or upload).
    pub train_seconds: f64,
    /// The fitted model: the objective, `params`, the standardization the descent used
    /// and, from [`fit`], the rows' feature names and label column; it predicts, scores
    /// and saves.
    pub model: FittedModel,
    /// What the solver did, when one ran instead of gradient descent.
    pub solved: Option<Solved>,
}

impl Trainer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Learning rate η in θ ← θ − η∇J. Default 0.1; must be finite and positive.
    pub fn lr(mut self, lr: f64) -> Self {
        self.descent_given = true;
        self.lr = lr;
        self
    }

    /// Passes over the data. Default 100.
    pub fn epochs(mut self, epochs: u64) -> Self {
        self.descent_given = true;
        self.epochs = epochs;
        self
    }

    /// Rows per step. Default: all rows (full-batch gradient descent). Smaller batches
    /// visit the rows in a fresh seeded permutation each epoch, the last partial batch
    /// included.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.descent_given = true;
        self.batch_size = Some(batch_size);
        self
    }

    /// Seed of the epoch permutations and of the held-out rows. Default 0.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Evaluate and record J every this many epochs (and after the last). Default 10.
    pub fn log_every(mut self, log_every: u64) -> Self {
        self.log_every = log_every;
        self
    }

    /// Starting parameters. Default: all zeros.
    pub fn init(mut self, params: Params) -> Self {
        self.init = Some(params);
        self
    }

    /// The optimizer. Default: plain SGD.
    pub fn optimizer(mut self, optimizer: OptimizerKind) -> Self {
        self.descent_given = true;
        self.optimizer = optimizer;
        self
    }

    /// μ of momentum and Nesterov. Default 0.9; an error with SGD or Adam.
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.descent_given = true;
        self.momentum = Some(momentum);
        self
    }

    /// Adam's β₁. Default 0.9; an error with other optimizers.
    pub fn beta1(mut self, beta1: f64) -> Self {
        self.descent_given = true;
        self.beta1 = Some(beta1);
        self
    }

    /// Adam's β₂. Default 0.999; an error with other optimizers.
    pub fn beta2(mut self, beta2: f64) -> Self {
        self.descent_given = true;
        self.beta2 = Some(beta2);
        self
    }

    /// Adam's ε, outside the square root. Default 1e-8; an error with other optimizers.
    pub fn eps(mut self, eps: f64) -> Self {
        self.descent_given = true;
        self.eps = Some(eps);
        self
    }

    /// λ₂ of the penalty (λ₂/2)‖W‖². Default 0. scikit-learn's C: λ₂ = 1/(C·n).
    pub fn l2(mut self, l2: f64) -> Self {
        self.regularization.l2 = l2;
        self
    }

    /// λ₁ of the penalty λ₁‖W‖₁ (a proximal soft-threshold after each step). Default 0.
    pub fn l1(mut self, l1: f64) -> Self {
        self.regularization.l1 = l1;
        self
    }

    /// The learning-rate schedule over epochs. Default: constant.
    pub fn schedule(mut self, schedule: Schedule) -> Self {
        self.descent_given = true;
        self.schedule = schedule;
        self
    }

    /// Epochs of linear warmup: epoch e < N uses (e + 1)/N of the scheduled rate.
    /// Default 0.
    pub fn warmup(mut self, epochs: u64) -> Self {
        self.descent_given = true;
        self.warmup = epochs;
        self
    }

    /// Stop when the monitored loss has not improved by more than `tol` for `patience`
    /// epochs. Default: off; with only one of them set, or with held-out rows, the other
    /// defaults to tol 1e-4, patience 5.
    pub fn tol(mut self, tol: f64) -> Self {
        self.tol = Some(tol);
        self
    }

    /// See [`Trainer::tol`].
    pub fn patience(mut self, patience: u64) -> Self {
        self.descent_given = true;
        self.patience = Some(patience);
        self
    }

    /// Hold out this seeded fraction of rows (in (0, 1)), stop on their loss, and restore
    /// the parameters that did best on them. Default: none.
    pub fn validation_fraction(mut self, fraction: f64) -> Self {
        self.descent_given = true;
        self.validation_fraction = Some(fraction);
        self
    }

    /// Standardize the features (mean and deviation of the training rows) for the
    /// optimizer; reported parameters stay on the raw scale. Default: off.
    pub fn standardize(mut self, on: bool) -> Self {
        self.standardize = on;
        self
    }

    /// Whether the bias b is fitted. Default true; false fits z = x·W, the bias held at
    /// zero by every solver and optimizer (scikit-learn's `fit_intercept=False`). Not with
    /// `standardize`, whose centring needs a bias.
    pub fn fit_intercept(mut self, on: bool) -> Self {
        self.fit_intercept = on;
        self
    }

    /// Weight each row's loss by its class (logistic with bce, softmax). Default: none.
    pub fn class_weights(mut self, weights: ClassWeights) -> Self {
        self.class_weights = Some(weights);
        self
    }

    /// Stop after the current step when `interrupt` is raised. The session then runs at
    /// most one epoch of steps per submission, so that the flag is seen promptly.
    pub fn interrupt(mut self, interrupt: Interrupt) -> Self {
        self.wiring.interrupt = Some(interrupt);
        self
    }

    /// Write a checkpoint to `path` every `every` epochs (atomically; each replaces the
    /// last), and when an interrupt stops the fit. Default: none.
    pub fn checkpoint(mut self, path: impl Into<std::path::PathBuf>, every: u64) -> Self {
        self.wiring.checkpointing = Some(Checkpointing {
            path: path.into(),
            every,
        });
        self
    }

    /// Continue from `checkpoint` instead of starting: the fit ends with the same bits as
    /// the one that wrote it would have. The options must be the same (checked); `init`
    /// is ignored.
    pub fn resume(mut self, checkpoint: Checkpoint) -> Self {
        self.wiring.resume = Some(Box::new(checkpoint));
        self
    }

    /// A fingerprint of the rows ([`crate::Data::fingerprint`]), written into checkpoints
    /// and compared on resume. Default: none (rows and features are still compared).
    pub fn data_id(mut self, fingerprint: impl Into<String>) -> Self {
        self.wiring.data_id = Some(fingerprint.into());
        self
    }
}

/// Fits `objective` to `data` (a [`crate::Dataset`], or a [`crate::SparseDataset`]'s sparse
/// rows) on `backend` with the options of `trainer`.
pub fn fit<'a>(
    backend: &dyn Backend,
    data: impl Into<Data<'a>>,
    objective: Objective,
    trainer: &Trainer,
) -> Result<Fit> {
    trainer.validate()?;
    let data = data.into();
    match &data {
        Data::Host(rows) => rows.check_labels(&objective)?,
        Data::Sparse(rows) => rows.check_labels(&objective)?,
        Data::Synthetic(_) | Data::Part { .. } => {}
    }
    let mut session = backend.open(data.clone(), objective)?;
    let mut fit = trainer.fit(session.as_mut())?;
    fit.model = match data {
        Data::Host(rows) => fit.model.with_data(rows),
        Data::Sparse(rows) => fit.model.with_sparse(rows),
        Data::Synthetic(_) | Data::Part { .. } => fit.model,
    };
    Ok(fit)
}

mod plan;
mod run;
mod solved;

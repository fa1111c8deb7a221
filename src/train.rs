//! The descent loop, shared by every backend: which steps to take at which learning rate,
//! when to evaluate and log, when to stop, and what to do when the loss stops being finite.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::backend::{
    Batch, ClassWeights, Configured, Evaluation, Evaluations, RunOutcome, Session, Setup, Split,
    Step,
};
use crate::checkpoint::{Best, Checkpoint, Checkpointing, RngState};
use crate::error::{Error, Result, number};
use crate::model::{Loss, Model, Objective, Params};
use crate::optim::{Optimizer, Regularization, Schedule, UpdateRule};
use crate::rng::Permutation;

/// Steps handed to a session at once, at most (more only within one epoch).
const MAX_PENDING_STEPS: usize = 1 << 16;

/// Which optimizer, by name; its hyperparameters are separate settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimizerKind {
    Sgd,
    Momentum,
    Nesterov,
    Adam,
}

impl std::str::FromStr for OptimizerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "sgd" => Ok(OptimizerKind::Sgd),
            "momentum" => Ok(OptimizerKind::Momentum),
            "nesterov" => Ok(OptimizerKind::Nesterov),
            "adam" => Ok(OptimizerKind::Adam),
            _ => Err(Error::option(
                "optimizer",
                s,
                "expected sgd, momentum, nesterov or adam",
            )),
        }
    }
}

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
    class_weights: Option<ClassWeights>,
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

/// Where the descent loop is: what a checkpoint records.
struct LoopState {
    /// Epochs completed.
    epoch: u64,
    /// Steps of epoch `epoch` taken (after an interrupt mid-epoch).
    step_in_epoch: u64,
    /// Steps taken in all.
    t: u64,
    log: Vec<LogEntry>,
    /// The best monitored loss, its epoch and (with held-out rows) its parameters.
    best: (f64, u64, Option<Params>),
    /// Evaluations without improvement.
    waited: u64,
    /// Whether epoch `epoch`'s evaluation is done.
    evaluated: bool,
}

/// A closure called at each logged epoch.
struct LogCallback<'f>(&'f mut dyn FnMut(&LogEntry));

impl Observer for LogCallback<'_> {
    fn logged(&mut self, entry: &LogEntry, _params: Option<&Params>) {
        (self.0)(entry)
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
            class_weights: None,
            interrupt: None,
            checkpointing: None,
            resume: None,
            data_id: None,
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
    /// those after that step).
    Interrupted { step: u64 },
}

impl StopReason {
    pub fn describe(&self) -> String {
        match self {
            StopReason::Epochs => "ran every epoch".into(),
            StopReason::NoImprovement { best_epoch } => {
                format!("no improvement beyond the tolerance; best at epoch {best_epoch}")
            }
            StopReason::Interrupted { step } => format!("interrupted after step {step}"),
        }
    }
}

/// The losses and metrics at one logged epoch.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogEntry {
    pub epoch: u64,
    /// On the training rows.
    pub training: Evaluation,
    /// On the held-out rows, when there are any.
    pub validation: Option<Evaluation>,
}

impl LogEntry {
    /// The entry of `epoch`'s evaluations.
    pub fn at(epoch: u64, evaluations: Evaluations) -> Self {
        LogEntry {
            epoch,
            training: evaluations.training,
            validation: evaluations.validation,
        }
    }

    /// The loss early stopping watches: the held-out rows', when there are any.
    pub fn monitored(&self) -> f64 {
        self.validation.map_or(self.training.loss, |v| v.loss)
    }
}

impl std::fmt::Display for LogEntry {
    /// `loss 0.123456, accuracy 0.9000, val_loss …`: losses and metrics, held-out ones
    /// prefixed `val_`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "loss {:.6}", self.training.loss)?;
        let metrics = |f: &mut std::fmt::Formatter<'_>, prefix: &str, v: &Evaluation| {
            if let Some(a) = v.accuracy {
                write!(f, ", {prefix}accuracy {a:.4}")?;
            }
            if let Some(r2) = v.r2 {
                write!(f, ", {prefix}r2 {r2:.4}")?;
            }
            Ok(())
        };
        metrics(f, "", &self.training)?;
        if let Some(v) = &self.validation {
            write!(f, ", val_loss {:.6}", v.loss)?;
            metrics(f, "val_", v)?;
        }
        Ok(())
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
}

impl Trainer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Learning rate η in θ ← θ − η∇J. Default 0.1; must be finite and positive.
    pub fn lr(mut self, lr: f64) -> Self {
        self.lr = lr;
        self
    }

    /// Passes over the data. Default 100.
    pub fn epochs(mut self, epochs: u64) -> Self {
        self.epochs = epochs;
        self
    }

    /// Rows per step. Default: all rows (full-batch gradient descent). Smaller batches
    /// visit the rows in a fresh seeded permutation each epoch, the last partial batch
    /// included.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
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
        self.optimizer = optimizer;
        self
    }

    /// μ of momentum and Nesterov. Default 0.9; an error with SGD or Adam.
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.momentum = Some(momentum);
        self
    }

    /// Adam's β₁. Default 0.9; an error with other optimizers.
    pub fn beta1(mut self, beta1: f64) -> Self {
        self.beta1 = Some(beta1);
        self
    }

    /// Adam's β₂. Default 0.999; an error with other optimizers.
    pub fn beta2(mut self, beta2: f64) -> Self {
        self.beta2 = Some(beta2);
        self
    }

    /// Adam's ε, outside the square root. Default 1e-8; an error with other optimizers.
    pub fn eps(mut self, eps: f64) -> Self {
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
        self.schedule = schedule;
        self
    }

    /// Epochs of linear warmup: epoch e < N uses (e + 1)/N of the scheduled rate.
    /// Default 0.
    pub fn warmup(mut self, epochs: u64) -> Self {
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
        self.patience = Some(patience);
        self
    }

    /// Hold out this seeded fraction of rows (in (0, 1)), stop on their loss, and restore
    /// the parameters that did best on them. Default: none.
    pub fn validation_fraction(mut self, fraction: f64) -> Self {
        self.validation_fraction = Some(fraction);
        self
    }

    /// Standardize the features (mean and deviation of the training rows) for the
    /// optimizer; reported parameters stay on the raw scale. Default: off.
    pub fn standardize(mut self, on: bool) -> Self {
        self.standardize = on;
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
        self.interrupt = Some(interrupt);
        self
    }

    /// Write a checkpoint to `path` every `every` epochs (atomically; each replaces the
    /// last), and when an interrupt stops the fit. Default: none.
    pub fn checkpoint(mut self, path: impl Into<std::path::PathBuf>, every: u64) -> Self {
        self.checkpointing = Some(Checkpointing {
            path: path.into(),
            every,
        });
        self
    }

    /// Continue from `checkpoint` instead of starting: the fit ends with the same bits as
    /// the one that wrote it would have. The options must be the same (checked); `init`
    /// is ignored.
    pub fn resume(mut self, checkpoint: Checkpoint) -> Self {
        self.resume = Some(Box::new(checkpoint));
        self
    }

    /// A fingerprint of the rows ([`crate::Data::fingerprint`]), written into checkpoints
    /// and compared on resume. Default: none (rows and features are still compared).
    pub fn data_id(mut self, fingerprint: impl Into<String>) -> Self {
        self.data_id = Some(fingerprint.into());
        self
    }

    /// The options a resumed fit must share with the one that wrote its checkpoint: all
    /// but the starting point, the interrupt and the checkpoint settings.
    fn options_fingerprint(&self) -> String {
        format!(
            "lr {:?}, epochs {}, batch_size {:?}, seed {}, log_every {}, optimizer {:?}, \
             momentum {:?}, beta1 {:?}, beta2 {:?}, eps {:?}, regularization {:?}, \
             schedule {:?}, warmup {}, tol {:?}, patience {:?}, validation_fraction {:?}, \
             standardize {}, class_weights {:?}",
            self.lr,
            self.epochs,
            self.batch_size,
            self.seed,
            self.log_every,
            self.optimizer,
            self.momentum,
            self.beta1,
            self.beta2,
            self.eps,
            self.regularization,
            self.schedule,
            self.warmup,
            self.tol,
            self.patience,
            self.validation_fraction,
            self.standardize,
            self.class_weights
        )
    }

    pub fn learning_rate(&self) -> f64 {
        self.lr
    }

    /// The optimizer with its hyperparameters (defaults filled in).
    pub fn update_rule(&self) -> UpdateRule {
        let momentum = self.momentum.unwrap_or(0.9);
        let optimizer = match self.optimizer {
            OptimizerKind::Sgd => Optimizer::Sgd,
            OptimizerKind::Momentum => Optimizer::Momentum { momentum },
            OptimizerKind::Nesterov => Optimizer::Nesterov { momentum },
            OptimizerKind::Adam => Optimizer::Adam {
                beta1: self.beta1.unwrap_or(0.9),
                beta2: self.beta2.unwrap_or(0.999),
                eps: self.eps.unwrap_or(1e-8),
            },
        };
        UpdateRule {
            optimizer,
            regularization: self.regularization,
        }
    }

    /// (tol, patience) when early stopping is on.
    fn stopping(&self) -> Option<(f64, u64)> {
        let on =
            self.tol.is_some() || self.patience.is_some() || self.validation_fraction.is_some();
        on.then(|| (self.tol.unwrap_or(1e-4), self.patience.unwrap_or(5)))
    }

    /// The session setup these options ask for.
    pub fn setup(&self) -> Setup {
        Setup {
            rule: self.update_rule(),
            split: self.validation_fraction.map(|fraction| Split {
                fraction,
                seed: self.seed,
            }),
            class_weights: self.class_weights.clone(),
            standardize: self.standardize,
        }
    }

    /// Checks the options on their own, before any work starts.
    pub fn validate(&self) -> Result<()> {
        if let Some(c) = &self.checkpointing
            && c.every == 0
        {
            return Err(Error::option(
                "checkpoint every",
                0,
                "must be at least 1 epoch",
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::option(
                "learning rate",
                number(self.lr),
                "must be a finite number > 0",
            ));
        }
        if self.lr as f32 == 0.0 || !(self.lr as f32).is_finite() {
            return Err(Error::option(
                "learning rate",
                number(self.lr),
                "is outside the range of f32",
            ));
        }
        if self.batch_size == Some(0) {
            return Err(Error::option("batch size", 0, "must be at least 1"));
        }
        if self.log_every == 0 {
            return Err(Error::option("log-every", 0, "must be at least 1"));
        }
        let momentum_ok = matches!(
            self.optimizer,
            OptimizerKind::Momentum | OptimizerKind::Nesterov
        );
        if let (Some(m), false) = (self.momentum, momentum_ok) {
            return Err(Error::option(
                "momentum",
                number(m),
                format!(
                    "applies to --optimizer momentum or nesterov, not {}",
                    self.update_rule().optimizer.name()
                ),
            ));
        }
        if self.optimizer != OptimizerKind::Adam {
            for (name, v) in [
                ("beta1", self.beta1),
                ("beta2", self.beta2),
                ("eps", self.eps),
            ] {
                if let Some(v) = v {
                    return Err(Error::option(
                        name,
                        number(v),
                        format!(
                            "applies to --optimizer adam, not {}",
                            self.update_rule().optimizer.name()
                        ),
                    ));
                }
            }
        }
        self.update_rule().validate()?;
        if let Some(f) = self.validation_fraction
            && !(f > 0.0 && f < 1.0)
        {
            return Err(Error::option(
                "validation fraction",
                number(f),
                "must be in (0, 1)",
            ));
        }
        if let Some(t) = self.tol
            && !(t.is_finite() && t >= 0.0)
        {
            return Err(Error::option(
                "tol",
                number(t),
                "must be a finite number ≥ 0",
            ));
        }
        if self.patience == Some(0) {
            return Err(Error::option("patience", 0, "must be at least 1"));
        }
        if let Some(ClassWeights::Given(w)) = &self.class_weights
            && w.iter().any(|v| !(v.is_finite() && *v >= 0.0))
        {
            return Err(Error::option(
                "class weights",
                format!("{w:?}"),
                "must be finite and ≥ 0",
            ));
        }
        Ok(())
    }

    /// Checks what depends on the model: class weights need classes.
    pub fn validate_for(&self, objective: &Objective) -> Result<()> {
        self.validate()?;
        let classes = matches!(
            (objective.model(), objective.loss()),
            (Model::Logistic, Loss::Bce) | (Model::Softmax, _)
        );
        if self.class_weights.is_some() && !classes {
            return Err(Error::option(
                "class weights",
                "balanced",
                format!("need classes: logistic regression with bce, or softmax; not {objective}"),
            ));
        }
        if let Some(ClassWeights::Given(w)) = &self.class_weights {
            let slots = objective.outputs().max(2);
            if w.len() != slots {
                return Err(Error::option(
                    "class weights",
                    format!("{w:?}"),
                    format!("need {slots} values"),
                ));
            }
        }
        Ok(())
    }

    /// The learning rate of epoch `epoch`: the schedule's, times the warmup ramp.
    pub fn epoch_rate(&self, epoch: u64) -> f64 {
        let rate = self.schedule.rate(self.lr, epoch, self.epochs);
        if epoch < self.warmup {
            rate * (epoch + 1) as f64 / self.warmup as f64
        } else {
            rate
        }
    }

    /// The steps of one epoch over `rows` rows; `t` is the number of steps before it.
    pub fn epoch_steps_from(&self, epoch: u64, rows: usize, t: u64) -> Vec<Step> {
        let n = rows as u32;
        let lr = self.epoch_rate(epoch);
        let batches: Vec<Batch> = match self.batch_size {
            Some(b) if b < rows => {
                let order = Some(Permutation::for_epoch(self.seed, epoch, n));
                (0..n)
                    .step_by(b)
                    .map(|start| Batch {
                        start,
                        len: (b as u32).min(n - start),
                        order,
                    })
                    .collect()
            }
            // One batch of all rows: its order cannot change the gradient, so skip the shuffle.
            _ => vec![Batch {
                start: 0,
                len: n,
                order: None,
            }],
        };
        batches
            .into_iter()
            .enumerate()
            .map(|(i, batch)| Step {
                epoch,
                t: t + i as u64 + 1,
                batch,
                lr,
            })
            .collect()
    }

    /// The steps of epoch `epoch`, counting steps from the start of the fit.
    pub fn epoch_steps(&self, epoch: u64, rows: usize) -> Vec<Step> {
        self.epoch_steps_from(epoch, rows, epoch * self.steps_per_epoch(rows))
    }

    /// Steps in one epoch over `rows` rows.
    pub fn steps_per_epoch(&self, rows: usize) -> u64 {
        match self.batch_size {
            Some(b) if b < rows => rows.div_ceil(b) as u64,
            _ => 1,
        }
    }

    /// Runs the descent on a loaded session.
    ///
    /// On divergence, the session keeps the last finite parameters and the error carries
    /// them ([`Error::Diverged`]).
    pub fn fit(&self, session: &mut dyn Session) -> Result<Fit> {
        self.fit_observed(session, &mut |_| {})
    }

    /// [`Trainer::fit`], calling `observe` at every logged epoch.
    pub fn fit_observed(
        &self,
        session: &mut dyn Session,
        observe: &mut dyn FnMut(&LogEntry),
    ) -> Result<Fit> {
        self.fit_with(session, &mut LogCallback(observe))
    }

    /// [`Trainer::fit`], reporting to `observer` as it goes.
    pub fn fit_with(&self, session: &mut dyn Session, observer: &mut dyn Observer) -> Result<Fit> {
        let objective = session.objective();
        self.validate_for(&objective)?;
        let configured = session.configure(&self.setup())?;
        if self.validation_fraction.is_some() && configured.held_out_rows == 0 {
            return Err(Error::option(
                "validation fraction",
                self.validation_fraction.unwrap_or(0.0),
                format!("holds out no row of {}", session.rows()),
            ));
        }
        let start = Instant::now();
        let held_out = self.validation_fraction.is_some();
        let evaluate = |session: &mut dyn Session, epoch: u64| -> Result<LogEntry> {
            Ok(LogEntry::at(epoch, Evaluations::of(session, held_out)?))
        };
        fn record(
            session: &mut dyn Session,
            observer: &mut dyn Observer,
            log: &mut Vec<LogEntry>,
            entry: LogEntry,
        ) -> Result<()> {
            let params = if observer.wants_params() {
                Some(session.params()?)
            } else {
                None
            };
            log::info!("epoch {}: {entry}", entry.epoch);
            observer.logged(&entry, params.as_ref());
            log.push(entry);
            Ok(())
        }
        let stopping = self.stopping();
        // Early stopping's bookkeeping after the evaluation `entry`: the reason to stop
        // now, if it is time (the entry is then logged, whatever the epoch).
        // `params`: the parameters of the entry's epoch, when the session has moved on.
        let judge = |session: &mut dyn Session,
                     observer: &mut dyn Observer,
                     state: &mut LoopState,
                     entry: LogEntry,
                     params: Option<Params>|
         -> Result<Option<StopReason>> {
            let Some((tol, patience)) = stopping else {
                return Ok(None);
            };
            let value = entry.monitored();
            if value < state.best.0 - tol {
                let params = match params {
                    Some(p) if held_out => Some(p),
                    _ if held_out => Some(session.params()?),
                    _ => None,
                };
                state.best = (value, entry.epoch, params);
                state.waited = 0;
                return Ok(None);
            }
            state.waited += 1;
            if state.waited < patience {
                return Ok(None);
            }
            if state.log.last().is_none_or(|l| l.epoch != entry.epoch) {
                record(session, observer, &mut state.log, entry)?;
            }
            Ok(Some(StopReason::NoImprovement {
                best_epoch: state.best.1,
            }))
        };
        // Evaluate every epoch when stopping early, else every log_every epochs, and at
        // every checkpoint.
        let check_every = if stopping.is_some() {
            1
        } else {
            self.log_every
        };
        let checkpoint_every = self.checkpointing.as_ref().map(|c| c.every);
        let chunk_end = |epoch: u64| {
            let next = |every: u64| (epoch / every + 1) * every;
            let end =
                checkpoint_every.map_or(next(check_every), |c| next(c).min(next(check_every)));
            end.min(self.epochs)
        };
        let mut state = match &self.resume {
            Some(ck) => {
                ck.check_matches(
                    &objective,
                    session.rows(),
                    session.features(),
                    self.data_id.as_deref(),
                    &self.options_fingerprint(),
                    (self.schedule == Schedule::Cosine).then_some("the cosine schedule"),
                )?;
                ck.check_steps(self.steps_per_epoch(session.rows()))?;
                session.restore(&ck.snapshot)?;
                let params = ck.best.params.as_deref().map(|flat| {
                    Params::from_flat_f64(session.features(), objective.outputs(), flat)
                });
                log::info!("resuming at epoch {} (step {})", ck.epoch, ck.rng.step);
                let mut log = ck.log.clone();
                // A finished fit logs its last epoch whatever --log-every says; a longer
                // one would not have logged it.
                let finished = ck.epochs() == Some(ck.epoch);
                if finished
                    && self.epochs > ck.epoch
                    && !ck.epoch.is_multiple_of(self.log_every)
                    && log.last().is_some_and(|e| e.epoch == ck.epoch)
                    && log.len() > 1
                {
                    log.pop();
                }
                LoopState {
                    epoch: ck.epoch,
                    step_in_epoch: ck.step_in_epoch,
                    t: ck.rng.step,
                    log,
                    best: (ck.best.value, ck.best.epoch, params),
                    waited: ck.waited,
                    evaluated: ck.evaluated,
                }
            }
            None => {
                if let Some(init) = &self.init {
                    session.set_params(init)?;
                }
                let entry = evaluate(session, 0)?;
                if !entry.training.loss.is_finite() {
                    return Err(Error::NonFiniteStart {
                        custom: matches!(objective.loss(), Loss::Custom(_)),
                    });
                }
                let mut log = Vec::new();
                record(session, observer, &mut log, entry)?;
                LoopState {
                    epoch: 0,
                    step_in_epoch: 0,
                    t: 0,
                    log,
                    best: (entry.monitored(), 0, None),
                    waited: 0,
                    evaluated: true,
                }
            }
        };
        let mut entry = *state
            .log
            .last()
            .expect("a fresh fit logs epoch 0; a checkpoint's log is checked");
        let mut stop = StopReason::Epochs;
        let mut steps = Vec::new();
        let interrupt = self.interrupt.as_ref();
        // The evaluation before more steps (training rows, and held-out rows when there
        // are any) is taken from the next step's pass over the rows when the session can
        // ([`Session::evaluate_and_run`]): the same rows at the same parameters, one read
        // of X instead of two or three. When early stopping then stops the fit, that step
        // is undone.
        let unobserved = !observer.wants_params();
        let folds = |epoch: u64| {
            unobserved
                && epoch < self.epochs
                && checkpoint_every.is_none_or(|c| !epoch.is_multiple_of(c))
        };
        let mut pending = None;
        'descent: loop {
            // The evaluation that ends a chunk of epochs: log, stop early, checkpoint.
            if !state.evaluated && state.step_in_epoch == 0 && folds(state.epoch) {
                pending = Some(state.epoch);
                state.evaluated = true;
            }
            if !state.evaluated && state.step_in_epoch == 0 {
                let epoch = state.epoch;
                entry = evaluate(session, epoch)?;
                if !entry.training.loss.is_finite() {
                    return Err(self.diverged(epoch, session));
                }
                if epoch % self.log_every == 0 || epoch == self.epochs {
                    record(session, observer, &mut state.log, entry)?;
                }
                state.evaluated = true;
                if let Some(reason) = judge(session, observer, &mut state, entry, None)? {
                    stop = reason;
                    break;
                }
                if checkpoint_every.is_some_and(|c| epoch % c == 0) && epoch < self.epochs {
                    self.write_checkpoint(session, &state)?;
                }
            }
            if state.epoch >= self.epochs {
                break;
            }
            let end = chunk_end(state.epoch);
            for e in state.epoch..end {
                // After an interrupt mid-epoch, the epoch's first steps are done already.
                let skip = std::mem::take(&mut state.step_in_epoch);
                let mut epoch_steps = self.epoch_steps_from(e, session.rows(), state.t - skip);
                epoch_steps.drain(..skip as usize);
                let count = epoch_steps.len();
                for (i, step) in epoch_steps.into_iter().enumerate() {
                    steps.push(step);
                    let epoch_done = i + 1 == count;
                    // Bound the host memory of long runs of small batches; when an
                    // interrupt may come, hand over one epoch at a time.
                    let flush = steps.len() >= MAX_PENDING_STEPS
                        || (epoch_done && (interrupt.is_some() || e + 1 == end));
                    if !flush {
                        continue;
                    }
                    let outcome = match pending.take() {
                        Some(epoch) => {
                            // What undoing the step would need: the session's state,
                            // only when this evaluation can stop the fit (one more
                            // without improvement reaches the patience), and the
                            // parameters a held-out improvement keeps.
                            let may_stop =
                                stopping.is_some_and(|(_, patience)| state.waited + 1 >= patience);
                            let before = if may_stop {
                                Some(session.snapshot()?)
                            } else {
                                None
                            };
                            let params = if stopping.is_some() && held_out {
                                Some(session.params()?)
                            } else {
                                None
                            };
                            let (evaluations, outcome) =
                                session.evaluate_and_run(&steps, held_out)?;
                            entry = LogEntry::at(epoch, evaluations);
                            let Some(outcome) = outcome else {
                                return Err(self.diverged(epoch, session));
                            };
                            if epoch % self.log_every == 0 {
                                record(session, observer, &mut state.log, entry)?;
                            }
                            if let Some(reason) =
                                judge(session, observer, &mut state, entry, params)?
                            {
                                if let Some(before) = &before {
                                    session.restore(before)?;
                                }
                                stop = reason;
                                break 'descent;
                            }
                            outcome
                        }
                        None => session.run(&steps)?,
                    };
                    if let RunOutcome::Diverged { step } = outcome {
                        return Err(self.diverged(steps[step].epoch + 1, session));
                    }
                    state.t += steps.len() as u64;
                    steps.clear();
                    let (epoch, in_epoch) = if epoch_done {
                        (e + 1, 0)
                    } else {
                        (e, skip + i as u64 + 1)
                    };
                    observer.progress(epoch);
                    if interrupt.is_some_and(Interrupt::is_raised) {
                        stop = StopReason::Interrupted { step: state.t };
                        state.epoch = epoch;
                        state.step_in_epoch = in_epoch;
                        state.evaluated = in_epoch != 0 || epoch != end;
                        if self.checkpointing.is_some() {
                            self.write_checkpoint(session, &state)?;
                        }
                        break 'descent;
                    }
                }
            }
            state.epoch = end;
            state.evaluated = false;
        }
        if stop == StopReason::Epochs && self.checkpointing.is_some() {
            // The state at the end, so that the fit can be resumed to train longer.
            self.write_checkpoint(session, &state)?;
        }
        if let StopReason::Interrupted { .. } = stop {
            // The parameters after the last step, however far into an epoch it was.
            entry = evaluate(session, state.epoch)?;
            if !entry.training.loss.is_finite() {
                return Err(self.diverged(state.epoch, session));
            }
            record(session, observer, &mut state.log, entry)?;
        } else if held_out && state.best.1 != state.epoch {
            // Held-out rows choose the parameters: the best seen (epoch 0's when none
            // improved).
            let params = match state.best.2.take() {
                Some(p) => p,
                None => self.init.clone().unwrap_or_else(|| {
                    Params::zeros(session.features(), session.objective().outputs())
                }),
            };
            session.set_params(&params)?;
            entry = evaluate(session, state.epoch)?;
        }
        let train_seconds = start.elapsed().as_secs_f64();
        let log = state.log;
        Ok(Fit {
            params: session.params()?,
            loss: entry.training.loss,
            history: log.iter().map(|e| e.training.loss).collect(),
            history_epochs: log.iter().map(|e| e.epoch).collect(),
            log,
            last: entry,
            epochs: state.epoch,
            stop,
            configured,
            train_seconds,
        })
    }

    /// Writes the fit's state to the checkpoint file.
    fn write_checkpoint(&self, session: &mut dyn Session, state: &LoopState) -> Result<()> {
        let Some(to) = &self.checkpointing else {
            return Ok(());
        };
        let objective = session.objective();
        let checkpoint = Checkpoint {
            format: Checkpoint::format(),
            model: objective.model(),
            loss_fn: objective.loss().to_string(),
            outputs: objective.outputs(),
            rows: session.rows(),
            features: session.features(),
            data: self.data_id.clone(),
            options: self.options_fingerprint(),
            epoch: state.epoch,
            step_in_epoch: state.step_in_epoch,
            evaluated: state.evaluated,
            rng: RngState {
                seed: self.seed,
                epoch: state.epoch,
                step: state.t,
            },
            snapshot: session.snapshot()?,
            best: Best {
                value: state.best.0,
                epoch: state.best.1,
                params: state.best.2.as_ref().map(Params::flat),
            },
            waited: state.waited,
            log: state.log.clone(),
        };
        checkpoint.save(&to.path)?;
        log::debug!(
            "checkpoint at epoch {} written to {}",
            state.epoch,
            to.path.display()
        );
        Ok(())
    }

    fn diverged(&self, epoch: u64, session: &mut dyn Session) -> Error {
        match session.params() {
            Ok(params) => Error::Diverged {
                epoch,
                lr: self.lr,
                last_finite: Box::new(params),
            },
            Err(e) => e,
        }
    }
}

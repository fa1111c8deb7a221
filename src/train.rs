//! The descent loop, shared by every backend: which steps to take at which learning rate,
//! when to evaluate and log, when to stop, and what to do when the loss stops being finite.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::backend::{
    Batch, ClassWeights, Configured, Evaluation, RowSet, RunOutcome, Session, Setup, Split, Step,
};
use crate::error::{Error, Result};
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
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogEntry {
    pub epoch: u64,
    /// On the training rows.
    pub training: Evaluation,
    /// On the held-out rows, when there are any.
    pub validation: Option<Evaluation>,
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
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::option(
                "learning rate",
                self.lr,
                "must be a finite number > 0",
            ));
        }
        if self.lr as f32 == 0.0 || !(self.lr as f32).is_finite() {
            return Err(Error::option(
                "learning rate",
                self.lr,
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
                m,
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
                        v,
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
            return Err(Error::option("validation fraction", f, "must be in (0, 1)"));
        }
        if let Some(t) = self.tol
            && !(t.is_finite() && t >= 0.0)
        {
            return Err(Error::option("tol", t, "must be a finite number ≥ 0"));
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
        self.validate_for(&session.objective())?;
        let configured = session.configure(&self.setup())?;
        if self.validation_fraction.is_some() && configured.held_out_rows == 0 {
            return Err(Error::option(
                "validation fraction",
                self.validation_fraction.unwrap_or(0.0),
                format!("holds out no row of {}", session.rows()),
            ));
        }
        if let Some(init) = &self.init {
            session.set_params(init)?;
        }
        let start = Instant::now();
        let held_out = self.validation_fraction.is_some();
        let evaluate = |session: &mut dyn Session, epoch: u64| -> Result<LogEntry> {
            let training = session.evaluate(RowSet::Training)?;
            let validation = if held_out {
                Some(session.evaluate(RowSet::Validation)?)
            } else {
                None
            };
            Ok(LogEntry {
                epoch,
                training,
                validation,
            })
        };
        let mut log = Vec::new();
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
        let monitored = |e: &LogEntry| e.validation.map_or(e.training.loss, |v| v.loss);
        let stopping = self.stopping();
        let mut entry = evaluate(session, 0)?;
        record(session, observer, &mut log, entry)?;
        let mut best = (monitored(&entry), 0u64, None::<Params>);
        let mut waited = 0;
        let mut stop = StopReason::Epochs;
        let mut epoch = 0;
        let mut t = 0;
        let mut steps = Vec::new();
        // Evaluate every epoch when stopping early, else every log_every epochs.
        let check_every = if stopping.is_some() {
            1
        } else {
            self.log_every
        };
        let interrupt = self.interrupt.as_ref();
        'epochs: while epoch < self.epochs {
            let chunk_end = (epoch + check_every).min(self.epochs);
            for e in epoch..chunk_end {
                let epoch_steps = self.epoch_steps_from(e, session.rows(), t);
                for step in epoch_steps {
                    steps.push(step);
                    // Bound the host memory of long runs of small batches; when an
                    // interrupt may come, hand over one epoch at a time.
                    let epoch_done = step.batch.start + step.batch.len >= session.rows() as u32;
                    let flush = steps.len() >= MAX_PENDING_STEPS
                        || (epoch_done && (interrupt.is_some() || e + 1 == chunk_end));
                    if !flush {
                        continue;
                    }
                    if let RunOutcome::Diverged { step } = session.run(&steps)? {
                        return Err(self.diverged(steps[step].epoch + 1, session));
                    }
                    t += steps.len() as u64;
                    steps.clear();
                    observer.progress(if epoch_done { e + 1 } else { e });
                    if interrupt.is_some_and(Interrupt::is_raised) {
                        stop = StopReason::Interrupted { step: t };
                        epoch = if epoch_done { e + 1 } else { e };
                        break 'epochs;
                    }
                }
            }
            epoch = chunk_end;
            entry = evaluate(session, epoch)?;
            if !entry.training.loss.is_finite() {
                return Err(self.diverged(epoch, session));
            }
            if epoch % self.log_every == 0 || epoch == self.epochs {
                record(session, observer, &mut log, entry)?;
            }
            if let Some((tol, patience)) = stopping {
                let value = monitored(&entry);
                if value < best.0 - tol {
                    let params = if held_out {
                        Some(session.params()?)
                    } else {
                        None
                    };
                    best = (value, epoch, params);
                    waited = 0;
                } else {
                    waited += 1;
                    if waited >= patience {
                        stop = StopReason::NoImprovement { best_epoch: best.1 };
                        if log.last().is_none_or(|l| l.epoch != epoch) {
                            record(session, observer, &mut log, entry)?;
                        }
                        break;
                    }
                }
            }
        }
        if let StopReason::Interrupted { .. } = stop {
            // The parameters after the last step, however far into an epoch it was.
            entry = evaluate(session, epoch)?;
            if !entry.training.loss.is_finite() {
                return Err(self.diverged(epoch, session));
            }
            record(session, observer, &mut log, entry)?;
        } else if held_out && best.1 != epoch {
            // Held-out rows choose the parameters: the best seen (epoch 0's when none
            // improved).
            let params = match best.2.take() {
                Some(p) => p,
                None => self.init.clone().unwrap_or_else(|| {
                    Params::zeros(session.features(), session.objective().outputs())
                }),
            };
            session.set_params(&params)?;
            entry = evaluate(session, epoch)?;
        }
        let train_seconds = start.elapsed().as_secs_f64();
        Ok(Fit {
            params: session.params()?,
            loss: entry.training.loss,
            history: log.iter().map(|e| e.training.loss).collect(),
            history_epochs: log.iter().map(|e| e.epoch).collect(),
            log,
            last: entry,
            epochs: epoch,
            stop,
            configured,
            train_seconds,
        })
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

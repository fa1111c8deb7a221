//! The descent loop: steps handed to the session an epoch (or a chunk of epochs) at a
//! time, evaluations, logging, early stopping, checkpoints, interrupts and divergence.

use super::*;

/// Steps handed to a session at once, at most (more only within one epoch).
const MAX_PENDING_STEPS: usize = 1 << 16;

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

/// Early stopping: stop when the monitored loss has not improved on the best by more
/// than `tol` for `patience` evaluations in a row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct EarlyStopping {
    pub tol: f64,
    pub patience: u64,
}

/// What early stopping makes of one evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    /// A new best: keep its parameters (when held-out rows choose them).
    Improved,
    /// No better, and patience is left.
    Wait,
    /// No better for `patience` evaluations: stop.
    Stop,
}

impl EarlyStopping {
    /// The verdict on a monitored loss of `value`, with `best` so far and `waited`
    /// evaluations without improvement before this one.
    fn judge(&self, value: f64, best: f64, waited: u64) -> Verdict {
        if value < best - self.tol {
            Verdict::Improved
        } else if waited + 1 < self.patience {
            Verdict::Wait
        } else {
            Verdict::Stop
        }
    }

    /// Whether the evaluation after `waited` evaluations without improvement can stop
    /// the fit.
    fn may_stop(&self, waited: u64) -> bool {
        waited + 1 >= self.patience
    }
}

/// One fit in progress: the trainer's options, the session and observer it reports to,
/// and where the descent is.
struct Run<'r> {
    trainer: &'r Trainer,
    session: &'r mut dyn Session,
    observer: &'r mut dyn Observer,
    state: LoopState,
    stopping: Option<EarlyStopping>,
    /// Whether rows are held out for validation.
    held_out: bool,
    /// The last evaluation.
    entry: LogEntry,
    /// The epoch whose evaluation the next run of steps takes from its first pass.
    pending: Option<u64>,
    steps: Vec<Step>,
}

impl Trainer {
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
        let (solver, why) = self.chosen_solver(session);
        if solver != Solver::Gd {
            log::info!("solver {solver}: {why}");
            return self.solve_fit(session, observer, solver, why, configured);
        }
        if self.validation_fraction.is_some() && configured.held_out_rows == 0 {
            return Err(Error::option(
                "validation fraction",
                self.validation_fraction.unwrap_or(0.0),
                format!("holds out no row of {}", session.rows()),
            ));
        }
        let start = Instant::now();
        let mut run = Run::start(self, session, observer)?;
        let stop = run.descend()?;
        run.finish(stop)?;
        let train_seconds = start.elapsed().as_secs_f64();
        let Run {
            state,
            entry,
            session,
            ..
        } = run;
        let params = session.params()?;
        let mut model = FittedModel::new(&session.objective(), params.clone());
        model.standardization = configured.standardization.clone();
        Ok(Fit {
            params,
            model,
            loss: entry.training.loss,
            history: state.log.iter().map(|e| e.training.loss).collect(),
            history_epochs: state.log.iter().map(|e| e.epoch).collect(),
            log: state.log,
            last: entry,
            epochs: state.epoch,
            stop,
            configured,
            train_seconds,
            solved: None,
        })
    }

    /// Evaluate every epoch when stopping early, else every `log_every` epochs (and at
    /// every checkpoint).
    fn check_every(&self) -> u64 {
        if self.stopping().is_some() {
            1
        } else {
            self.log_every
        }
    }

    fn checkpoint_every(&self) -> Option<u64> {
        self.wiring.checkpointing.as_ref().map(|c| c.every)
    }

    /// The epoch at which the chunk of epochs from `epoch` ends: the next evaluation or
    /// checkpoint, or the last epoch.
    fn chunk_end(&self, epoch: u64) -> u64 {
        let next = |every: u64| (epoch / every + 1) * every;
        let check = next(self.check_every());
        self.checkpoint_every()
            .map_or(check, |c| next(c).min(check))
            .min(self.epochs)
    }

    /// Writes the fit's state to the checkpoint file.
    fn write_checkpoint(&self, session: &mut dyn Session, state: &LoopState) -> Result<()> {
        let Some(to) = &self.wiring.checkpointing else {
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
            data: self.wiring.data_id.clone(),
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
            solver: None,
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

impl<'r> Run<'r> {
    /// The run at its start: resumed from the trainer's checkpoint, or fresh from its
    /// initial parameters with epoch 0 evaluated and logged.
    fn start(
        trainer: &'r Trainer,
        session: &'r mut dyn Session,
        observer: &'r mut dyn Observer,
    ) -> Result<Self> {
        let empty = LoopState {
            epoch: 0,
            step_in_epoch: 0,
            t: 0,
            log: Vec::new(),
            best: (f64::INFINITY, 0, None),
            waited: 0,
            evaluated: true,
        };
        let mut run = Run {
            trainer,
            session,
            observer,
            state: empty,
            stopping: trainer
                .stopping()
                .map(|(tol, patience)| EarlyStopping { tol, patience }),
            held_out: trainer.validation_fraction.is_some(),
            entry: LogEntry::at(0, Evaluations::default()),
            pending: None,
            steps: Vec::new(),
        };
        match &trainer.wiring.resume {
            Some(ck) => run.resume(ck)?,
            None => run.begin()?,
        }
        run.entry = *run
            .state
            .log
            .last()
            .expect("a fresh fit logs epoch 0; a checkpoint's log is checked");
        Ok(run)
    }

    /// A fresh start: the initial parameters, evaluated and logged as epoch 0.
    fn begin(&mut self) -> Result<()> {
        if let Some(init) = &self.trainer.init {
            self.session.set_params(init)?;
        }
        let entry = self.evaluate(0)?;
        if !entry.training.loss.is_finite() {
            return Err(Error::NonFiniteStart {
                custom: matches!(self.session.objective().loss(), Loss::Custom(_)),
            });
        }
        self.record(entry)?;
        self.state.best = (entry.monitored(), 0, None);
        Ok(())
    }

    /// The state of checkpoint `ck`, after checking that it is this fit's.
    fn resume(&mut self, ck: &Checkpoint) -> Result<()> {
        let (trainer, session) = (self.trainer, &mut *self.session);
        let objective = session.objective();
        ck.check_matches(
            &objective,
            session.rows(),
            session.features(),
            trainer.wiring.data_id.as_deref(),
            &trainer.options_fingerprint(),
            (trainer.schedule == Schedule::Cosine).then_some("the cosine schedule"),
        )?;
        ck.check_steps(trainer.steps_per_epoch(session.rows()))?;
        session.restore(&ck.snapshot)?;
        let params = ck
            .best
            .params
            .as_deref()
            .map(|flat| Params::from_flat_f64(session.features(), objective.outputs(), flat));
        log::info!("resuming at epoch {} (step {})", ck.epoch, ck.rng.step);
        let mut log = ck.log.clone();
        // A finished fit logs its last epoch whatever --log-every says; a longer one would
        // not have logged it.
        let finished = ck.epochs() == Some(ck.epoch);
        if finished
            && trainer.epochs > ck.epoch
            && !ck.epoch.is_multiple_of(trainer.log_every)
            && log.last().is_some_and(|e| e.epoch == ck.epoch)
            && log.len() > 1
        {
            log.pop();
        }
        self.state = LoopState {
            epoch: ck.epoch,
            step_in_epoch: ck.step_in_epoch,
            t: ck.rng.step,
            log,
            best: (ck.best.value, ck.best.epoch, params),
            waited: ck.waited,
            evaluated: ck.evaluated,
        };
        Ok(())
    }

    fn evaluate(&mut self, epoch: u64) -> Result<LogEntry> {
        Ok(LogEntry::at(
            epoch,
            Evaluations::of(self.session, self.held_out)?,
        ))
    }

    /// Logs `entry`, with the parameters when the observer wants them.
    fn record(&mut self, entry: LogEntry) -> Result<()> {
        let params = if self.observer.wants_params() {
            Some(self.session.params()?)
        } else {
            None
        };
        log::info!("epoch {}: {entry}", entry.epoch);
        self.observer.logged(&entry, params.as_ref());
        self.state.log.push(entry);
        Ok(())
    }

    /// Early stopping's bookkeeping after the evaluation `entry`: the reason to stop now,
    /// if it is time (the entry is then logged, whatever the epoch). `params`: the
    /// parameters of the entry's epoch, when the session has moved on.
    fn judge(&mut self, entry: LogEntry, params: Option<Params>) -> Result<Option<StopReason>> {
        let Some(stopping) = self.stopping else {
            return Ok(None);
        };
        let value = entry.monitored();
        match stopping.judge(value, self.state.best.0, self.state.waited) {
            Verdict::Improved => {
                let params = match params {
                    Some(p) if self.held_out => Some(p),
                    _ if self.held_out => Some(self.session.params()?),
                    _ => None,
                };
                self.state.best = (value, entry.epoch, params);
                self.state.waited = 0;
                Ok(None)
            }
            Verdict::Wait => {
                self.state.waited += 1;
                Ok(None)
            }
            Verdict::Stop => {
                self.state.waited += 1;
                if self.state.log.last().is_none_or(|l| l.epoch != entry.epoch) {
                    self.record(entry)?;
                }
                Ok(Some(StopReason::NoImprovement {
                    best_epoch: self.state.best.1,
                }))
            }
        }
    }

    /// Whether the evaluation of `epoch` may come from the next run of steps' first pass
    /// ([`Session::evaluate_and_run`]): the same rows at the same parameters, one read of
    /// X instead of two or three. Not when an observer reads the parameters at each log,
    /// at the last epoch, or at a checkpoint.
    fn folds(&self, epoch: u64) -> bool {
        !self.observer.wants_params()
            && epoch < self.trainer.epochs
            && self
                .trainer
                .checkpoint_every()
                .is_none_or(|c| !epoch.is_multiple_of(c))
    }

    /// Chunks of epochs until the last, each ended by an evaluation; the reason it ended.
    fn descend(&mut self) -> Result<StopReason> {
        loop {
            if let Some(stop) = self.evaluate_epoch()? {
                return Ok(stop);
            }
            if self.state.epoch >= self.trainer.epochs {
                return Ok(StopReason::Epochs);
            }
            let end = self.trainer.chunk_end(self.state.epoch);
            for epoch in self.state.epoch..end {
                if let Some(stop) = self.run_epoch(epoch, end)? {
                    return Ok(stop);
                }
            }
            self.state.epoch = end;
            self.state.evaluated = false;
        }
    }

    /// The evaluation that ends a chunk of epochs (log, stop early, checkpoint), unless it
    /// is done or folds into the next steps' first pass.
    fn evaluate_epoch(&mut self) -> Result<Option<StopReason>> {
        if self.state.evaluated || self.state.step_in_epoch != 0 {
            return Ok(None);
        }
        let epoch = self.state.epoch;
        self.state.evaluated = true;
        if self.folds(epoch) {
            self.pending = Some(epoch);
            return Ok(None);
        }
        self.entry = self.evaluate(epoch)?;
        if !self.entry.training.loss.is_finite() {
            return Err(self.trainer.diverged(epoch, self.session));
        }
        if epoch.is_multiple_of(self.trainer.log_every) || epoch == self.trainer.epochs {
            self.record(self.entry)?;
        }
        if let Some(reason) = self.judge(self.entry, None)? {
            return Ok(Some(reason));
        }
        let every = self.trainer.checkpoint_every();
        if every.is_some_and(|c| epoch.is_multiple_of(c)) && epoch < self.trainer.epochs {
            self.trainer.write_checkpoint(self.session, &self.state)?;
        }
        Ok(None)
    }

    /// The steps of epoch `epoch` of a chunk ending at `end`, handed to the session an
    /// epoch (or at most [`MAX_PENDING_STEPS`]) at a time.
    fn run_epoch(&mut self, epoch: u64, end: u64) -> Result<Option<StopReason>> {
        // After an interrupt mid-epoch, the epoch's first steps are done already.
        let skip = std::mem::take(&mut self.state.step_in_epoch);
        let rows = self.session.rows();
        let mut epoch_steps = self
            .trainer
            .epoch_steps_from(epoch, rows, self.state.t - skip);
        epoch_steps.drain(..skip as usize);
        let count = epoch_steps.len();
        let interrupt = self.trainer.wiring.interrupt.as_ref();
        for (i, step) in epoch_steps.into_iter().enumerate() {
            self.steps.push(step);
            let epoch_done = i + 1 == count;
            // Bound the host memory of long runs of small batches; when an interrupt may
            // come, hand over one epoch at a time.
            let flush = self.steps.len() >= MAX_PENDING_STEPS
                || (epoch_done && (interrupt.is_some() || epoch + 1 == end));
            if !flush {
                continue;
            }
            if let Some(stop) = self.hand_over()? {
                return Ok(Some(stop));
            }
            let (at, in_epoch) = if epoch_done {
                (epoch + 1, 0)
            } else {
                (epoch, skip + i as u64 + 1)
            };
            self.observer.progress(at);
            if interrupt.is_some_and(Interrupt::is_raised) {
                self.state.epoch = at;
                self.state.step_in_epoch = in_epoch;
                self.state.evaluated = in_epoch != 0 || at != end;
                if self.trainer.wiring.checkpointing.is_some() {
                    self.trainer.write_checkpoint(self.session, &self.state)?;
                }
                return Ok(Some(StopReason::Interrupted { step: self.state.t }));
            }
        }
        Ok(None)
    }

    /// Runs the pending steps, with the pending evaluation from their first pass; the
    /// reason to stop when that evaluation stops the fit (its steps are then undone).
    fn hand_over(&mut self) -> Result<Option<StopReason>> {
        let outcome = match self.pending.take() {
            Some(epoch) => match self.evaluate_and_run(epoch)? {
                Ok(outcome) => outcome,
                Err(stop) => return Ok(Some(stop)),
            },
            None => self.session.run(&self.steps)?,
        };
        if let RunOutcome::Diverged { step } = outcome {
            let epoch = self.steps[step].epoch + 1;
            return Err(self.trainer.diverged(epoch, self.session));
        }
        self.state.t += self.steps.len() as u64;
        self.steps.clear();
        Ok(None)
    }

    /// [`Session::evaluate_and_run`] of the pending steps with epoch `epoch`'s
    /// evaluation: the run's outcome, or the reason to stop (the steps undone).
    fn evaluate_and_run(&mut self, epoch: u64) -> Result<Result<RunOutcome, StopReason>> {
        // What undoing the steps would need: the session's state, only when this
        // evaluation can stop the fit, and the parameters a held-out improvement keeps.
        let waited = self.state.waited;
        let before = match self.stopping {
            Some(s) if s.may_stop(waited) => Some(self.session.snapshot()?),
            _ => None,
        };
        let params = if self.stopping.is_some() && self.held_out {
            Some(self.session.params()?)
        } else {
            None
        };
        let (evaluations, outcome) = self.session.evaluate_and_run(&self.steps, self.held_out)?;
        self.entry = LogEntry::at(epoch, evaluations);
        let Some(outcome) = outcome else {
            return Err(self.trainer.diverged(epoch, self.session));
        };
        if epoch.is_multiple_of(self.trainer.log_every) {
            self.record(self.entry)?;
        }
        if let Some(reason) = self.judge(self.entry, params)? {
            if let Some(before) = &before {
                self.session.restore(before)?;
            }
            return Ok(Err(reason));
        }
        Ok(Ok(outcome))
    }

    /// The end of the fit: a checkpoint of a finished one, the evaluation after an
    /// interrupt, or the best parameters when held-out rows chose them.
    fn finish(&mut self, stop: StopReason) -> Result<()> {
        if stop == StopReason::Epochs && self.trainer.wiring.checkpointing.is_some() {
            // The state at the end, so that the fit can be resumed to train longer.
            self.trainer.write_checkpoint(self.session, &self.state)?;
        }
        let epoch = self.state.epoch;
        if let StopReason::Interrupted { .. } = stop {
            // The parameters after the last step, however far into an epoch it was.
            self.entry = self.evaluate(epoch)?;
            if !self.entry.training.loss.is_finite() {
                return Err(self.trainer.diverged(epoch, self.session));
            }
            self.record(self.entry)?;
        } else if self.held_out && self.state.best.1 != epoch {
            // Held-out rows choose the parameters: the best seen (epoch 0's when none
            // improved).
            let params = match self.state.best.2.take() {
                Some(p) => p,
                None => self.trainer.init.clone().unwrap_or_else(|| {
                    let outputs = self.session.objective().outputs();
                    Params::zeros(self.session.features(), outputs)
                }),
            };
            self.session.set_params(&params)?;
            self.entry = self.evaluate(epoch)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_stopping_waits_patience_evaluations_for_an_improvement_beyond_tol() {
        let stopping = EarlyStopping {
            tol: 0.1,
            patience: 2,
        };
        assert_eq!(stopping.judge(1.85, 2.0, 1), Verdict::Improved);
        // 1.95 is better than 2.0, but not by more than tol.
        assert_eq!(stopping.judge(1.95, 2.0, 0), Verdict::Wait);
        assert_eq!(stopping.judge(1.95, 2.0, 1), Verdict::Stop);
        assert!(!stopping.may_stop(0) && stopping.may_stop(1));
    }
}

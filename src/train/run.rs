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

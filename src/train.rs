//! The descent loop, shared by every backend: which steps to take, when to log the loss,
//! and what to do when the loss stops being finite.

use std::time::Instant;

use crate::backend::{Batch, RunOutcome, Session, Step};
use crate::error::{Error, Result};
use crate::model::Params;
use crate::rng::Permutation;

/// Steps handed to a session at once, at most (more only within one epoch).
const MAX_PENDING_STEPS: usize = 1 << 16;

/// Descent options. Every setter states its default.
#[derive(Clone, Debug, PartialEq)]
pub struct Trainer {
    lr: f64,
    epochs: u64,
    batch_size: Option<usize>,
    seed: u64,
    log_every: u64,
    init: Option<Params>,
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
        }
    }
}

/// The outcome of a fit.
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    /// The final parameters.
    pub params: Params,
    /// J at the final parameters over all training rows.
    pub loss: f64,
    /// J over all training rows at each logged epoch, starting with epoch 0.
    pub history: Vec<f64>,
    /// The epoch of each entry of `history`.
    pub history_epochs: Vec<u64>,
    /// Epochs run.
    pub epochs: u64,
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

    /// Seed of the epoch permutations. Default 0.
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

    pub fn learning_rate(&self) -> f64 {
        self.lr
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
        Ok(())
    }

    /// The steps of one epoch over `rows` rows.
    pub fn epoch_steps(&self, epoch: u64, rows: usize) -> Vec<Step> {
        let n = rows as u32;
        let lr = self.lr as f32;
        match self.batch_size {
            Some(b) if b < rows => {
                let order = Some(Permutation::for_epoch(self.seed, epoch, n));
                (0..n)
                    .step_by(b)
                    .map(|start| Step {
                        epoch,
                        batch: Batch {
                            start,
                            len: (b as u32).min(n - start),
                            order,
                        },
                        lr,
                    })
                    .collect()
            }
            // One batch of all rows: its order cannot change the gradient, so skip the shuffle.
            _ => vec![Step {
                epoch,
                batch: Batch {
                    start: 0,
                    len: n,
                    order: None,
                },
                lr,
            }],
        }
    }

    /// Runs the descent on a loaded session.
    ///
    /// On divergence, the session keeps the last finite parameters and the error carries
    /// them ([`Error::Diverged`]).
    pub fn fit(&self, session: &mut dyn Session) -> Result<Fit> {
        self.fit_observed(session, &mut |_, _| {})
    }

    /// [`Trainer::fit`], calling `observe(epoch, loss)` at every logged epoch.
    pub fn fit_observed(
        &self,
        session: &mut dyn Session,
        observe: &mut dyn FnMut(u64, f64),
    ) -> Result<Fit> {
        self.validate()?;
        if let Some(init) = &self.init {
            session.set_params(init)?;
        }
        let start = Instant::now();
        let mut history = vec![session.loss()?];
        let mut history_epochs = vec![0];
        observe(0, history[0]);
        let mut epoch = 0;
        let mut steps = Vec::new();
        while epoch < self.epochs {
            let chunk_end = (epoch + self.log_every).min(self.epochs);
            for e in epoch..chunk_end {
                steps.extend(self.epoch_steps(e, session.rows()));
                // Bound the host memory of long runs of small batches.
                if steps.len() >= MAX_PENDING_STEPS || e + 1 == chunk_end {
                    if let RunOutcome::Diverged { step } = session.run(&steps)? {
                        return Err(self.diverged(steps[step].epoch + 1, session));
                    }
                    steps.clear();
                }
            }
            epoch = chunk_end;
            let loss = session.loss()?;
            if !loss.is_finite() {
                return Err(self.diverged(epoch, session));
            }
            history.push(loss);
            history_epochs.push(epoch);
            observe(epoch, loss);
        }
        let train_seconds = start.elapsed().as_secs_f64();
        Ok(Fit {
            params: session.params()?,
            loss: *history
                .last()
                .expect("history starts with the initial loss"),
            history,
            history_epochs,
            epochs: self.epochs,
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

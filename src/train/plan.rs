//! The trainer's plan: the options a checkpoint must share, the update rule, validation,
//! and each epoch's learning rate and steps.

use super::*;
use crate::optim::Optimizer;

impl Trainer {
    /// The options a resumed fit must share with the one that wrote its checkpoint: all
    /// but the starting point, the interrupt and the checkpoint settings.
    pub(super) fn options_fingerprint(&self) -> String {
        format!(
            "lr {:?}, epochs {}, batch_size {:?}, seed {}, log_every {}, optimizer {:?}, \
             momentum {:?}, beta1 {:?}, beta2 {:?}, eps {:?}, regularization {:?}, \
             schedule {:?}, warmup {}, tol {:?}, patience {:?}, validation_fraction {:?}, \
             standardize {}, class_weights {:?}{}",
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
            self.class_weights,
            // Absent when on, so that checkpoints from before the option still match.
            if self.fit_intercept {
                ""
            } else {
                ", no intercept"
            }
        )
    }

    pub fn learning_rate(&self) -> f64 {
        self.lr
    }

    /// The optimizer with its hyperparameters (defaults filled in).
    pub fn update_rule(&self) -> UpdateRule {
        let optimizer = match self.optimizer.with_defaults() {
            Optimizer::Momentum { momentum } => Optimizer::Momentum {
                momentum: self.momentum.unwrap_or(momentum),
            },
            Optimizer::Nesterov { momentum } => Optimizer::Nesterov {
                momentum: self.momentum.unwrap_or(momentum),
            },
            Optimizer::Adam { beta1, beta2, eps } => Optimizer::Adam {
                beta1: self.beta1.unwrap_or(beta1),
                beta2: self.beta2.unwrap_or(beta2),
                eps: self.eps.unwrap_or(eps),
            },
            Optimizer::Sgd => Optimizer::Sgd,
        };
        UpdateRule {
            optimizer,
            regularization: self.regularization,
            fixed_bias: !self.fit_intercept,
        }
    }

    /// (tol, patience) when early stopping is on.
    pub(super) fn stopping(&self) -> Option<(f64, u64)> {
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
        if let Some(c) = &self.wiring.checkpointing
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
        if !self.fit_intercept {
            if self.standardize {
                return Err(Error::option(
                    "fit_intercept",
                    "off (--no-intercept)",
                    "cannot go with standardize, whose centring of the features needs an \
                     intercept; scale the features beforehand instead",
                ));
            }
            if let Some(init) = &self.init
                && init.bias().iter().any(|&b| b != 0.0)
            {
                return Err(Error::option(
                    "init",
                    format!("bias {:?}", init.bias()),
                    "must be zero without an intercept (the bias is not fitted)",
                ));
            }
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
}

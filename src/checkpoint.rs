//! Checkpoints: everything a fit carries from one epoch to the next — the session's exact
//! parameters and optimizer state, the step count that keys the random batch order, the
//! log, the early-stopping bookkeeping — written atomically, so that a fit resumed from one
//! ends with the same bits as a fit that never stopped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::Snapshot;
use crate::descent::LogEntry;
use crate::error::{Error, Result};
use crate::model::{Model, Objective};
use crate::params_file;
use crate::solve::SolverState;

/// What the file's `format` field says; anything else is refused.
const FORMAT: &str = "downhill checkpoint 1";

/// Where and how often a fit writes checkpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpointing {
    pub path: PathBuf,
    /// Every this many epochs (at least 1).
    pub every: u64,
}

/// The random state of the batch order. Batches are drawn from a counter-based hash, so
/// the seed, the epoch and the global step are the whole of it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RngState {
    pub seed: u64,
    pub epoch: u64,
    pub step: u64,
}

/// The best monitored loss so far, when stopping early: its value, its epoch and (with
/// held-out rows) its parameters, W then b.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    pub value: f64,
    pub epoch: u64,
    pub params: Option<Vec<f64>>,
}

/// A fit's state between two steps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: String,
    pub model: Model,
    pub loss_fn: String,
    pub outputs: usize,
    pub rows: usize,
    pub features: usize,
    /// A fingerprint of the rows ([`crate::Data::fingerprint`]), when the fit had one.
    pub data: Option<String>,
    /// The trainer's options, which a resumed fit must share.
    pub options: String,
    /// Epochs completed.
    pub epoch: u64,
    /// Steps of epoch `epoch` already taken (non-zero only after an interrupt).
    pub step_in_epoch: u64,
    /// Whether epoch `epoch`'s evaluation (logging, early stopping) has been done.
    pub evaluated: bool,
    pub rng: RngState,
    pub snapshot: Snapshot,
    pub best: Best,
    /// Evaluations without improvement, when stopping early.
    pub waited: u64,
    pub log: Vec<LogEntry>,
    /// A solver's state, when a solver (not gradient descent) wrote the checkpoint; its
    /// `epoch` is then the solver's iteration and `snapshot` its parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub solver: Option<SolverState>,
}

impl Checkpoint {
    pub(crate) fn format() -> String {
        FORMAT.to_string()
    }

    /// Writes the file through a temporary file, a flush and a rename.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let text = serde_json::to_string(self).map_err(|e| Error::Checkpoint {
            path: path.into(),
            message: format!("not written: {e}"),
        })?;
        crate::output::write(path, format!("{text}\n").as_bytes())
    }

    /// Reads a checkpoint file and checks that its fields hold together
    /// ([`Checkpoint::validate`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// A checkpoint from the text of the file at `path` (named in errors), validated.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let fail = |message: String| Error::Checkpoint {
            path: path.into(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| params_file::json_error(path, &e))?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(fail(format!(
                    "written as {other:?}; this build reads {FORMAT:?}"
                )));
            }
            None => return Err(fail("not a checkpoint (no \"format\" field)".into())),
        }
        let checkpoint: Checkpoint =
            serde_json::from_value(value).map_err(|e| fail(e.to_string()))?;
        checkpoint.validate().map_err(fail)?;
        Ok(checkpoint)
    }

    /// The epochs the fit that wrote this checkpoint ran to (from its options).
    pub fn epochs(&self) -> Option<u64> {
        options_without_epochs(&self.options).1
    }

    /// Checks what a checkpoint must hold on its own, whoever resumes it: shapes of θ, the
    /// optimizer state and the raw parameters; finite values; the epoch within the fit's
    /// epochs and the random state at that epoch; the best epoch and the log up to it.
    /// The message names the field and its value.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let (d, k) = (self.features, self.outputs);
        if self.rows == 0 || d == 0 || k == 0 {
            return Err(format!(
                "rows {}, features {d} and outputs {k} must all be at least 1",
                self.rows
            ));
        }
        let n = d
            .checked_add(1)
            .and_then(|v| v.checked_mul(k))
            .ok_or_else(|| format!("features {d} × outputs {k} overflow"))?;
        let s = &self.snapshot;
        if s.theta.len() != n {
            return Err(format!(
                "snapshot.theta holds {}; {d} features and {k} outputs need {n}",
                crate::error::count(s.theta.len(), "number")
            ));
        }
        if s.raw.len() != n {
            return Err(format!(
                "snapshot.raw holds {}; {d} features and {k} outputs need {n}",
                crate::error::count(s.raw.len(), "number")
            ));
        }
        if !(s.state.is_empty() || s.state.len() == n || s.state.len() == 2 * n) {
            return Err(format!(
                "snapshot.state holds {}; an optimizer keeps 0, {n} or {} here",
                crate::error::count(s.state.len(), "number"),
                2 * n
            ));
        }
        check_finite("snapshot.theta", &s.theta, true)?;
        check_finite("snapshot.raw", &s.raw, true)?;
        check_finite("snapshot.state", &s.state, false)?;
        if let Some(state) = &self.solver {
            self.validate_solver(state, n)?;
        }
        if let Some(p) = &self.best.params {
            if p.len() != n {
                return Err(format!(
                    "best.params holds {}, not {n}",
                    crate::error::count(p.len(), "number")
                ));
            }
            check_finite("best.params", p, true)?;
        }
        let (_, epochs) = options_without_epochs(&self.options);
        let epochs = epochs
            .ok_or_else(|| format!("options {:?} do not name the fit's epochs", self.options))?;
        // A solver's iterations are not the descent's epochs (its --max-iter may be more).
        if self.epoch > epochs && self.solver.is_none() {
            return Err(format!(
                "epoch {} is past the {epochs} epochs of the fit that wrote it",
                self.epoch
            ));
        }
        if self.rng.epoch != self.epoch {
            return Err(format!(
                "rng.epoch {} differs from epoch {}",
                self.rng.epoch, self.epoch
            ));
        }
        if self.step_in_epoch > 0 && self.epoch == epochs {
            return Err(format!(
                "step_in_epoch {} after the last epoch",
                self.step_in_epoch
            ));
        }
        if self.best.epoch > self.epoch {
            return Err(format!(
                "best.epoch {} is after epoch {}",
                self.best.epoch, self.epoch
            ));
        }
        if !self.best.value.is_finite() {
            return Err(format!("best.value {} is not finite", self.best.value));
        }
        if self.waited > self.epoch {
            return Err(format!(
                "waited {} is more than the {} epochs run",
                self.waited, self.epoch
            ));
        }
        let Some(first) = self.log.first() else {
            return Err("log is empty; it starts with epoch 0".into());
        };
        if first.epoch != 0 {
            return Err(format!("log[0].epoch is {}, not 0", first.epoch));
        }
        for (i, pair) in self.log.windows(2).enumerate() {
            if pair[1].epoch <= pair[0].epoch {
                return Err(format!(
                    "log[{}].epoch {} does not follow log[{i}].epoch {}",
                    i + 1,
                    pair[1].epoch,
                    pair[0].epoch
                ));
            }
        }
        for (i, entry) in self.log.iter().enumerate() {
            if entry.epoch > self.epoch {
                return Err(format!(
                    "log[{i}].epoch {} is after epoch {}",
                    entry.epoch, self.epoch
                ));
            }
            let losses =
                std::iter::once(entry.training.loss).chain(entry.validation.map(|v| v.loss));
            if losses.clone().any(|l| !l.is_finite()) {
                return Err(format!("log[{i}] holds a non-finite loss"));
            }
        }
        Ok(())
    }

    /// What [`Checkpoint::validate`] adds for a solver's checkpoint: θ and the pairs of
    /// n numbers, finite; the iteration is the epoch, with its log and pass history.
    fn validate_solver(&self, state: &SolverState, n: usize) -> std::result::Result<(), String> {
        if state.theta.len() != n {
            return Err(format!(
                "solver.theta holds {}, not {n}",
                crate::error::count(state.theta.len(), "number")
            ));
        }
        check_finite("solver.theta", &state.theta, false)?;
        for (i, (s, y)) in state.pairs.iter().enumerate() {
            if s.len() != n || y.len() != n {
                return Err(format!(
                    "solver.pairs[{i}] does not hold two vectors of {n}"
                ));
            }
            check_finite("solver.pairs", s, false)?;
            check_finite("solver.pairs", y, false)?;
        }
        for (name, v) in [("start_norm", Some(state.start_norm)), ("best", state.best)] {
            if let Some(v) = v.filter(|v| !v.is_finite()) {
                return Err(format!("solver.{name} {v} is not finite"));
            }
        }
        if self.step_in_epoch != 0 {
            return Err(format!(
                "step_in_epoch {} in a solver's checkpoint (a solver has no steps within an \
                 iteration)",
                self.step_in_epoch
            ));
        }
        if state.iteration != self.epoch {
            return Err(format!(
                "solver.iteration {} differs from epoch {}",
                state.iteration, self.epoch
            ));
        }
        let entries = self.epoch.saturating_add(1);
        if self.log.len() as u64 != entries || state.pass_history.len() as u64 != entries {
            return Err(format!(
                "iteration {} needs {entries} log entries and pass counts, not {} and {}",
                self.epoch,
                self.log.len(),
                state.pass_history.len()
            ));
        }
        if state.best_iteration > self.epoch {
            return Err(format!(
                "solver.best_iteration {} is after iteration {}",
                state.best_iteration, self.epoch
            ));
        }
        Ok(())
    }

    /// Checks the step counts against the fit resuming it: `steps` steps an epoch.
    pub(crate) fn check_steps(&self, steps: u64) -> Result<()> {
        let fail = |message: String| Error::ResumeMismatch { message };
        if self.step_in_epoch >= steps.max(1) {
            return Err(fail(format!(
                "the checkpoint's step_in_epoch {} is not within an epoch of {steps} steps",
                self.step_in_epoch
            )));
        }
        let expected = self
            .epoch
            .checked_mul(steps)
            .and_then(|t| t.checked_add(self.step_in_epoch));
        if expected != Some(self.rng.step) {
            return Err(fail(format!(
                "the checkpoint's rng.step {} is not epoch {} × {steps} steps + step_in_epoch {}",
                self.rng.step, self.epoch, self.step_in_epoch
            )));
        }
        Ok(())
    }

    /// Refuses to resume a different problem: objective, shape, rows and options must be
    /// those of the fit that wrote the checkpoint.
    pub(crate) fn check_matches(
        &self,
        objective: &Objective,
        rows: usize,
        features: usize,
        data: Option<&str>,
        options: &str,
        depends_on_epochs: Option<&str>,
    ) -> Result<()> {
        let fail = |message: String| Error::ResumeMismatch { message };
        let here = (
            objective.model(),
            objective.loss().to_string(),
            objective.outputs(),
        );
        let there = (self.model, self.loss_fn.clone(), self.outputs);
        if here != there {
            return Err(fail(format!(
                "the checkpoint is of {} with {} ({} outputs), this fit is {} with {} ({} outputs)",
                there.0, there.1, there.2, here.0, here.1, here.2
            )));
        }
        if (rows, features) != (self.rows, self.features) {
            return Err(fail(format!(
                "the checkpoint's data has {} × {}, this fit's {rows} × {features}",
                crate::error::count(self.rows, "row"),
                crate::error::count(self.features, "feature")
            )));
        }
        let n = (features + 1) * objective.outputs();
        if let Some(p) = &self.best.params
            && p.len() != n
        {
            return Err(fail(format!(
                "the checkpoint's best parameters hold {} numbers, not {n}",
                p.len()
            )));
        }
        if self.log.is_empty() {
            return Err(fail("the checkpoint's log is empty".into()));
        }
        if let (Some(a), Some(b)) = (self.data.as_deref(), data)
            && a != b
        {
            return Err(fail(format!(
                "the rows differ from the checkpoint's (fingerprint {b}, not {a})"
            )));
        }
        // The epochs may grow: a fit is resumed to train longer. (A solver's iterations are
        // not epochs; its --max-iter is not among the options.)
        let (their_options, their_epochs) = options_without_epochs(&self.options);
        let (our_options, our_epochs) = options_without_epochs(options);
        if let (Some(theirs), Some(ours), None) = (their_epochs, our_epochs, &self.solver) {
            if ours < self.epoch {
                return Err(fail(format!(
                    "the checkpoint is at epoch {}, past --epochs {ours}",
                    self.epoch
                )));
            }
            if ours != theirs && depends_on_epochs.is_some() {
                return Err(fail(format!(
                    "the checkpoint was written by a fit of {theirs} epochs, and {} depends on \
                     the number of epochs; resume with --epochs {theirs}",
                    depends_on_epochs.unwrap_or_default()
                )));
            }
        }
        if their_options != our_options {
            let theirs: Vec<&str> = self.options.split(", ").collect();
            let ours: Vec<&str> = options.split(", ").collect();
            let first = theirs.iter().zip(&ours).find(|(a, b)| a != b).map_or_else(
                || format!("{} against {}", self.options, options),
                |(a, b)| format!("{a} in the checkpoint, {b} here"),
            );
            return Err(fail(format!(
                "the options differ ({first}); resume with the command line that wrote it"
            )));
        }
        Ok(())
    }
}

/// `values` are finite (and within f32's range when `f32_range`), or which is not.
fn check_finite(name: &str, values: &[f64], f32_range: bool) -> std::result::Result<(), String> {
    let bad = values
        .iter()
        .position(|v| !v.is_finite() || (f32_range && v.abs() > f64::from(f32::MAX)));
    match bad {
        Some(i) => Err(format!(
            "{name}[{i}] is {}, not a finite f32 number",
            crate::error::number(values[i])
        )),
        None => Ok(()),
    }
}

/// The options' text without its `epochs N` entry, and N.
fn options_without_epochs(options: &str) -> (String, Option<u64>) {
    let mut epochs = None;
    let rest: Vec<&str> = options
        .split(", ")
        .filter(|part| match part.strip_prefix("epochs ") {
            Some(n) => {
                epochs = n.parse().ok();
                false
            }
            None => true,
        })
        .collect();
    (rest.join(", "), epochs)
}

//! Checkpoints: everything a fit carries from one epoch to the next — the session's exact
//! parameters and optimizer state, the step count that keys the random batch order, the
//! log, the early-stopping bookkeeping — written atomically, so that a fit resumed from one
//! ends with the same bits as a fit that never stopped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::Snapshot;
use crate::error::{Error, Result};
use crate::model::{Model, Objective};
use crate::params_file;
use crate::train::LogEntry;

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
}

impl Checkpoint {
    pub(crate) fn format() -> String {
        FORMAT.to_string()
    }

    /// Writes the file through a temporary file, a flush and a rename.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(self).map_err(|e| Error::Checkpoint {
            path: path.into(),
            message: format!("not written: {e}"),
        })?;
        params_file::write_atomically(path, text.as_bytes())
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let fail = |message: String| Error::Checkpoint {
            path: path.into(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| params_file::json_error(path, &e))?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(fail(format!(
                    "written as {other:?}; this build reads {FORMAT:?}"
                )));
            }
            None => return Err(fail("not a checkpoint (no \"format\" field)".into())),
        }
        serde_json::from_value(value).map_err(|e| fail(e.to_string()))
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
                "the checkpoint's data has {} rows × {} features, this fit's {rows} × {features}",
                self.rows, self.features
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
        if self.options != options {
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

/// A short fingerprint of a byte stream (FNV-1a folded through a 64-bit mix): enough to
/// tell data files apart, not a cryptographic hash.
pub(crate) fn fingerprint(words: impl Iterator<Item = u32>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut count: u64 = 0;
    for w in words {
        h ^= u64::from(w);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        count += 1;
    }
    h ^= count;
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_tell_order_and_length_apart() {
        let a = fingerprint([1u32, 2, 3].into_iter());
        assert_eq!(a, fingerprint([1u32, 2, 3].into_iter()));
        assert_ne!(a, fingerprint([2u32, 1, 3].into_iter()));
        assert_ne!(a, fingerprint([1u32, 2, 3, 0].into_iter()));
        assert_eq!(a.len(), 16);
    }
}

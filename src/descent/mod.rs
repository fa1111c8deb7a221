//! The descent vocabulary every backend and the trainer share: which rows a step uses
//! ([`Batch`], [`RowSet`], [`Split`]), what a fit fixes ([`Setup`], [`ClassWeights`],
//! [`Configured`]), what passes report ([`Evaluation`], [`PassSums`], [`HessianSums`], [`RunOutcome`],
//! [`LogEntry`]), the state that continues a descent ([`Snapshot`]), and the rows a session
//! opens ([`Data`]).
//!
//! It sits below every backend: it names no backend and no session, so that
//! `backend/`, each backend, the trainer and checkpoints all build on it.

mod outcomes;
mod rows;
mod snapshot;
mod steps;

pub use outcomes::{Evaluation, Evaluations, HessianSums, LogEntry, PassSums, RunOutcome};
pub use rows::Data;
pub(crate) use rows::{HostRows, check_host_memory};
pub use snapshot::Snapshot;
pub use steps::{Batch, ClassWeights, Configured, RowSet, Setup, Split, Step};

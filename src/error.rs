//! One error type for the whole crate. Every message names what was wrong and where.

use std::path::PathBuf;

use crate::params::{Params, ShapeError};

/// Everything that can go wrong in downhill, each with the data a user needs to fix it.
/// New variants may come: match with a catch-all arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An output that could not be written; `what` says which part of writing it failed.
    #[error("{path}: could not write it: {what}: {source}")]
    Write {
        path: PathBuf,
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// An output that would replace one of the command's inputs or another output.
    #[error("{output} is the same file as the {role} {other}; choose another output path")]
    OutputClash {
        output: String,
        other: String,
        role: &'static str,
    },

    #[error("{path}: the file is empty; expected a header row naming the columns")]
    EmptyFile { path: PathBuf },

    #[error("{path}: the file has a header but no data rows")]
    HeaderOnly { path: PathBuf },

    #[error("{path}, line {line}: {message}")]
    Csv {
        path: PathBuf,
        line: u64,
        message: String,
    },

    /// A malformed line of a libsvm file.
    #[error("{path}, line {line}, column {column}: {message}")]
    Libsvm {
        path: PathBuf,
        line: u64,
        column: usize,
        message: String,
    },

    #[error("{path}, line {line}: expected {expected} fields (as in the header), found {found}")]
    RaggedRow {
        path: PathBuf,
        line: u64,
        expected: usize,
        found: usize,
    },

    #[error("{path}, line {line}, column {column} ({name}): {problem}: {value:?}")]
    BadCell {
        path: PathBuf,
        line: u64,
        column: usize,
        name: String,
        value: String,
        problem: &'static str,
    },

    #[error("{path}: no column named {name:?}; the columns are: {}{hint}", available.join(", "))]
    MissingColumn {
        path: PathBuf,
        name: String,
        available: Vec<String>,
        /// Why the columns may not be what they seem (another separator), or nothing.
        hint: String,
    },

    #[error(
        "{path}: the header names the column {name:?} twice (columns {first} and {second}, \
         counted from 1); rename one"
    )]
    DuplicateColumn {
        path: PathBuf,
        name: String,
        first: usize,
        second: usize,
    },

    #[error("{path}: the target column {name:?} is the only column; there are no features")]
    NoFeatures { path: PathBuf, name: String },

    #[error("{location}: {objective} needs labels {expected}, found {value}")]
    BadLabel {
        location: String,
        objective: String,
        expected: &'static str,
        value: f32,
    },

    /// Softmax classes inferred from the largest label, some of which no row has.
    #[error(
        "{location}: the largest label is {largest}, so {} would be inferred, but {} \
         of them {} no rows; relabel the classes 0, 1, …, k−1, or ask for that many \
         classes explicitly to fit them anyway",
        count(*.largest + 1, "class"),
        .empty,
        if *.empty == 1 { "has" } else { "have" }
    )]
    EmptyClasses {
        location: String,
        largest: usize,
        empty: usize,
    },

    #[error("invalid {name} {value}: {reason}")]
    InvalidOption {
        name: &'static str,
        value: String,
        reason: String,
    },

    #[error("model {model} does not support loss {loss}; use {supported}")]
    UnsupportedLoss {
        model: &'static str,
        loss: &'static str,
        supported: &'static str,
    },

    #[error("{what}: expected {expected}, got {found}")]
    Shape {
        what: String,
        expected: String,
        found: String,
    },

    #[error("{path}: {message}")]
    ParamsFile { path: PathBuf, message: String },

    /// A checkpoint file that cannot be used.
    #[error("{path}: {message}")]
    Checkpoint { path: PathBuf, message: String },

    /// `--resume` with a checkpoint of another fit.
    #[error("cannot resume: {message}")]
    ResumeMismatch { message: String },

    /// A fit stopped by an [`crate::train::Interrupt`] (Ctrl-C in the CLI).
    #[error("interrupted after step {step}; {}", match saved {
        Some(path) => format!("the last parameters were written to {}", path.display()),
        None => "the parameters were not saved".to_string(),
    })]
    Interrupted { step: u64, saved: Option<PathBuf> },

    /// A picture (loss plot, animation) that could not be drawn or written.
    #[error("{path}: could not draw the picture: {message}")]
    Picture { path: PathBuf, message: String },

    /// A data file that is not what its format says (.npy, Parquet).
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },

    #[error("no GPU adapter: {reason}")]
    NoAdapter { reason: String },

    #[error("GPU: {message}")]
    Gpu { message: String },

    #[error(
        "{what} needs {bytes} bytes, more than the device's {limit_name} of {limit} bytes{hint}"
    )]
    TooLarge {
        what: String,
        bytes: u64,
        limit_name: &'static str,
        limit: u64,
        hint: &'static str,
    },

    /// A kernel whose work per invocation exceeds the device's loop limit
    /// ([`crate::backend::gpu::GpuContext::loop_limit`]).
    #[error(
        "{what} needs up to {needed} loop iterations in one GPU invocation, more than the \
         device's loop limit of {limit} (its driver silently ends every loop of an invocation \
         after that many in all); the CPU backend computes the same"
    )]
    LoopLimit {
        what: String,
        needed: u64,
        limit: u64,
    },

    /// A backend whose loss or gradient disagrees with the f64 reference's.
    #[error(
        "verification failed: the {backend} backend's {what} on {rows} rows differs from the \
         f64 reference's beyond f32 rounding ({detail}); its results on this device cannot be \
         trusted. The CPU backend computes the same fit"
    )]
    Verification {
        backend: String,
        what: &'static str,
        rows: usize,
        detail: String,
    },

    /// Host memory that the machine does not have.
    #[error(
        "{what} needs {bytes} bytes ({}) of host memory, {}. Try fewer rows, a float32 .npy \
         file (mapped from disk, not read into memory), the GPU backend (which streams rows \
         through its memory, --max-device-bytes), or --devices to split the rows",
        gib(*.bytes),
        match .available {
            Some(free) => format!("but the machine has {free} bytes ({}) available", gib(*free)),
            None => "more than the system could give".to_string(),
        }
    )]
    OutOfMemory {
        what: String,
        bytes: u64,
        /// What the system had available (Linux's MemAvailable plus free swap).
        available: Option<u64>,
    },

    #[error(
        "the GPU ran out of memory allocating {what} ({bytes} bytes): {message}. Try \
         --max-device-bytes N to stream the rows through less memory, fewer rows, or \
         --backend cpu"
    )]
    OutOfDeviceMemory {
        what: String,
        bytes: u64,
        message: String,
    },

    #[error(
        "the GPU device was lost ({message}): its driver reset or it went away. The data \
         are fine; run again (with --resume from a checkpoint to keep the progress), or use \
         --backend cpu"
    )]
    DeviceLost { message: String },

    #[error(
        "the GPU rejected a command ({message}); this is a bug in downhill, please report it \
         with the command line. --backend cpu runs the same fit"
    )]
    GpuValidation { message: String },

    /// The loss is already non-finite before the first step: no learning rate can help.
    #[error(
        "the loss is non-finite at the starting parameters, before any step{}",
        if *.custom {
            ": the loss expression is undefined there (a logarithm of a value ≤ 0, a \
             division by 0, an overflow); change the expression or the starting parameters"
        } else {
            "; check the starting parameters and the data for huge values"
        }
    )]
    NonFiniteStart { custom: bool },

    #[error(
        "the loss became non-finite at epoch {epoch} (learning rate {}); the last \
         finite parameters are kept",
        number(*.lr)
    )]
    Diverged {
        epoch: u64,
        lr: f64,
        /// The parameters before the step that went non-finite.
        last_finite: Box<Params>,
    },
}

/// `x` in the shortest text that reads back as the same f64: plain for ordinary
/// magnitudes (`0.1`, `250`), in exponent form outside 10⁻⁴ … 10¹⁶ (`1e308`, `2.5e-7`), so
/// that a message never spells out a 309-digit integer.
pub fn number(x: f64) -> String {
    let a = x.abs();
    if a != 0.0 && a.is_finite() && !(1e-4..1e16).contains(&a) {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

/// Bytes in GiB, for messages.
fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// `n` and the noun, singular or plural as `n` asks: `1 row`, `3 rows`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else if noun.ends_with('s') {
        format!("{n} {noun}es")
    } else {
        format!("{n} {noun}s")
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An out-of-memory on the device: what a fallback to streaming or the CPU can fix.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, Error::OutOfDeviceMemory { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::InvalidOption`].
    pub fn option(name: &'static str, value: impl ToString, reason: impl ToString) -> Self {
        Error::InvalidOption {
            name,
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    #[cfg(feature = "gpu")]
    pub(crate) fn gpu(message: impl ToString) -> Self {
        Error::Gpu {
            message: message.to_string(),
        }
    }
}

impl From<ShapeError> for Error {
    fn from(e: ShapeError) -> Self {
        Error::Shape {
            what: e.what,
            expected: e.expected,
            found: e.found,
        }
    }
}

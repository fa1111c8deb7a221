//! One error type for the whole crate. Every message names what was wrong and where.

use std::path::PathBuf;

use crate::model::Params;

/// Everything that can go wrong in downhill, each with the data a user needs to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
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

    #[error("{path}: no column named {name:?}; the columns are: {}", available.join(", "))]
    MissingColumn {
        path: PathBuf,
        name: String,
        available: Vec<String>,
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
        None => "no --out was given, so the parameters were not saved".to_string(),
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
    /// ([`crate::gpu::GpuContext::loop_limit`]).
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

    #[error(
        "the loss became non-finite at epoch {epoch} (learning rate {lr}); \
         try a smaller --lr. The last finite parameters are kept"
    )]
    Diverged {
        epoch: u64,
        lr: f64,
        /// The parameters before the step that went non-finite.
        last_finite: Box<Params>,
    },
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

    pub(crate) fn gpu(message: impl ToString) -> Self {
        Error::Gpu {
            message: message.to_string(),
        }
    }
}

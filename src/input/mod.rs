//! Reading datasets: CSV (parsed in parallel, chunk by chunk), NumPy `.npy` and Parquet,
//! chosen by the file's extension, with the same column choices for all three.

mod columns;
pub mod csv;
pub mod hashed;
pub mod libsvm;
pub mod npy;
pub mod npz;
#[cfg(feature = "parquet")]
pub mod parquet;
mod zip;

use std::path::Path;

use crate::data::Dataset;
use crate::error::Result;
pub use columns::{Columns, Target};

/// Reads `path` by its extension: `.csv` (or anything else), `.npy`, `.parquet`.
pub fn read(path: impl AsRef<Path>, spec: &Columns) -> Result<Dataset> {
    let path = path.as_ref();
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("npy") => npy::read(path, spec),
        #[cfg(feature = "parquet")]
        Some("parquet" | "parq") => parquet::read(path, spec),
        #[cfg(not(feature = "parquet"))]
        Some("parquet" | "parq") => Err(crate::error::Error::Format {
            path: path.into(),
            message: "this build of downhill reads no Parquet (its `parquet` feature is off)"
                .into(),
        }),
        _ => csv::read(path, spec),
    }
}

impl Dataset {
    /// Reads CSV, .npy or Parquet (by extension) with the columns `spec` chooses.
    pub fn read(path: impl AsRef<Path>, spec: &Columns) -> Result<Self> {
        read(path, spec)
    }

    /// Reads a CSV file with a header row. `target` names the label column; every other
    /// column is a feature, in file order. Every cell must be a finite number.
    pub fn read_csv(path: impl AsRef<Path>, target: &str) -> Result<Self> {
        Self::read_csv_weighted(path, target, None)
    }

    /// [`Dataset::read_csv`] with per-row sample weights from column `weights` (not a
    /// feature); each must be a finite number ≥ 0.
    pub fn read_csv_weighted(
        path: impl AsRef<Path>,
        target: &str,
        weights: Option<&str>,
    ) -> Result<Self> {
        let spec = Columns {
            target: Target::Column(target.to_string()),
            features: None,
            weights: weights.map(str::to_string),
        };
        csv::read(path.as_ref(), &spec)
    }
}

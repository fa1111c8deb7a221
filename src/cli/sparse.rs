//! Sparse data on the command line: libsvm text (`.svm`, `.svmlight`, `.libsvm`), scipy
//! CSR archives (`.npz` with `--target y.npy`) and CSV with hashed categorical columns
//! (`--hash-features`), with the options that say how to read them.

use std::path::Path;

use clap::Args;

use downhill::error::count;
use downhill::input::hashed::{self, HashedColumns};
use downhill::input::libsvm::{self, IndexBase, LibsvmOptions};
use downhill::input::npz;
use downhill::{Error, Model, SparseDataset};

use super::args::{TargetArgs, feature_names};

/// How to read sparse rows.
#[derive(Args)]
pub struct SparseArgs {
    #[command(flatten)]
    libsvm: LibsvmArgs,
    /// CSV: hash these categorical columns (comma separated) into 2^B columns, each cell
    /// the token "column=value", as scikit-learn's FeatureHasher(alternate_sign=False)
    /// places it; the other columns are numbers and come first. The rows are sparse.
    #[arg(long)]
    hash_features: Option<String>,
    /// With --hash-features: B, for 2^B hashed columns (1 to 30).
    #[arg(long, default_value_t = 20, requires = "hash_features")]
    hash_bits: u32,
}

/// How a libsvm file numbers its columns, and how many there are.
#[derive(Args)]
struct LibsvmArgs {
    /// libsvm: the indices count from 1 (default: from 1 unless some index is 0, as
    /// scikit-learn's load_svmlight_file decides).
    #[arg(long, conflicts_with = "zero_based")]
    one_based: bool,
    /// libsvm: the indices count from 0.
    #[arg(long)]
    zero_based: bool,
    /// libsvm: the number of features (default: the largest index + 1); a larger index is
    /// refused with its line and column.
    #[arg(long)]
    num_features: Option<usize>,
}

impl LibsvmArgs {
    fn options(&self) -> LibsvmOptions {
        let base = match (self.one_based, self.zero_based) {
            (true, _) => IndexBase::One,
            (_, true) => IndexBase::Zero,
            _ => IndexBase::Auto,
        };
        LibsvmOptions {
            base,
            features: self.num_features,
        }
    }

    fn given(&self) -> bool {
        self.one_based || self.zero_based || self.num_features.is_some()
    }
}

/// Whether `path` names a sparse data file (by its extension).
pub fn is_sparse(path: &Path) -> bool {
    libsvm::is_libsvm(path) || npz::is_npz(path)
}

/// The sparse rows of `data` for `model` (`None`: they are dense): libsvm text, whose
/// labels come first on each line; a CSR archive with its labels in `--target y.npy`; or a
/// CSV with hashed columns, whose `features` (if given) are its numeric columns.
/// `weight_column` is for the CSV only (sparse files have no columns to choose).
pub fn read(
    data: Option<&Path>,
    args: &SparseArgs,
    target: &TargetArgs,
    weight_column: Option<&str>,
    features: Option<&str>,
    model: Model,
) -> Result<Option<SparseDataset>, Error> {
    if let Some(hashed) = &args.hash_features {
        let Some(path) = data.filter(|p| !is_sparse(p)) else {
            return Err(Error::option(
                "hash-features",
                hashed,
                "hashes the columns of a CSV file (--data FILE.csv)",
            ));
        };
        let spec = HashedColumns {
            target: target.required(path)?,
            weights: weight_column.map(str::to_string),
            hashed: feature_names(hashed)?,
            bits: args.hash_bits,
            numeric: features.map(feature_names).transpose()?,
        };
        let started = std::time::Instant::now();
        let dataset = hashed::read(path, &spec)?;
        log_read(&dataset, path, started);
        return Ok(Some(dataset));
    }
    let libsvm_args = &args.libsvm;
    let is_libsvm = data.is_some_and(libsvm::is_libsvm);
    if libsvm_args.given() && !is_libsvm {
        return Err(Error::option(
            "num-features",
            "(not libsvm)",
            "--one-based, --zero-based and --num-features read libsvm files (.svm, \
             .svmlight, .libsvm)",
        ));
    }
    let Some(path) = data.filter(|p| is_sparse(p)) else {
        return Ok(None);
    };
    if weight_column.is_some() || target.target_index.is_some() {
        return Err(Error::option(
            "weight-column",
            path.display(),
            "sparse rows have no columns to choose: a libsvm file's labels come first on each \
             line, an .npz's from --target y.npy",
        ));
    }
    let started = std::time::Instant::now();
    let mut dataset = if is_libsvm {
        if target.target.is_some() {
            return Err(Error::option(
                "target",
                path.display(),
                "a libsvm file's labels are the first number of each line; it has no columns \
                 to choose",
            ));
        }
        libsvm::read(path, &libsvm_args.options())?
    } else {
        let labels = target.target.as_deref().filter(|t| t.ends_with(".npy"));
        let labels = labels.ok_or_else(|| {
            Error::option(
                "target",
                target.target.as_deref().unwrap_or("(none)"),
                format!(
                    "{} (a scipy CSR matrix) needs its labels in a 1-D .npy array: --target \
                     y.npy",
                    path.display()
                ),
            )
        })?;
        npz::read(path, Some(Path::new(labels)))?
    };
    if let Some(list) = features {
        return Err(Error::option(
            "features",
            list,
            "sparse rows take every column; --features chooses columns of dense files",
        ));
    }
    log_read(&dataset, path, started);
    if model == Model::Logistic && dataset.binary_labels_from_signs() {
        log::info!("labels −1 and +1 read as classes 0 and 1");
    }
    Ok(Some(dataset))
}

fn log_read(dataset: &SparseDataset, path: &Path, started: std::time::Instant) {
    log::info!(
        "read {} × {} ({} non-zeros) from {} in {:.2} s",
        count(dataset.rows(), "row"),
        count(dataset.features(), "feature"),
        dataset.nnz(),
        path.display(),
        started.elapsed().as_secs_f64()
    );
}

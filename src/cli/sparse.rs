//! Sparse data files on the command line: libsvm text (`.svm`, `.svmlight`, `.libsvm`) and
//! scipy CSR archives (`.npz` with `--target y.npy`), with the options that say how to read
//! them.

use std::path::Path;

use clap::Args;

use downhill::error::count;
use downhill::input::libsvm::{self, IndexBase, LibsvmOptions};
use downhill::input::npz;
use downhill::{Error, Model, SparseDataset};

use super::args::TargetArgs;

/// How a libsvm file numbers its columns, and how many there are.
#[derive(Args)]
pub struct LibsvmArgs {
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

/// The sparse rows of `data` for `model` (`None`: it is not a sparse file): libsvm text,
/// whose labels come first on each line, or a CSR archive with its labels in `--target
/// y.npy`. `weight_column` must be unset (sparse files have no columns to choose).
pub fn read(
    data: Option<&Path>,
    libsvm_args: &LibsvmArgs,
    target: &TargetArgs,
    weight_column: Option<&str>,
    model: Model,
) -> Result<Option<SparseDataset>, Error> {
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
    log::info!(
        "read {} × {} ({} non-zeros) from {} in {:.2} s",
        count(dataset.rows(), "row"),
        count(dataset.features(), "feature"),
        dataset.nnz(),
        path.display(),
        started.elapsed().as_secs_f64()
    );
    if model == Model::Logistic && dataset.binary_labels_from_signs() {
        log::info!("labels −1 and +1 read as classes 0 and 1");
    }
    Ok(Some(dataset))
}

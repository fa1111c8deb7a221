//! Using a fitted model: reading the columns it was fitted on from a file, predicting, and
//! scoring, on any backend. The model and its file format are [`crate::model_file`].

use std::path::Path;

use crate::backend::Backend;
use crate::data::Dataset;
use crate::descent::{Data, Evaluation, RowSet, Setup};
use crate::error::{Error, Result};
use crate::input::hashed::{self, HashedColumns};
use crate::input::libsvm::{self, IndexBase, LibsvmOptions};
use crate::input::{self, Target, npz};
use crate::model::Model;
use crate::model_file::FittedModel;
use crate::predict::Predictions;
use crate::sparse::SparseDataset;

impl FittedModel {
    /// Reads the model's feature columns of `data` (by name when the model names them,
    /// else in order), with the labels `target` names, and checks that there are as many
    /// as the model has weights. With columns in order and no target, the model's own
    /// label column, when the file has it, is not taken for a feature.
    pub fn read(&self, data: impl AsRef<Path>, target: Target) -> Result<Dataset> {
        let data = data.as_ref();
        let dataset = match (&self.features, &target, &self.target) {
            (None, Target::None, Some(label)) => {
                match input::read(data, &self.columns(Target::Column(label.clone()))) {
                    Err(Error::MissingColumn { .. }) => input::read(data, &self.columns(target))?,
                    read => {
                        log::info!(
                            "{}: column {label:?} is the model's target, not a feature",
                            data.display()
                        );
                        read?
                    }
                }
            }
            _ => input::read(data, &self.columns(target))?,
        };
        if self.features.is_none() {
            log::warn!(
                "the model names no feature columns: the columns of {} are taken in order as \
                 its {}",
                data.display(),
                crate::error::count(self.params.features(), "feature")
            );
        }
        self.check_features(&Data::Host(&dataset), &data.display().to_string())?;
        Ok(dataset)
    }

    /// Reads sparse rows for the model: a libsvm file (its columns numbered as the file the
    /// model was fitted on numbered them, when the model says; an index past the model's
    /// features refused with its line and column), a scipy CSR `.npz` with its labels in
    /// `target` (a `.npy`; [`Target::None`]: labels 0, for predicting), or, for a model
    /// of hashed columns, a CSV hashed as its training file was (labels in the `target`
    /// column). Labels ±1 become 0 and 1 for a logistic model.
    pub fn read_sparse(&self, data: &Path, target: Target) -> Result<SparseDataset> {
        let mut rows = if let (Some(h), false) = (&self.hashing, is_sparse_file(data)) {
            let spec = HashedColumns {
                target,
                weights: None,
                hashed: h.columns.clone(),
                bits: h.bits,
                numeric: Some(h.numeric.clone()),
            };
            hashed::read(data, &spec)?
        } else if libsvm::is_libsvm(data) {
            let base = match self.libsvm_one_based {
                Some(true) => IndexBase::One,
                Some(false) => IndexBase::Zero,
                None => IndexBase::Auto,
            };
            let options = LibsvmOptions {
                base,
                features: Some(self.params.features()),
            };
            libsvm::read(data, &options)?
        } else {
            let labels = match &target {
                Target::None => None,
                Target::Column(y) if y.ends_with(".npy") => Some(Path::new(y)),
                Target::File(y) => Some(y.as_path()),
                other => {
                    return Err(Error::option(
                        "target",
                        format!("{other:?}"),
                        format!(
                            "{} (a scipy CSR matrix) takes its labels from a 1-D .npy array: \
                             --target y.npy",
                            data.display()
                        ),
                    ));
                }
            };
            npz::read(data, labels)?
        };
        if self.model == Model::Logistic {
            rows.binary_labels_from_signs();
        }
        Ok(rows)
    }

    /// Whether the model reads `data` as sparse rows: a libsvm or `.npz` file, or any file
    /// for a model of hashed columns.
    pub fn reads_sparse(&self, data: &Path) -> bool {
        self.hashing.is_some() || is_sparse_file(data)
    }

    /// Refuses rows with another number of features than the model has weights.
    fn check_features(&self, data: &Data<'_>, what: &str) -> Result<()> {
        if data.features() == self.params.features() {
            return Ok(());
        }
        let names = match data {
            Data::Host(rows) => format!(" ({})", rows.feature_names().join(", ")),
            _ => String::new(),
        };
        Err(Error::Shape {
            what: format!("{what} (for the model)"),
            expected: format!("{} feature columns", self.params.features()),
            found: format!("{}{names}", data.features()),
        })
    }

    /// The model's predictions for every row of `data` (a [`Dataset`] or a
    /// [`SparseDataset`]), computed on `backend`.
    pub fn predict<'a>(
        &self,
        backend: &dyn Backend,
        data: impl Into<Data<'a>>,
    ) -> Result<Predictions> {
        let data = data.into();
        self.check_features(&data, "the rows")?;
        let mut session = backend.open(data, self.prediction_objective()?)?;
        Predictions::of(session.as_mut(), &self.params)
    }

    /// The loss of the model's objective (unweighted by class) and its metric, accuracy or
    /// R², over every row of `data` (a [`Dataset`] or a [`SparseDataset`]), computed on
    /// `backend`.
    pub fn score<'a>(
        &self,
        backend: &dyn Backend,
        data: impl Into<Data<'a>>,
    ) -> Result<Evaluation> {
        let data = data.into();
        self.check_features(&data, "the rows")?;
        let objective = self.objective()?;
        match &data {
            Data::Host(rows) => rows.check_labels(&objective)?,
            Data::Sparse(rows) => rows.check_labels(&objective)?,
            _ => {}
        }
        let mut session = backend.open(data, objective)?;
        session.configure(&Setup::default())?;
        session.set_params(&self.params)?;
        session.evaluate(RowSet::All)
    }
}

/// Whether `data`'s extension names a sparse format (libsvm, `.npz`).
fn is_sparse_file(data: &Path) -> bool {
    libsvm::is_libsvm(data) || npz::is_npz(data)
}

//! Using a fitted model: reading the columns it was fitted on from a file, predicting, and
//! scoring, on any backend. The model and its file format are [`crate::model_file`].

use std::path::Path;

use crate::backend::Backend;
use crate::data::Dataset;
use crate::descent::{Data, Evaluation, RowSet, Setup};
use crate::error::{Error, Result};
use crate::input::{self, Target};
use crate::model_file::FittedModel;
use crate::predict::Predictions;

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
        self.check_features(&dataset, &data.display().to_string())?;
        Ok(dataset)
    }

    /// Refuses rows with another number of features than the model has weights.
    fn check_features(&self, data: &Dataset, what: &str) -> Result<()> {
        if data.features() == self.params.features() {
            return Ok(());
        }
        Err(Error::Shape {
            what: format!("{what} (for the model)"),
            expected: format!("{} feature columns", self.params.features()),
            found: format!("{} ({})", data.features(), data.feature_names().join(", ")),
        })
    }

    /// The model's predictions for every row of `data`, computed on `backend`.
    pub fn predict(&self, backend: &dyn Backend, data: &Dataset) -> Result<Predictions> {
        self.check_features(data, "the rows")?;
        let mut session = backend.open(Data::Host(data), self.prediction_objective()?)?;
        Predictions::of(session.as_mut(), &self.params)
    }

    /// The loss of the model's objective (unweighted by class) and its metric, accuracy or
    /// R², over every row of `data`, computed on `backend`.
    pub fn score(&self, backend: &dyn Backend, data: &Dataset) -> Result<Evaluation> {
        self.check_features(data, "the rows")?;
        let objective = self.objective()?;
        data.check_labels(&objective)?;
        let mut session = backend.open(Data::Host(data), objective)?;
        session.configure(&Setup::default())?;
        session.set_params(&self.params)?;
        session.evaluate(RowSet::All)
    }
}

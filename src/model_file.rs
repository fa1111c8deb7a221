//! Fitted models and their files: a parameter file (see [`crate::params_file`]) plus what prediction needs to
//! find its columns again — the feature names, the target — and the standardization the
//! descent used, for the record. Any model file is also a parameter file for `--init`.
//!
//! ```json
//! {"model": "logistic", "loss_fn": "bce", "weights": [0.5, -1.0], "bias": 0.25,
//!  "features": ["age", "income"], "target": "bought",
//!  "standardization": {"mean": [41.2, 5.1e4], "std": [12.0, 2.2e4]}}
//! ```
//!
//! The weights are always on the raw feature scale: predicting needs no standardization.

use std::path::Path;

use serde_json::{Value, json};

use crate::custom::{CustomLoss, LossKind};
use crate::error::{Error, Result};
use crate::hashing::Hashing;
use crate::input::{Columns, Target};
use crate::model::{Loss, Model, Objective, Params};
use crate::optim::Standardization;
use crate::params_file;

/// A fitted model and how to feed it: what [`crate::fit`] returns (as [`crate::Fit::model`])
/// and what a model file holds. Predicting and scoring with it are in `fitted.rs`.
#[derive(Clone, Debug, PartialEq)]
pub struct FittedModel {
    pub model: Model,
    /// The loss as the file names it: `mse`, `bce`, `ce` or `custom:EXPRESSION`.
    pub loss_fn: String,
    pub params: Params,
    /// The columns the weights belong to, in order (`None`: the data's own columns).
    pub features: Option<Vec<String>>,
    /// The label column of the training data.
    pub target: Option<String>,
    /// Per-feature mean and σ the descent standardized with.
    pub standardization: Option<Standardization>,
    /// For a model of sparse rows from a libsvm file: whether it counted columns from 1.
    pub libsvm_one_based: Option<bool>,
    /// For a model of a CSV with hashed categorical columns: the hashing, and the numeric
    /// columns before the hashed ones.
    pub hashing: Option<Hashing>,
}

impl FittedModel {
    /// A model fitted for `objective`.
    pub fn new(objective: &Objective, params: Params) -> Self {
        FittedModel {
            model: objective.model(),
            loss_fn: objective.loss().to_string(),
            params,
            features: None,
            target: None,
            standardization: None,
            libsvm_one_based: None,
            hashing: None,
        }
    }

    /// With the feature names of the rows it was fitted on, and their label column when
    /// the rows came from a file that names it.
    pub fn with_data(mut self, data: &crate::data::Dataset) -> Self {
        self.features = Some(data.feature_names().to_vec());
        self.target = data.target_name().map(str::to_string);
        self
    }

    /// With how the sparse rows it was fitted on were read (their columns have no names).
    pub fn with_sparse(mut self, data: &crate::sparse::SparseDataset) -> Self {
        self.libsvm_one_based = data.libsvm_one_based();
        self.hashing = data.hashing().cloned();
        self.target = data.target_name().map(str::to_string);
        self
    }

    /// The objective it was fitted for; a `custom:` loss is compiled again from its
    /// expression.
    pub fn objective(&self) -> Result<Objective> {
        let loss = match self.loss_fn.strip_prefix("custom:") {
            Some(expr) => {
                let kind = match self.model {
                    Model::Softmax => LossKind::Class,
                    _ => LossKind::Output,
                };
                CustomLoss::parse(expr, kind)?.register()
            }
            None => self.loss_fn.parse::<Loss>()?,
        };
        Objective::new(self.model, Some(loss), self.params.outputs())
    }

    /// The objective for predicting: the model and k (the loss plays no part in z).
    pub fn prediction_objective(&self) -> Result<Objective> {
        Objective::new(self.model, None, self.params.outputs())
    }

    /// The columns to read from a data file: the model's features, labels in `target`.
    pub fn columns(&self, target: Target) -> Columns {
        Columns {
            target,
            features: self.features.clone(),
            weights: None,
        }
    }

    pub fn to_json(&self) -> Value {
        let (weights, bias) = params_file::json_parts(self.model, &self.params);
        let mut value = json!({
            "model": self.model,
            "loss_fn": self.loss_fn,
            "weights": weights,
            "bias": bias,
        });
        let fields = value.as_object_mut().expect("an object");
        if let Some(features) = &self.features {
            fields.insert("features".into(), json!(features));
        }
        if let Some(target) = &self.target {
            fields.insert("target".into(), json!(target));
        }
        if let Some(s) = &self.standardization {
            let std: Vec<f64> = s.scale.iter().map(|v| 1.0 / v).collect();
            fields.insert(
                "standardization".into(),
                json!({"mean": s.mean, "std": std}),
            );
        }
        if let Some(one_based) = self.libsvm_one_based {
            fields.insert("libsvm".into(), json!({ "one_based": one_based }));
        }
        if let Some(h) = &self.hashing {
            fields.insert(
                "hashing".into(),
                json!({"columns": h.columns, "bits": h.bits, "numeric": h.numeric}),
            );
        }
        value
    }

    /// Writes the file atomically (a reader never sees half of it).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let text = serde_json::to_string_pretty(&self.to_json()).expect("JSON of numbers");
        crate::output::write(path, format!("{text}\n").as_bytes())
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// A model from a model file's text (what [`FittedModel::to_json`] writes); errors name
    /// the text `name`.
    pub fn from_json_text(text: &str, name: &str) -> Result<Self> {
        Self::parse(text, Path::new(name))
    }

    pub(crate) fn parse(text: &str, path: &Path) -> Result<Self> {
        let fail = |message: String| Error::ParamsFile {
            path: path.into(),
            message,
        };
        let value: Value =
            serde_json::from_str(text).map_err(|e| params_file::json_error(path, &e))?;
        let field = |name: &str| value.get(name).filter(|v| !v.is_null());
        let model: Model = match field("model") {
            Some(Value::String(name)) => name.parse()?,
            Some(other) => return Err(fail(format!("model must be a string, found {other}"))),
            None => {
                return Err(fail(
                    "no \"model\" field: a model file names its model (linear, logistic or softmax)"
                        .into(),
                ));
            }
        };
        let features = field("weights").map_or(0, params_file::features_of);
        let params = params_file::parse(text, path, model, features, None)?;
        let loss_fn = match field("loss_fn") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => return Err(fail(format!("loss_fn must be a string, found {other}"))),
            None => model.default_loss().to_string(),
        };
        let strings = |name: &str| -> Result<Option<Vec<String>>> {
            let Some(v) = field(name) else {
                return Ok(None);
            };
            let list = v.as_array().and_then(|a| {
                a.iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            });
            list.map(Some)
                .ok_or_else(|| fail(format!("{name} must be an array of strings, found {v}")))
        };
        let feature_names = strings("features")?;
        if let Some(names) = &feature_names
            && names.len() != params.features()
        {
            return Err(fail(format!(
                "features names {} columns, but the weights have {}",
                names.len(),
                params.features()
            )));
        }
        let target = match field("target") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => return Err(fail(format!("target must be a string, found {other}"))),
            None => None,
        };
        let standardization = match field("standardization") {
            None => None,
            Some(s) => Some(read_standardization(s, params.features()).map_err(fail)?),
        };
        let libsvm_one_based = match field("libsvm") {
            None => None,
            Some(v) => Some(v.get("one_based").and_then(Value::as_bool).ok_or_else(|| {
                fail(format!(
                    "libsvm must be {{\"one_based\": true or false}}, found {v}"
                ))
            })?),
        };
        let hashing = match field("hashing") {
            None => None,
            Some(v) => Some(read_hashing(v, params.features()).map_err(fail)?),
        };
        Ok(FittedModel {
            model,
            loss_fn,
            params,
            features: feature_names,
            target,
            standardization,
            libsvm_one_based,
            hashing,
        })
    }
}

/// A model file's `hashing`: `{"columns": [names], "bits": B, "numeric": [names]}`,
/// numeric + 2^B being the model's `features`.
fn read_hashing(value: &Value, features: usize) -> std::result::Result<Hashing, String> {
    let names = |name: &str| -> std::result::Result<Vec<String>, String> {
        value
            .get(name)
            .and_then(Value::as_array)
            .and_then(|a| {
                a.iter()
                    .map(|s| s.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or_else(|| format!("hashing.{name} must be an array of column names"))
    };
    let bits = value
        .get("bits")
        .and_then(Value::as_u64)
        .ok_or("hashing.bits must be a whole number")?;
    let hashing = Hashing::new(names("columns")?, bits.min(64) as u32, names("numeric")?)
        .map_err(|e| format!("hashing: {e}"))?;
    if hashing.features() != features {
        return Err(format!(
            "hashing makes {} features ({} numeric and 2^{bits} hashed), but the weights have {}",
            hashing.features(),
            hashing.numeric.len(),
            features
        ));
    }
    Ok(hashing)
}

fn read_standardization(
    value: &Value,
    features: usize,
) -> std::result::Result<Standardization, String> {
    let numbers = |name: &str| -> std::result::Result<Vec<f64>, String> {
        let list = value
            .get(name)
            .and_then(Value::as_array)
            .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>())
            .ok_or_else(|| format!("standardization.{name} must be an array of numbers"))?;
        if list.len() != features {
            return Err(format!(
                "standardization.{name} has {}, but the weights have {}",
                crate::error::count(list.len(), "number"),
                crate::error::count(features, "feature")
            ));
        }
        Ok(list)
    };
    let mean = numbers("mean")?;
    let std = numbers("std")?;
    if let Some(j) = std.iter().position(|&s| !(s > 0.0 && s.is_finite())) {
        return Err(format!(
            "standardization.std[{j}] must be positive, found {}",
            std[j]
        ));
    }
    Ok(Standardization {
        mean,
        scale: std.iter().map(|s| 1.0 / s).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_names_and_standardization() {
        let objective = Objective::softmax(3).unwrap();
        let params = Params::new(
            2,
            3,
            vec![1.0, -2.0, 0.5, 0.25, 0.0, -1.5],
            vec![0.1, 0.2, 0.3],
        )
        .unwrap();
        let mut model = FittedModel::new(&objective, params);
        model.features = Some(vec!["a".into(), "b".into()]);
        model.target = Some("label".into());
        model.standardization = Some(Standardization {
            mean: vec![1.0, -3.0],
            scale: vec![0.5, 4.0],
        });
        let text = serde_json::to_string(&model.to_json()).unwrap();
        let back = FittedModel::parse(&text, Path::new("m.json")).unwrap();
        assert_eq!(back, model);
        assert_eq!(back.objective().unwrap(), objective);
    }

    #[test]
    fn a_plain_parameter_file_is_a_model_when_it_names_the_model() {
        let text = r#"{"model": "linear", "weights": [2.0], "bias": -1.0}"#;
        let model = FittedModel::parse(text, Path::new("p.json")).unwrap();
        assert_eq!(model.loss_fn, "mse");
        assert_eq!(model.features, None);
        let missing =
            FittedModel::parse(r#"{"weights": [2.0], "bias": -1.0}"#, Path::new("p.json"))
                .unwrap_err()
                .to_string();
        assert!(
            missing.contains("p.json") && missing.contains("no \"model\""),
            "{missing}"
        );
        let short = r#"{"model": "linear", "weights": [2.0], "bias": 0, "features": ["a", "b"]}"#;
        let err = FittedModel::parse(short, Path::new("p.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("features names 2 columns"), "{err}");
    }

    #[test]
    fn custom_losses_compile_again_from_the_file() {
        let loss = CustomLoss::parse("(z - y)^2 / 2", LossKind::Output)
            .unwrap()
            .register();
        let objective = Objective::new(Model::Linear, Some(loss), 1).unwrap();
        let model = FittedModel::new(&objective, Params::zeros(1, 1));
        assert_eq!(model.loss_fn, "custom:(z - y)^2 / 2");
        let back = FittedModel::parse(&model.to_json().to_string(), Path::new("m.json")).unwrap();
        assert_eq!(back.objective().unwrap().model(), Model::Linear);
    }
}

//! Parameter files: `{"model", "loss_fn", "weights", "bias"}` in JSON.
//!
//! Linear and logistic: `weights` is d numbers and `bias` one number. Softmax: `weights`
//! is d rows of k numbers (W is d×k) and `bias` k numbers. Unknown fields are ignored.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::{Model, Objective, Params};

#[derive(Serialize, Deserialize)]
struct ParamsFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<Model>,
    /// Written for the reader's sake; ignored when read (a parameter file fits any loss).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    loss_fn: Option<Value>,
    weights: Value,
    bias: Value,
}

/// The JSON value of a parameter file for `params`.
pub fn to_json(objective: &Objective, params: &Params) -> Value {
    let (weights, bias) = json_parts(objective.model(), params);
    serde_json::json!({
        "model": objective.model(),
        "loss_fn": objective.loss(),
        "weights": weights,
        "bias": bias,
    })
}

/// `weights` and `bias` as the file spells them for `model`.
pub fn json_parts(model: Model, params: &Params) -> (Value, Value) {
    let k = params.outputs();
    match model {
        Model::Softmax => (
            Value::from(
                params
                    .weights()
                    .chunks(k)
                    .map(|row| Value::from(row.to_vec()))
                    .collect::<Vec<_>>(),
            ),
            Value::from(params.bias().to_vec()),
        ),
        Model::Linear | Model::Logistic => (
            Value::from(params.weights().to_vec()),
            Value::from(params.bias()[0]),
        ),
    }
}

/// Writes a parameter file ([`crate::output::write`]: atomically for a regular file).
pub fn write(path: impl AsRef<Path>, objective: &Objective, params: &Params) -> Result<()> {
    let path = path.as_ref();
    let text = serde_json::to_string_pretty(&to_json(objective, params)).expect("JSON of numbers");
    crate::output::write(path, format!("{text}\n").as_bytes())
}

/// Reads a parameter file for `model` on `features` features. `classes` is k when the
/// caller knows it (softmax); else the file's own k is taken.
pub fn read(
    path: impl AsRef<Path>,
    model: Model,
    features: usize,
    classes: Option<usize>,
) -> Result<Params> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse(&text, path, model, features, classes)
}

pub(crate) fn parse(
    text: &str,
    path: &Path,
    model: Model,
    features: usize,
    classes: Option<usize>,
) -> Result<Params> {
    let fail = |message: String| Error::ParamsFile {
        path: path.into(),
        message,
    };
    let file: ParamsFile = serde_json::from_str(text).map_err(|e| json_error(path, &e))?;
    if let Some(found) = file.model
        && found != model
    {
        return Err(fail(format!(
            "the file holds a {found} model, but the command fits {model}"
        )));
    }
    let numbers = |value: &Value, what: &str| -> Result<Vec<f64>> {
        let array = value
            .as_array()
            .ok_or_else(|| fail(format!("{what} must be an array of numbers, found {value}")))?;
        array
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_f64() {
                Some(x) if x.is_finite() => Ok(x),
                _ => Err(fail(format!(
                    "{what}[{i}] must be a finite number, found {v}"
                ))),
            })
            .collect()
    };
    match model {
        Model::Linear | Model::Logistic => {
            let weights = numbers(&file.weights, "weights")?;
            if weights.len() != features {
                return Err(fail(format!(
                    "weights has {}, but the data has {}",
                    crate::error::count(weights.len(), "number"),
                    crate::error::count(features, "feature")
                )));
            }
            let bias = match &file.bias {
                Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                Value::Array(a) if a.len() == 1 => a[0].as_f64().unwrap_or(f64::NAN),
                other => return Err(fail(format!("bias must be one number, found {other}"))),
            };
            if !bias.is_finite() {
                return Err(fail("bias must be a finite number".into()));
            }
            Ok(Params::new(features, 1, weights, vec![bias])?)
        }
        Model::Softmax => {
            let rows = file
                .weights
                .as_array()
                .ok_or_else(|| fail("weights must be d rows of k numbers (W is d×k)".into()))?;
            if rows.len() != features {
                return Err(fail(format!(
                    "weights has {}, but the data has {}",
                    crate::error::count(rows.len(), "row"),
                    crate::error::count(features, "feature")
                )));
            }
            let bias = numbers(&file.bias, "bias")?;
            let k = classes.unwrap_or(bias.len());
            if bias.len() != k {
                return Err(fail(format!(
                    "bias has {} numbers, but there are {k} classes",
                    bias.len()
                )));
            }
            let mut weights = Vec::with_capacity(features * k);
            for (j, row) in rows.iter().enumerate() {
                let row = numbers(row, &format!("weights[{j}]"))?;
                if row.len() != k {
                    return Err(fail(format!(
                        "weights[{j}] has {} numbers, but there are {k} classes",
                        row.len()
                    )));
                }
                weights.extend(row);
            }
            Ok(Params::new(features, k, weights, bias)?)
        }
    }
}

/// A JSON syntax error in `path`, leading with its line and column.
pub(crate) fn json_error(path: &Path, e: &serde_json::Error) -> Error {
    Error::ParamsFile {
        path: path.into(),
        message: format!(
            "line {}, column {}: {}",
            e.line(),
            e.column(),
            strip_position(&e.to_string())
        ),
    }
}

/// serde_json appends " at line L column C"; the message already leads with them.
fn strip_position(message: &str) -> &str {
    message.rsplit_once(" at line ").map_or(message, |(m, _)| m)
}

/// k of a softmax parameter file: the length of its bias. For choosing k before the data
/// labels are read.
pub fn softmax_classes(path: impl AsRef<Path>) -> Result<Option<usize>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| json_error(path, &e))?;
    Ok(value.get("bias").and_then(Value::as_array).map(Vec::len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str, model: Model, d: usize) -> Result<Params> {
        parse(text, Path::new("m.json"), model, d, None)
    }

    #[test]
    fn round_trips_both_shapes() {
        let lin = Params::new(2, 1, vec![0.5, -1.0], vec![2.0]).unwrap();
        let text = to_json(&Objective::linear(), &lin).to_string();
        assert_eq!(p(&text, Model::Linear, 2).unwrap(), lin);
        let soft = Params::new(2, 3, vec![1., 2., 3., 4., 5., 6.], vec![0.1, 0.2, 0.3]).unwrap();
        let text = to_json(&Objective::softmax(3).unwrap(), &soft).to_string();
        assert!(text.contains("[[1.0,2.0,3.0],[4.0,5.0,6.0]]"), "{text}");
        assert_eq!(p(&text, Model::Softmax, 2).unwrap(), soft);
    }

    #[test]
    fn errors_name_the_problem() {
        let e = p(
            "{\"weights\": [1, 2], \"bias\": 0, \"extra\": 1}",
            Model::Linear,
            3,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "m.json: weights has 2 numbers, but the data has 3 features"
        );
        let e = p("{\"weights\": [1,\n 2", Model::Linear, 2).unwrap_err();
        assert!(
            e.to_string().starts_with("m.json: line 2, column 2: EOF"),
            "{e}"
        );
        let e = p(
            "{\"model\": \"softmax\", \"weights\": [], \"bias\": []}",
            Model::Linear,
            0,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("holds a softmax model, but the command fits linear")
        );
    }
}

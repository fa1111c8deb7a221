//! Parameter files: `{"model", "loss_fn", "weights", "bias"}` in JSON.
//!
//! Linear and logistic: `weights` is d numbers and `bias` one number. Softmax: `weights`
//! is d rows of k numbers (W is d×k) and `bias` k numbers. Unknown fields are ignored.
//!
//! When most of W's rows are zero (an L1 fit to wide sparse rows, say) and there are at
//! least [`SPARSE_FROM`] of them, `weights` is written in sparse form instead:
//! `{"features": d, "rows": [j, …], "values": [W's row j, …]}` (each value a number, or k
//! numbers for softmax), the rows listed rising; every other row is zero. Both forms are
//! read.

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

/// The fewest features for which a mostly-zero W is written in sparse form.
pub const SPARSE_FROM: usize = 256;

/// `weights` and `bias` as the file spells them for `model`.
pub fn json_parts(model: Model, params: &Params) -> (Value, Value) {
    let k = params.outputs();
    let d = params.features();
    let row = |j: usize| -> Value {
        let row = &params.weights()[j * k..(j + 1) * k];
        match model {
            Model::Softmax => Value::from(row.to_vec()),
            Model::Linear | Model::Logistic => Value::from(row[0]),
        }
    };
    let nonzero: Vec<usize> = (0..d)
        .filter(|&j| {
            params.weights()[j * k..(j + 1) * k]
                .iter()
                .any(|&w| w != 0.0)
        })
        .collect();
    if d >= SPARSE_FROM && nonzero.len() * 2 < d {
        let values: Vec<Value> = nonzero.iter().map(|&j| row(j)).collect();
        let weights = serde_json::json!({"features": d, "rows": nonzero, "values": values});
        let bias = match model {
            Model::Softmax => Value::from(params.bias().to_vec()),
            Model::Linear | Model::Logistic => Value::from(params.bias()[0]),
        };
        return (weights, bias);
    }
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
    let mut file: ParamsFile = serde_json::from_str(text).map_err(|e| json_error(path, &e))?;
    if file.weights.is_object() {
        let k = classes.or(file.bias.as_array().map(Vec::len)).unwrap_or(1);
        file.weights = dense_weights(&file.weights, model, features, k).map_err(fail)?;
    }
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

/// The number of features a file's `weights` holds, in either form (0 if neither).
pub(crate) fn features_of(weights: &Value) -> usize {
    match weights {
        Value::Array(rows) => rows.len(),
        Value::Object(sparse) => sparse
            .get("features")
            .and_then(Value::as_u64)
            .map_or(0, |d| d as usize),
        _ => 0,
    }
}

/// Sparse-form `weights` made dense (every unlisted row zero), checked against the
/// `features` the caller expects; k zeros fill a softmax row.
fn dense_weights(
    sparse: &Value,
    model: Model,
    features: usize,
    k: usize,
) -> std::result::Result<Value, String> {
    let form = "sparse weights are {\"features\": d, \"rows\": [j, …], \"values\": […]}";
    let d = sparse.get("features").and_then(Value::as_u64);
    let rows = sparse.get("rows").and_then(Value::as_array);
    let values = sparse.get("values").and_then(Value::as_array);
    let (Some(d), Some(rows), Some(values)) = (d, rows, values) else {
        return Err(format!("{form}; found {sparse}"));
    };
    if d != features as u64 {
        return Err(format!(
            "weights has {}, but the data has {}",
            crate::error::count(d as usize, "row"),
            crate::error::count(features, "feature")
        ));
    }
    if rows.len() != values.len() {
        return Err(format!(
            "sparse weights list {} rows but {} values",
            rows.len(),
            values.len()
        ));
    }
    let zero = match model {
        Model::Softmax => Value::from(vec![0.0; k]),
        Model::Linear | Model::Logistic => Value::from(0.0),
    };
    let mut dense = vec![zero; features];
    let mut last = None;
    for (i, (j, value)) in rows.iter().zip(values).enumerate() {
        let j = j
            .as_u64()
            .filter(|&j| j < d && last.is_none_or(|l| j > l))
            .ok_or_else(|| {
                format!("weights.rows[{i}] must be a row below {d}, after the one before: {j}")
            })?;
        last = Some(j);
        dense[j as usize] = value.clone();
    }
    Ok(Value::from(dense))
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
    fn mostly_zero_weights_are_written_sparse_and_read_back() {
        let d = SPARSE_FROM;
        let mut w = vec![0.0; d];
        (w[3], w[200]) = (1.5, -2.0);
        let lin = Params::new(d, 1, w, vec![0.25]).unwrap();
        let text = to_json(&Objective::linear(), &lin).to_string();
        assert!(
            text.contains(r#""weights":{"features":256,"rows":[3,200],"values":[1.5,-2.0]}"#),
            "{text}"
        );
        assert_eq!(p(&text, Model::Linear, d).unwrap(), lin);
        let mut w = vec![0.0; d * 2];
        (w[10], w[11]) = (1.0, -1.0);
        let soft = Params::new(d, 2, w, vec![0.5, -0.5]).unwrap();
        let text = to_json(&Objective::softmax(2).unwrap(), &soft).to_string();
        assert!(
            text.contains(r#""rows":[5],"values":[[1.0,-1.0]]"#),
            "{text}"
        );
        assert_eq!(p(&text, Model::Softmax, d).unwrap(), soft);
        // Half non-zero: dense, as below SPARSE_FROM features.
        let half = Params::new(4, 1, vec![0.0, 0.0, 1.0, 1.0], vec![0.0]).unwrap();
        let text = to_json(&Objective::linear(), &half).to_string();
        assert!(text.contains(r#""weights":[0.0,0.0,1.0,1.0]"#), "{text}");
        let e = p(
            r#"{"weights": {"features": 4, "rows": [2, 1], "values": [1, 2]}, "bias": 0}"#,
            Model::Linear,
            4,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("weights.rows[1] must be a row below 4"),
            "{e}"
        );
        let e = p(
            r#"{"weights": {"features": 5, "rows": [], "values": []}, "bias": 0}"#,
            Model::Linear,
            4,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("weights has 5 rows, but the data has 4"),
            "{e}"
        );
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

//! Datasets: a row-major f32 matrix X (n×d) and labels y (n), from memory or a CSV file.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::{Model, Objective};

/// Rows of features X (row-major, n×d) and their labels y.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    rows: usize,
    features: usize,
    x: Vec<f32>,
    y: Vec<f32>,
    /// Per-row sample weights (finite, ≥ 0); `None`: every row weighs 1.
    weights: Option<Vec<f32>>,
    feature_names: Vec<String>,
    origin: Origin,
}

/// Where the rows came from, so that an error about row i can name its file, line and column.
#[derive(Clone, Debug, PartialEq)]
enum Origin {
    Memory,
    Csv {
        path: PathBuf,
        target_name: String,
        /// 1-based column of the target in the file.
        target_column: usize,
    },
}

impl Dataset {
    /// From row-major X (`x.len() == rows × features`) and y (`rows` labels).
    /// Every value must be finite.
    pub fn new(x: Vec<f32>, y: Vec<f32>, features: usize) -> Result<Self> {
        if features == 0 {
            return Err(Error::option(
                "features",
                0,
                "a dataset needs at least one feature",
            ));
        }
        if y.is_empty() {
            return Err(Error::Shape {
                what: "dataset".into(),
                expected: "at least one row".into(),
                found: "0 labels".into(),
            });
        }
        if x.len() != y.len() * features {
            return Err(Error::Shape {
                what: "X".into(),
                expected: format!(
                    "{} values ({} rows × {features} features)",
                    y.len() * features,
                    y.len()
                ),
                found: format!("{} values", x.len()),
            });
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::Shape {
                what: format!("X[{}, {}]", i / features, i % features),
                expected: "a finite number".into(),
                found: x[i].to_string(),
            });
        }
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return Err(Error::Shape {
                what: format!("y[{i}]"),
                expected: "a finite number".into(),
                found: y[i].to_string(),
            });
        }
        let rows = y.len();
        Ok(Dataset {
            rows,
            features,
            x,
            y,
            weights: None,
            feature_names: (0..features).map(|j| format!("x{j}")).collect(),
            origin: Origin::Memory,
        })
    }

    /// The same rows with per-row sample weights: the loss becomes the weighted mean
    /// Σ wᵢ ℓᵢ / Σ wᵢ. Weights must be finite and ≥ 0, one per row.
    pub fn with_weights(mut self, weights: Vec<f32>) -> Result<Self> {
        if weights.len() != self.rows {
            return Err(Error::Shape {
                what: "sample weights".into(),
                expected: format!("{} (one per row)", self.rows),
                found: weights.len().to_string(),
            });
        }
        if let Some(i) = weights.iter().position(|w| !(w.is_finite() && *w >= 0.0)) {
            return Err(Error::Shape {
                what: format!("sample weight {i}"),
                expected: "a finite number ≥ 0".into(),
                found: weights[i].to_string(),
            });
        }
        self.weights = Some(weights);
        Ok(self)
    }

    /// Per-row sample weights, if any.
    pub fn weights(&self) -> Option<&[f32]> {
        self.weights.as_deref()
    }

    /// Like [`Dataset::new`], copying from slices.
    pub fn from_slices(x: &[f32], y: &[f32], features: usize) -> Result<Self> {
        Self::new(x.to_vec(), y.to_vec(), features)
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
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        read_csv_from(
            BufReader::with_capacity(1 << 20, file),
            path,
            target,
            weights,
        )
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn features(&self) -> usize {
        self.features
    }

    /// X, row-major n×d.
    pub fn x(&self) -> &[f32] {
        &self.x
    }

    /// y, n labels.
    pub fn y(&self) -> &[f32] {
        &self.y
    }

    /// Row i of X.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.x[i * self.features..(i + 1) * self.features]
    }

    /// Column names from the file header, or x0, x1, … for data built in memory.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Where label i lives, for messages: `data.csv, line 7, column 3 (label)` or `y[6]`.
    pub fn label_location(&self, row: usize) -> String {
        match &self.origin {
            Origin::Memory => format!("y[{row}]"),
            Origin::Csv {
                path,
                target_name,
                target_column,
            } => format!(
                "{}, line {}, column {target_column} ({target_name})",
                path.display(),
                row_line(path, row)
            ),
        }
    }

    /// The number of classes the labels imply: max label + 1. Labels must be
    /// non-negative integers.
    pub fn class_count(&self) -> Result<usize> {
        let mut max = 0usize;
        for (i, &y) in self.y.iter().enumerate() {
            if y < 0.0 || y.fract() != 0.0 {
                return Err(Error::BadLabel {
                    location: self.label_location(i),
                    objective: "softmax regression".into(),
                    expected: "that are integers 0, 1, …, k−1",
                    value: y,
                });
            }
            max = max.max(y as usize);
        }
        Ok(max + 1)
    }

    /// Checks every label against what the objective accepts.
    pub fn check_labels(&self, objective: &Objective) -> Result<()> {
        for (i, &y) in self.y.iter().enumerate() {
            if let Err(expected) = objective.check_label(y) {
                return Err(Error::BadLabel {
                    location: self.label_location(i),
                    objective: objective.to_string(),
                    expected,
                    value: y,
                });
            }
        }
        Ok(())
    }

    /// The objective for `model` on these labels: for softmax, k is `classes` when given,
    /// else max label + 1. Labels are checked.
    pub fn objective(
        &self,
        model: Model,
        loss: Option<crate::model::Loss>,
        classes: Option<usize>,
    ) -> Result<Objective> {
        let k = match (model, classes) {
            (Model::Softmax, Some(k)) => k,
            (Model::Softmax, None) => self.class_count()?,
            _ => 1,
        };
        let objective = Objective::new(model, loss, k)?;
        self.check_labels(&objective)?;
        Ok(objective)
    }
}

/// The 1-based line of the record the csv crate places at byte `offset`. The crate's own
/// line numbers skip blank lines, and its offsets may point at the line break before the
/// record, so: count the newlines before the record's first byte that is not a line break.
/// Used for error messages only, so it reads the file again.
fn line_at(path: &Path, offset: u64) -> u64 {
    let Ok(file) = File::open(path) else { return 0 };
    let mut newlines = 1;
    for (at, byte) in BufReader::new(file).bytes().enumerate() {
        let Ok(byte) = byte else { return 0 };
        if at as u64 >= offset && byte != b'\r' && byte != b'\n' {
            break;
        }
        newlines += u64::from(byte == b'\n');
    }
    newlines
}

/// The line where data row `row` starts (row 0 follows the header).
fn row_line(path: &Path, row: usize) -> u64 {
    let Ok(file) = File::open(path) else { return 0 };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(BufReader::new(file));
    let mut record = csv::ByteRecord::new();
    for _ in 0..=row {
        if !matches!(csv.read_byte_record(&mut record), Ok(true)) {
            return 0;
        }
    }
    record.position().map_or(0, |p| line_at(path, p.byte()))
}

fn csv_error(path: &Path, err: csv::Error) -> Error {
    let line = err.position().map_or(0, |p| line_at(path, p.byte()));
    match err.into_kind() {
        csv::ErrorKind::Io(e) => Error::io(path, e),
        csv::ErrorKind::Utf8 { err, .. } => Error::Csv {
            path: path.into(),
            line,
            message: format!("not valid UTF-8 ({err})"),
        },
        kind => Error::Csv {
            path: path.into(),
            line,
            message: format!("{kind:?}"),
        },
    }
}

fn parse_cell(text: &str) -> Result<f32, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty cell");
    }
    match text.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err("NaN or infinite value"),
        Err(_) => Err("not a number"),
    }
}

fn read_csv_from(
    reader: impl Read,
    path: &Path,
    target: &str,
    weight_column: Option<&str>,
) -> Result<Dataset> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(reader);
    let mut record = csv::StringRecord::new();
    if !csv
        .read_record(&mut record)
        .map_err(|e| csv_error(path, e))?
    {
        return Err(Error::EmptyFile { path: path.into() });
    }
    let header: Vec<String> = record
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if i == 0 {
                h.trim_start_matches('\u{feff}')
            } else {
                h
            };
            h.trim().to_string()
        })
        .collect();
    if header.len() == 1 && header[0].is_empty() {
        return Err(Error::EmptyFile { path: path.into() });
    }
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| Error::MissingColumn {
                path: path.into(),
                name: name.to_string(),
                available: header.clone(),
            })
    };
    let target_index = column(target)?;
    let weight_index = weight_column.map(column).transpose()?;
    if weight_index == Some(target_index) {
        return Err(Error::option(
            "weight column",
            target,
            "is the target column",
        ));
    }
    let features = header.len() - 1 - usize::from(weight_index.is_some());
    if features == 0 {
        return Err(Error::NoFeatures {
            path: path.into(),
            name: target.to_string(),
        });
    }

    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut weights = Vec::new();
    let line =
        |record: &csv::StringRecord| record.position().map_or(0, |p| line_at(path, p.byte()));
    while csv
        .read_record(&mut record)
        .map_err(|e| csv_error(path, e))?
    {
        if record.len() != header.len() {
            // A trailing blank line reads as one empty field: skip it rather than complain.
            if record.len() == 1 && record[0].trim().is_empty() {
                continue;
            }
            return Err(Error::RaggedRow {
                path: path.into(),
                line: line(&record),
                expected: header.len(),
                found: record.len(),
            });
        }
        for (column, cell) in record.iter().enumerate() {
            let value = parse_cell(cell).map_err(|problem| Error::BadCell {
                path: path.into(),
                line: line(&record),
                column: column + 1,
                name: header[column].clone(),
                value: cell.to_string(),
                problem,
            })?;
            if column == target_index {
                y.push(value);
            } else if Some(column) == weight_index {
                if value < 0.0 {
                    return Err(Error::BadCell {
                        path: path.into(),
                        line: line(&record),
                        column: column + 1,
                        name: header[column].clone(),
                        value: cell.to_string(),
                        problem: "negative sample weight",
                    });
                }
                weights.push(value);
            } else {
                x.push(value);
            }
        }
    }
    if y.is_empty() {
        return Err(Error::HeaderOnly { path: path.into() });
    }
    let rows = y.len();
    let feature_names = header
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != target_index && Some(i) != weight_index)
        .map(|(_, h)| h.clone())
        .collect();
    Ok(Dataset {
        rows,
        features,
        x,
        y,
        weights: weight_index.map(|_| weights),
        feature_names,
        origin: Origin::Csv {
            path: path.into(),
            target_name: target.to_string(),
            target_column: target_index + 1,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, target: &str) -> Result<Dataset, String> {
        let dir = std::env::temp_dir().join(format!("downhill-data-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("t{}.csv", text.len()));
        std::fs::write(&path, text).unwrap();
        let result = Dataset::read_csv(&path, target);
        std::fs::remove_file(&path).unwrap();
        result.map_err(|e| e.to_string().replace(&path.display().to_string(), "t.csv"))
    }

    #[test]
    fn reads_features_in_file_order_without_the_target() {
        let d = read("a,y,b\n1,0,2\n3,1,4\n", "y").unwrap();
        assert_eq!((d.rows(), d.features()), (2, 2));
        assert_eq!(d.x(), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(d.y(), &[0.0, 1.0]);
        assert_eq!(d.feature_names(), &["a", "b"]);
    }

    #[test]
    fn label_locations_follow_blank_lines() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("downhill-lines-{}.csv", std::process::id()));
        std::fs::write(&path, "a,y\r\n1,0\r\n\r\n2,5\r\n3,\"x\ny\"\n4,4\n").unwrap();
        let d = Dataset::read_csv(&path, "a");
        assert!(d.is_err(), "row 3 has a text label");
        std::fs::write(&path, "a,y\r\n1,0\r\n\r\n2,5\r\n3,\"7\n\"\n4,4\n").unwrap();
        let d = Dataset::read_csv(&path, "y").unwrap();
        let at = |row| {
            d.label_location(row)
                .replace(&path.display().to_string(), "t.csv")
        };
        assert_eq!(at(0), "t.csv, line 2, column 2 (y)");
        assert_eq!(at(1), "t.csv, line 4, column 2 (y)");
        assert_eq!(at(2), "t.csv, line 5, column 2 (y)");
        assert_eq!(at(3), "t.csv, line 7, column 2 (y)");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn bad_cells_name_line_and_column() {
        let err = read("a,y\n1,0\n2,x\n", "y").unwrap_err();
        assert_eq!(err, "t.csv, line 3, column 2 (y): not a number: \"x\"");
        let err = read("a,y\n1,0\nNaN,1\n", "y").unwrap_err();
        assert!(
            err.contains("line 3, column 1 (a): NaN or infinite value"),
            "{err}"
        );
    }
}

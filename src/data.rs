//! Datasets: a row-major f32 matrix X (n×d) and labels y (n), from memory or a file
//! (CSV, NumPy .npy, Parquet: see [`crate::input`]).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::floats::Floats;
use crate::model::{Model, Objective};

/// Rows of features X (row-major, n×d) and their labels y.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    rows: usize,
    features: usize,
    x: Floats,
    y: Vec<f32>,
    /// Per-row sample weights (finite, ≥ 0); `None`: every row weighs 1.
    weights: Option<Vec<f32>>,
    feature_names: Vec<String>,
    origin: Origin,
}

/// Where the rows came from, so that an error about row i can name its file, line and column.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Origin {
    Memory,
    Csv {
        path: PathBuf,
        target_name: String,
        /// 1-based column of the target in the file.
        target_column: usize,
        /// The reader's way to find row i's line (quoted cells may span lines).
        line_of: LineOf,
    },
    /// A file of columns (Parquet) or arrays (.npy): rows are counted from 0.
    Table {
        path: PathBuf,
        target: String,
    },
    /// Labels of their own file (a 1-D .npy): rows are counted from 0.
    LabelFile {
        path: PathBuf,
    },
}

impl Origin {
    /// Where label `row` lives, for messages.
    pub(crate) fn locate(&self, row: usize) -> String {
        match self {
            Origin::Memory => format!("y[{row}]"),
            Origin::Csv {
                path,
                target_name,
                target_column,
                line_of,
            } => format!(
                "{}, line {}, column {target_column} ({target_name})",
                path.display(),
                (line_of.0)(path, row)
            ),
            Origin::Table { path, target } => format!("{}, row {row} ({target})", path.display()),
            Origin::LabelFile { path } => format!("{}, row {row} (label)", path.display()),
        }
    }
}

/// The line in a text file where row i starts, as the file's reader finds it (0 when it
/// cannot tell): the reader supplies it, so that datasets need not know file formats.
#[derive(Clone, Copy)]
pub(crate) struct LineOf(pub fn(&Path, usize) -> u64);

impl PartialEq for LineOf {
    /// Two datasets from the same file are equal whichever reader locates their lines.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for LineOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LineOf")
    }
}

impl Dataset {
    /// From row-major X (`x.len() == rows × features`) and y (`rows` labels).
    /// Every value must be finite.
    pub fn new(x: Vec<f32>, y: Vec<f32>, features: usize) -> Result<Self> {
        Self::from_floats(Floats::from_vec(x), y, features)
    }

    /// [`Dataset::new`] from X already in line-aligned storage (no values move).
    pub fn from_floats(x: Floats, y: Vec<f32>, features: usize) -> Result<Self> {
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
                    "{} values ({} × {})",
                    y.len() * features,
                    crate::error::count(y.len(), "row"),
                    crate::error::count(features, "feature")
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
        check_weights(&weights, self.rows)?;
        self.weights = Some(weights);
        Ok(self)
    }

    /// Per-row sample weights, if any.
    pub fn weights(&self) -> Option<&[f32]> {
        self.weights.as_deref()
    }

    /// Like [`Dataset::new`], copying from slices.
    pub fn from_slices(x: &[f32], y: &[f32], features: usize) -> Result<Self> {
        Self::from_floats(Floats::copy_of(x)?, y.to_vec(), features)
    }

    /// Assembles a dataset a reader has checked: finite values, consistent lengths.
    pub(crate) fn assemble(
        x: impl Into<Floats>,
        y: Vec<f32>,
        features: usize,
        weights: Option<Vec<f32>>,
        feature_names: Vec<String>,
        origin: Origin,
    ) -> Self {
        let x = x.into();
        debug_assert_eq!(x.len(), y.len() * features);
        Dataset {
            rows: y.len(),
            features,
            x,
            y,
            weights,
            feature_names,
            origin,
        }
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

    /// Whether X is mapped from its file (a float32 `.npy`) rather than held in memory.
    pub fn x_is_mapped(&self) -> bool {
        self.x.is_mapped()
    }

    /// Whether X is read in place from another owner's floats ([`Floats::shared`]).
    pub fn x_is_shared(&self) -> bool {
        self.x.is_shared()
    }

    /// y, n labels.
    pub fn y(&self) -> &[f32] {
        &self.y
    }

    /// Rows `rows` as a dataset of their own (weights and column names kept).
    pub fn slice(&self, rows: std::ops::Range<usize>) -> Result<Dataset> {
        let d = self.features;
        Ok(Dataset {
            rows: rows.len(),
            features: d,
            x: Floats::copy_of(&self.x[rows.start * d..rows.end * d])?,
            y: self.y[rows.clone()].to_vec(),
            weights: self.weights.as_ref().map(|w| w[rows.clone()].to_vec()),
            feature_names: self.feature_names.clone(),
            origin: self.origin.clone(),
        })
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
        self.origin.locate(row)
    }

    /// The column the labels came from, when a file named it (`None` for rows built in
    /// memory and for labels of their own file).
    pub fn target_name(&self) -> Option<&str> {
        match &self.origin {
            Origin::Csv { target_name, .. } => Some(target_name),
            Origin::Table { target, .. } => Some(target),
            Origin::Memory | Origin::LabelFile { .. } => None,
        }
    }

    /// The number of classes the labels imply: max label + 1. Labels must be
    /// non-negative integers, and every class 0 … max must have a row: a stray label
    /// (1 000 000 among 0, 1, 2) would otherwise make a model of a million classes.
    pub fn class_count(&self) -> Result<usize> {
        class_count(&self.y, &|i| self.label_location(i))
    }

    /// Checks every label against what the objective accepts.
    pub fn check_labels(&self, objective: &Objective) -> Result<()> {
        check_labels(&self.y, objective, &|i| self.label_location(i))
    }

    /// The objective for `model` on these labels: for softmax, k is `classes` when given,
    /// else max label + 1. Labels are checked.
    pub fn objective(
        &self,
        model: Model,
        loss: Option<crate::model::Loss>,
        classes: Option<usize>,
    ) -> Result<Objective> {
        objective_of(&self.y, model, loss, classes, &|i| self.label_location(i))
    }
}

/// Refuses sample weights that are not one finite number ≥ 0 per row.
pub(crate) fn check_weights(weights: &[f32], rows: usize) -> Result<()> {
    if weights.len() != rows {
        return Err(Error::Shape {
            what: "sample weights".into(),
            expected: format!("{rows} (one per row)"),
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
    Ok(())
}

/// Where label i lives, for messages.
pub(crate) type Locate<'a> = dyn Fn(usize) -> String + 'a;

/// [`Dataset::class_count`] of labels `y`, whose label i is at `locate(i)`.
pub(crate) fn class_count(y: &[f32], locate: &Locate) -> Result<usize> {
    let mut max = 0usize;
    for (i, &v) in y.iter().enumerate() {
        if v < 0.0 || v.fract() != 0.0 {
            return Err(Error::BadLabel {
                location: locate(i),
                objective: "softmax regression".into(),
                expected: "that are integers 0, 1, …, k−1",
                value: v,
            });
        }
        max = max.max(v as usize);
    }
    let k = max + 1;
    // More classes than rows leave some empty; count them without a table of k.
    let empty = if k > y.len() {
        let mut seen: Vec<usize> = y.iter().map(|&v| v as usize).collect();
        seen.sort_unstable();
        seen.dedup();
        k - seen.len()
    } else {
        let mut seen = vec![false; k];
        for &v in y {
            seen[v as usize] = true;
        }
        seen.iter().filter(|s| !**s).count()
    };
    if empty > 0 {
        return Err(Error::EmptyClasses {
            location: locate(y.iter().position(|&v| v as usize == max).unwrap_or(0)),
            largest: max,
            empty,
        });
    }
    Ok(k)
}

/// [`Dataset::check_labels`] of labels `y`.
pub(crate) fn check_labels(y: &[f32], objective: &Objective, locate: &Locate) -> Result<()> {
    for (i, &v) in y.iter().enumerate() {
        if let Err(expected) = objective.check_label(v) {
            return Err(Error::BadLabel {
                location: locate(i),
                objective: objective.to_string(),
                expected,
                value: v,
            });
        }
    }
    Ok(())
}

/// [`Dataset::objective`] of labels `y`.
pub(crate) fn objective_of(
    y: &[f32],
    model: Model,
    loss: Option<crate::model::Loss>,
    classes: Option<usize>,
    locate: &Locate,
) -> Result<Objective> {
    let k = match (model, classes) {
        (Model::Softmax, Some(k)) => k,
        (Model::Softmax, None) => class_count(y, locate)?,
        _ => 1,
    };
    let objective = Objective::new(model, loss, k)?;
    check_labels(y, &objective, locate)?;
    Ok(objective)
}

#[cfg(feature = "ndarray")]
mod arrays {
    use ndarray::{ArrayView1, ArrayView2};

    use super::Dataset;
    use crate::error::Result;
    use crate::floats::Floats;

    /// `len` values into line-aligned storage.
    fn floats(values: impl Iterator<Item = f32>, len: usize) -> Result<Floats> {
        let mut x = Floats::zeroed(len, || format!("a copy of X ({len} floats)"))?;
        for (slot, v) in x.iter_mut().zip(values) {
            *slot = v;
        }
        Ok(x)
    }

    impl Dataset {
        /// From X (rows × features, any memory order) and y; values are copied in row
        /// order and must be finite.
        pub fn from_arrays(x: ArrayView2<'_, f32>, y: ArrayView1<'_, f32>) -> Result<Self> {
            Self::from_floats(floats(x.iter().copied(), x.len())?, y.to_vec(), x.ncols())
        }

        /// [`Dataset::from_arrays`] from f64 arrays, rounded to f32.
        pub fn from_arrays_f64(x: ArrayView2<'_, f64>, y: ArrayView1<'_, f64>) -> Result<Self> {
            Self::from_floats(
                floats(x.iter().map(|&v| v as f32), x.len())?,
                y.iter().map(|&v| v as f32).collect(),
                x.ncols(),
            )
        }

        /// X as a rows × features view.
        pub fn x_array(&self) -> ArrayView2<'_, f32> {
            ArrayView2::from_shape((self.rows(), self.features()), self.x())
                .expect("x holds rows × features values")
        }

        /// y as a view.
        pub fn y_array(&self) -> ArrayView1<'_, f32> {
            ArrayView1::from(self.y())
        }
    }
}

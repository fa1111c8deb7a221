//! Which columns a dataset takes from a file, resolved against the file's header, and the
//! cell checks every reader shares.

use std::path::{Path, PathBuf};

use crate::data::Origin;
use crate::error::{Error, Result};

/// Where the labels are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A named column (CSV, Parquet).
    Column(String),
    /// A column of a 2-D `.npy` array, from 0.
    Index(usize),
    /// A separate 1-D `.npy` file.
    File(PathBuf),
    /// No labels (prediction): y is all zeros.
    None,
}

/// Which columns a dataset takes from a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Columns {
    pub target: Target,
    /// Feature columns by name, in this order. Default: every column that is neither the
    /// target nor the weights, in file order.
    pub features: Option<Vec<String>>,
    /// A column of per-row sample weights.
    pub weights: Option<String>,
}

impl Columns {
    /// Every other column a feature, labels in `target`.
    pub fn target(target: &str) -> Self {
        Columns {
            target: Target::Column(target.to_string()),
            features: None,
            weights: None,
        }
    }
}

/// The positions of the target, weight and feature columns among `header`.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub target: Option<usize>,
    pub weights: Option<usize>,
    pub features: Vec<usize>,
}

impl Layout {
    /// Resolves `spec` against the file's column names.
    pub fn new(path: &Path, header: &[String], spec: &Columns) -> Result<Self> {
        for (second, name) in header.iter().enumerate() {
            if let Some(first) = header[..second].iter().position(|h| h == name) {
                return Err(Error::DuplicateColumn {
                    path: path.into(),
                    name: name.clone(),
                    first: first + 1,
                    second: second + 1,
                });
            }
        }
        let column = |name: &str| column_index(path, header, name);
        let target = match &spec.target {
            Target::Column(name) => Some(column(name)?),
            Target::Index(i) if *i < header.len() => Some(*i),
            Target::Index(i) => {
                return Err(Error::option(
                    "target index",
                    i,
                    format!("{} has {} columns", path.display(), header.len()),
                ));
            }
            Target::File(_) | Target::None => None,
        };
        let weights = spec.weights.as_deref().map(column).transpose()?;
        if weights.is_some() && weights == target {
            return Err(Error::option(
                "weight column",
                &header[target.unwrap_or(0)],
                "is the target column",
            ));
        }
        let features: Vec<usize> = match &spec.features {
            Some(names) => names.iter().map(|n| column(n)).collect::<Result<_>>()?,
            None => (0..header.len())
                .filter(|&i| Some(i) != target && Some(i) != weights)
                .collect(),
        };
        if let Some(&clash) = features
            .iter()
            .find(|&&i| Some(i) == target || Some(i) == weights)
        {
            return Err(Error::option(
                "features",
                &header[clash],
                "is also the target or the weight column",
            ));
        }
        if features.is_empty() {
            return Err(Error::NoFeatures {
                path: path.into(),
                name: target.map_or_else(|| "(none)".to_string(), |t| header[t].clone()),
            });
        }
        Ok(Layout {
            target,
            weights,
            features,
        })
    }

    /// Where a row's label came from, for error messages: this file's target column.
    pub fn origin(&self, path: &Path, header: &[String]) -> Origin {
        match self.target {
            Some(t) => Origin::Table {
                path: path.into(),
                target: header[t].clone(),
            },
            None => Origin::Memory,
        }
    }

    pub fn names(&self, header: &[String]) -> Vec<String> {
        self.features.iter().map(|&i| header[i].clone()).collect()
    }
}

/// The position of column `name` in `header`, or an error listing the columns there are.
pub(crate) fn column_index(path: &Path, header: &[String], name: &str) -> Result<usize> {
    header
        .iter()
        .position(|h| h == name)
        .ok_or_else(|| Error::MissingColumn {
            path: path.into(),
            name: name.to_string(),
            available: header.to_vec(),
            hint: separator_hint(header),
        })
}

/// A hint for a header that is one field holding another separator: downhill's CSV files
/// are separated by commas.
fn separator_hint(header: &[String]) -> String {
    let [only] = header else {
        return String::new();
    };
    let separator = [(';', "semicolons"), ('\t', "tabs"), ('|', "vertical bars")]
        .into_iter()
        .find(|(c, _)| only.contains(*c));
    match separator {
        Some((_, name)) => format!(
            ". The header is one field holding {name}: the file seems separated by {name}, \
             and downhill reads comma-separated values: convert the separators to commas"
        ),
        None => String::new(),
    }
}

/// The message for a cell that is not a finite number.
pub(crate) fn cell_problem(value: f32) -> Option<&'static str> {
    if value.is_finite() {
        None
    } else {
        Some("NaN or infinite value")
    }
}

/// Every byte of `reader`, for the readers of `impl Read`; errors name it `name`.
pub(crate) fn read_all(mut reader: impl std::io::Read, name: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(name, e))?;
    Ok(bytes)
}

//! Parquet files (plain or Snappy-compressed) through the `parquet` crate: numeric columns
//! (floats, integers, booleans) by name, row by row. Columns that are not numeric, or null
//! cells, are refused with the row and column.

use std::fs::File;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use super::columns::{Columns, Layout, Target, cell_problem};
use crate::data::Dataset;
use crate::error::{Error, Result};

fn fail(path: &Path, message: impl Into<String>) -> Error {
    Error::Format {
        path: path.into(),
        message: message.into(),
    }
}

fn number(field: &Field) -> Option<f32> {
    Some(match *field {
        Field::Float(v) => v,
        Field::Double(v) => v as f32,
        Field::Bool(v) => f32::from(u8::from(v)),
        Field::Byte(v) => f32::from(v),
        Field::Short(v) => f32::from(v),
        Field::Int(v) => v as f32,
        Field::Long(v) => v as f32,
        Field::UByte(v) => f32::from(v),
        Field::UShort(v) => f32::from(v),
        Field::UInt(v) => v as f32,
        Field::ULong(v) => v as f32,
        _ => return None,
    })
}

/// Reads the columns `spec` names.
pub fn read(path: &Path, spec: &Columns) -> Result<Dataset> {
    if let Target::File(_) | Target::Index(_) = spec.target {
        return Err(Error::option(
            "target",
            path.display(),
            "name the label column of a Parquet file",
        ));
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| fail(path, format!("not a readable Parquet file: {e}")))?;
    let header: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let layout = Layout::new(path, &header, spec)?;
    let d = layout.features.len();
    let (mut x, mut y, mut weights) = (Vec::new(), Vec::new(), Vec::new());
    // Sized from the footer's row count before any row is read.
    let rows = usize::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
    crate::memory::reserve(&mut x, rows.saturating_mul(d), || {
        format!(
            "{}: X of its {}",
            path.display(),
            crate::error::count(rows, "row")
        )
    })?;
    for (i, row) in reader.into_iter().enumerate() {
        let row = row.map_err(|e| fail(path, format!("row {i}: {e}")))?;
        let cells: Vec<&Field> = row.get_column_iter().map(|(_, f)| f).collect();
        let value = |c: usize| -> Result<f32> {
            let v = number(cells[c]).ok_or_else(|| {
                fail(
                    path,
                    format!(
                        "row {i}, column {} ({}): not a number: {}",
                        c + 1,
                        header[c],
                        cells[c]
                    ),
                )
            })?;
            if let Some(problem) = cell_problem(v) {
                return Err(fail(
                    path,
                    format!("row {i}, column {} ({}): {problem}: {v}", c + 1, header[c]),
                ));
            }
            Ok(v)
        };
        for &c in &layout.features {
            x.push(value(c)?);
        }
        y.push(match layout.target {
            Some(t) => value(t)?,
            None => 0.0,
        });
        if let Some(w) = layout.weights {
            let v = value(w)?;
            if v < 0.0 {
                return Err(fail(
                    path,
                    format!(
                        "row {i}, column {} ({}): negative sample weight: {v}",
                        w + 1,
                        header[w]
                    ),
                ));
            }
            weights.push(v);
        }
    }
    if y.is_empty() {
        return Err(Error::HeaderOnly { path: path.into() });
    }
    let origin = layout.origin(path, &header);
    let weights = layout.weights.map(|_| weights);
    Ok(Dataset::assemble(
        x,
        y,
        d,
        weights,
        layout.names(&header),
        origin,
    ))
}

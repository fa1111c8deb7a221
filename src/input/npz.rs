//! scipy sparse matrices as `scipy.sparse.save_npz` writes them: a zip archive (deflated
//! or stored) of `.npy` arrays `data` (float32 or float64, narrowed to f32), `indices`
//! and `indptr` (int32 or int64), `shape` and `format` (which must be `csr`). The labels
//! come from their own `.npy` (`--target y.npy`). Each array is decompressed straight
//! into its CSR array, so the peak is the CSR and one megabyte of decoding. Columns listed
//! out of order or twice are put in order and summed, as scipy's `sum_duplicates` does.

use std::io::{BufReader, Read, Seek};
use std::path::{Path, PathBuf};

use super::npy::{self, Array, fail};
use super::zip::{self, Member};
use crate::data::Origin;
use crate::error::Result;
use crate::sparse::SparseDataset;

/// Whether `path`'s extension names a NumPy archive.
pub fn is_npz(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str());
    ext.is_some_and(|e| e.eq_ignore_ascii_case("npz"))
}

/// Reads the CSR matrix in `path` with the labels in `labels` (a `.npy`; `None`: rows to
/// predict, their labels all 0).
pub fn read(path: &Path, labels: Option<&Path>) -> Result<SparseDataset> {
    let file = std::fs::File::open(path).map_err(|e| crate::Error::io(path, e))?;
    let total = file
        .metadata()
        .map_err(|e| crate::Error::io(path, e))?
        .len();
    let mut source = BufReader::with_capacity(1 << 20, file);
    let dataset = read_csr(&mut source, total, path, |rows| match labels {
        Some(labels) => npy::labels(labels, rows),
        None => Ok(vec![0.0; rows]),
    })?;
    Ok(match labels {
        Some(labels) => dataset.with_origin(Origin::LabelFile {
            path: labels.into(),
        }),
        None => dataset,
    })
}

/// Reads a CSR matrix from `.npz` bytes with labels `y`; messages call it `name`.
pub fn read_from(bytes: &[u8], name: impl AsRef<Path>, y: Vec<f32>) -> Result<SparseDataset> {
    let name = name.as_ref();
    let mut source = std::io::Cursor::new(bytes);
    read_csr(&mut source, bytes.len() as u64, name, |rows| {
        if y.len() == rows {
            Ok(y)
        } else {
            Err(fail(
                name,
                format!("{} labels for its {rows} rows", y.len()),
            ))
        }
    })
}

/// The matrix in the archive `source` (`total` bytes), with `labels(rows)` for its rows.
fn read_csr<R: Read + Seek>(
    source: &mut R,
    total: u64,
    path: &Path,
    labels: impl FnOnce(usize) -> Result<Vec<f32>>,
) -> Result<SparseDataset> {
    let members = zip::members(source, total, path)?;
    let mut archive = Archive {
        source,
        total,
        path,
        members,
    };
    let format = archive.with("format", |array, at| array.text(at))?;
    if format != "csr" {
        return Err(fail(
            path,
            format!(
                "holds a sparse matrix in {format} form; save it as CSR \
                 (scipy.sparse.save_npz(path, X.tocsr()))"
            ),
        ));
    }
    let shape = archive.with("shape", |array, at| {
        array.integers(at, |v, _| Ok(u64::try_from(v).unwrap_or(u64::MAX)))
    })?;
    let [rows, features] = shape[..] else {
        return Err(fail(
            path,
            format!("its shape has {} entries, not 2", shape.len()),
        ));
    };
    let rows = usize::try_from(rows).unwrap_or(usize::MAX);
    let y = labels(rows)?;
    let offsets = archive.with("indptr", |array, at| {
        array.integers(at, |v, i| {
            u64::try_from(v).map_err(|_| fail(at, format!("indptr[{i}] is negative: {v}")))
        })
    })?;
    let indices = archive.with("indices", |array, at| {
        array.integers(at, |v, e| {
            u32::try_from(v).map_err(|_| {
                fail(
                    at,
                    format!("indices[{e}] = {v} is not a column index from 0 to 2³² − 1"),
                )
            })
        })
    })?;
    let values = archive.with("data", |array, at| array.values(at))?;
    let values = values.iter().any(|&v| v != 1.0).then_some(values);
    let features = usize::try_from(features).unwrap_or(usize::MAX);
    SparseDataset::from_csr(offsets, indices, values, y, features)
        .map_err(|e| fail(path, e.to_string()))
}

/// An open archive and its members.
struct Archive<'a, R> {
    source: &'a mut R,
    total: u64,
    path: &'a Path,
    members: Vec<Member>,
}

impl<R: Read + Seek> Archive<'_, R> {
    /// `read(array, path)` on member `name.npy`, its path in messages `archive/name.npy`.
    fn with<T>(
        &mut self,
        name: &str,
        read: impl FnOnce(Array<Box<dyn Read + '_>>, &Path) -> Result<T>,
    ) -> Result<T> {
        let file = format!("{name}.npy");
        let Some(member) = self.members.iter().find(|m| m.name == file) else {
            let held: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
            return Err(fail(
                self.path,
                format!(
                    "has no {file}, so it is not a sparse matrix from scipy.sparse.save_npz (it \
                     holds {held:?})"
                ),
            ));
        };
        let at = PathBuf::from(format!("{}/{file}", self.path.display()));
        let reader: Box<dyn Read + '_> =
            Box::new(zip::open(self.source, self.total, member, self.path)?);
        let array = npy::header(reader, member.size, &at)?;
        read(array, &at)
    }
}

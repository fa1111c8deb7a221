//! NumPy `.npy` files: X as a 2-D array of float32 or float64 (integers accepted too), with
//! the labels either a separate 1-D array (`--target y.npy`) or one of X's columns
//! (`--target-index J`). Columns are named x0, x1, …; values are converted to f32 as they
//! are read, a megabyte at a time, so no f64 copy of X is held. A float32 X in C order
//! whose every column is a feature (labels in their own file) is not read at all but
//! mapped (on Linux): the kernel brings rows in as a pass uses them, so X may be larger
//! than host memory.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::columns::{Columns, Layout, Target, cell_problem, read_all};
use crate::data::{Dataset, Origin};
use crate::error::{Error, Result};
use crate::floats::Floats;

/// The element types read: numbers, and fixed-width byte strings (`|S<n>`, as the
/// `format` of a scipy `.npz` is written), which are never read as numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dtype {
    F4,
    F8,
    I4,
    I8,
    U1,
    Text(usize),
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F4 | Dtype::I4 => 4,
            Dtype::F8 | Dtype::I8 => 8,
            Dtype::U1 => 1,
            Dtype::Text(n) => n,
        }
    }

    /// Element `b` as an exact integer: `None` for floats and text.
    fn integer(self, b: &[u8]) -> Option<i64> {
        match self {
            Dtype::I4 => Some(i32::from_le_bytes(b.try_into().expect("4 bytes")).into()),
            Dtype::I8 => Some(i64::from_le_bytes(b.try_into().expect("8 bytes"))),
            Dtype::U1 => Some(b[0].into()),
            Dtype::F4 | Dtype::F8 | Dtype::Text(_) => None,
        }
    }

    fn decode(self, b: &[u8]) -> f32 {
        match self {
            Dtype::F4 => f32::from_le_bytes(b.try_into().expect("4 bytes")),
            Dtype::F8 => f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
            Dtype::I4 => i32::from_le_bytes(b.try_into().expect("4 bytes")) as f32,
            Dtype::I8 => i64::from_le_bytes(b.try_into().expect("8 bytes")) as f32,
            Dtype::U1 => f32::from(b[0]),
            Dtype::Text(_) => f32::NAN,
        }
    }
}

/// An array's header, and its data to read from `data` (at byte `offset` of the file).
pub(super) struct Array<R> {
    pub(super) dtype: Dtype,
    pub(super) shape: Vec<usize>,
    fortran: bool,
    data: R,
    offset: usize,
}

pub(super) fn fail(path: &Path, message: impl Into<String>) -> Error {
    Error::Format {
        path: path.into(),
        message: message.into(),
    }
}

pub(super) fn open(path: &Path) -> Result<Array<BufReader<File>>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    header(BufReader::with_capacity(1 << 20, file), file_len, path)
}

/// Reads the header of an array of `file_len` bytes from `data`, leaving `data` at the
/// first element; sizes are checked against `file_len` before anything is allocated.
pub(super) fn header<R: Read>(mut data: R, file_len: u64, path: &Path) -> Result<Array<R>> {
    let mut magic = [0u8; 8];
    data.read_exact(&mut magic)
        .map_err(|_| fail(path, "not a .npy file (too short)"))?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(fail(path, "not a .npy file (no \\x93NUMPY magic)"));
    }
    let (header_len, prefix) = match magic[6] {
        1 => {
            let mut b = [0u8; 2];
            data.read_exact(&mut b).map_err(|e| Error::io(path, e))?;
            (usize::from(u16::from_le_bytes(b)), 10)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            data.read_exact(&mut b).map_err(|e| Error::io(path, e))?;
            (u32::from_le_bytes(b) as usize, 12)
        }
        v => {
            return Err(fail(
                path,
                format!(".npy format version {v} is not supported"),
            ));
        }
    };
    // Sizes come from the file: check them against its length before allocating.
    let data_len = file_len
        .checked_sub(prefix + header_len as u64)
        .ok_or_else(|| {
            fail(
                path,
                format!("the header claims {header_len} bytes; the file is shorter"),
            )
        })?;
    let mut header = vec![0u8; header_len];
    data.read_exact(&mut header)
        .map_err(|e| Error::io(path, e))?;
    let header = String::from_utf8_lossy(&header);
    let field = |key: &str| -> Result<String> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or_else(|| fail(path, format!("the header has no '{key}': {header}")))?;
        let rest = header[at + key.len() + 2..]
            .trim_start()
            .trim_start_matches(':')
            .trim_start();
        let end = if rest.starts_with('(') {
            rest.find(')').map(|i| i + 1)
        } else {
            rest.find([',', '}'])
        };
        Ok(rest[..end.unwrap_or(rest.len())].trim().to_string())
    };
    let descr = field("descr")?;
    let dtype = match descr.trim_matches(['\'', '"']) {
        "<f4" => Dtype::F4,
        "<f8" => Dtype::F8,
        "<i4" => Dtype::I4,
        "<i8" => Dtype::I8,
        "|u1" | "<u1" | "|b1" => Dtype::U1,
        text if text.starts_with("|S") && text[2..].parse::<usize>().is_ok() => {
            Dtype::Text(text[2..].parse().expect("checked"))
        }
        other => {
            return Err(fail(
                path,
                format!(
                    "element type {other} is not supported; use float32 or float64 (little-endian)"
                ),
            ));
        }
    };
    let fortran = field("fortran_order")? == "True";
    let shape: Vec<usize> = field("shape")?
        .trim_matches(['(', ')'])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| fail(path, format!("bad shape entry {s:?}")))
        })
        .collect::<Result<_>>()?;
    let count = shape.iter().try_fold(1usize, |a, &b| a.checked_mul(b));
    let fits = count
        .and_then(|c| c.checked_mul(dtype.size()))
        .is_some_and(|bytes| bytes as u64 <= data_len);
    if !fits {
        return Err(fail(
            path,
            format!(
                "the file ends before its {} elements of shape {shape:?}",
                count.map_or("too many".to_string(), |c| c.to_string())
            ),
        ));
    }
    Ok(Array {
        dtype,
        shape,
        fortran,
        data,
        offset: prefix as usize + header_len,
    })
}

impl<R: Read> Array<R> {
    /// Every element, as f32, in file order.
    pub(super) fn values(self, path: &Path) -> Result<Vec<f32>> {
        let dtype = self.dtype;
        self.each(path, "f32", |b, _| Ok(dtype.decode(b)))
    }

    /// Every element of an integer array, in file order, made a `T` by `convert(value,
    /// position)` (which refuses what does not fit).
    pub(super) fn integers<T>(
        self,
        path: &Path,
        convert: impl Fn(i64, usize) -> Result<T>,
    ) -> Result<Vec<T>> {
        let dtype = self.dtype;
        if !matches!(dtype, Dtype::I4 | Dtype::I8 | Dtype::U1) {
            return Err(fail(
                path,
                format!("holds {dtype:?} elements where integers (int32 or int64) belong"),
            ));
        }
        self.each(path, std::any::type_name::<T>(), |b, at| {
            convert(dtype.integer(b).expect("an integer type"), at)
        })
    }

    /// The bytes of a one-element text array (`|S<n>`), trailing NULs dropped.
    pub(super) fn text(mut self, path: &Path) -> Result<String> {
        let Dtype::Text(n) = self.dtype else {
            return Err(fail(
                path,
                format!("holds {:?} elements, not text", self.dtype),
            ));
        };
        let mut bytes = vec![0u8; n.min(256)];
        self.data
            .read_exact(&mut bytes)
            .map_err(|_| fail(path, "the file ends inside its text"))?;
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Ok(String::from_utf8_lossy(&bytes[..end]).into_owned())
    }

    /// Every element decoded by `decode(bytes, position)`, read a megabyte at a time into
    /// memory reserved up front (named `what` if it cannot be).
    fn each<T>(
        mut self,
        path: &Path,
        what: &str,
        decode: impl Fn(&[u8], usize) -> Result<T>,
    ) -> Result<Vec<T>> {
        if let Dtype::Text(_) = self.dtype {
            return Err(fail(path, "holds text where numbers belong"));
        }
        let count: usize = self.shape.iter().product();
        let size = self.dtype.size();
        let mut out = Vec::new();
        crate::memory::reserve(&mut out, count, || {
            format!("{}: its {count} elements as {what}", path.display())
        })?;
        let mut buf = vec![0u8; (1 << 20) / size * size];
        while out.len() < count {
            let want = ((count - out.len()) * size).min(buf.len());
            self.data.read_exact(&mut buf[..want]).map_err(|e| {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    return fail(path, e.to_string());
                }
                fail(
                    path,
                    format!(
                        "the file ends before its {count} elements of shape {:?}",
                        self.shape
                    ),
                )
            })?;
            for b in buf[..want].chunks_exact(size) {
                let at = out.len();
                out.push(decode(b, at)?);
            }
        }
        Ok(out)
    }
}

/// Reads X (2-D) and the labels `spec` names.
pub fn read(path: &Path, spec: &Columns) -> Result<Dataset> {
    let array = open(path)?;
    // A float32 X in C order whose every column is a feature is mapped, not read.
    read_array(array, path, spec, |array, count| {
        Floats::map(array.data.get_ref(), array.offset, count).map_err(|e| Error::io(path, e))
    })
}

/// Reads X from the `.npy` bytes of `reader`, with the labels `spec` names (a column, or
/// a label file by path); messages call it `name`. The bytes are held in memory while
/// they are read.
pub fn read_from(reader: impl Read, name: impl AsRef<Path>, spec: &Columns) -> Result<Dataset> {
    let name = name.as_ref();
    let bytes = read_all(reader, name)?;
    let array = header(bytes.as_slice(), bytes.len() as u64, name)?;
    read_array(array, name, spec, |_, _| Ok(None))
}

/// The dataset of X's array, with `map(array, count)` to map a whole float32 X in C order
/// instead of reading it (`None`: read it).
fn read_array<R: Read>(
    array: Array<R>,
    path: &Path,
    spec: &Columns,
    map: impl FnOnce(&Array<R>, usize) -> Result<Option<Floats>>,
) -> Result<Dataset> {
    let (rows, columns) = match array.shape.as_slice() {
        [r, c] => (*r, *c),
        [r] => (*r, 1),
        other => {
            return Err(fail(
                path,
                format!("X must be 2-D (rows, features); its shape is {other:?}"),
            ));
        }
    };
    if rows == 0 {
        return Err(Error::HeaderOnly { path: path.into() });
    }
    let header: Vec<String> = (0..columns).map(|j| format!("x{j}")).collect();
    let target = match &spec.target {
        Target::Column(name) if name.ends_with(".npy") => Target::File(PathBuf::from(name)),
        Target::Column(name) if !header.contains(name) => {
            return Err(Error::option(
                "target",
                name,
                "a .npy array has no named columns: give --target y.npy (a 1-D array) or --target-index J",
            ));
        }
        other => other.clone(),
    };
    let layout = Layout::new(
        path,
        &header,
        &Columns {
            target: target.clone(),
            ..spec.clone()
        },
    )?;
    let labels = match &target {
        Target::File(y_path) => Some(labels(y_path, rows)?),
        _ => None,
    };
    // Every column a feature, in order: X is the file's array as it stands.
    let whole = layout.features.iter().copied().eq(0..columns) && layout.weights.is_none();
    let mapped = if whole && labels.is_some() && array.dtype == Dtype::F4 && !array.fortran {
        map(&array, rows * columns)?
    } else {
        None
    };
    let mut values = match mapped {
        Some(floats) => Values::Mapped(floats),
        None => Values::Read(rowwise(array, path, rows, columns)?),
    };
    let values_mut: &mut [f32] = match &mut values {
        Values::Read(v) => v,
        Values::Mapped(f) => f,
    };
    // X is compacted in place over the file's values: row i's features land at i·d, never
    // past the start of row i + 1, so one copy of the array is held, not two (and nothing
    // is written when every column is a feature, so mapped pages stay the file's).
    let d = layout.features.len();
    let names = layout.names(&header);
    let mut y = Vec::with_capacity(rows);
    let mut weights = Vec::with_capacity(if layout.weights.is_some() { rows } else { 0 });
    let mut row = vec![0.0f32; columns];
    for i in 0..rows {
        row.copy_from_slice(&values_mut[i * columns..(i + 1) * columns]);
        for (slot, (&c, name)) in layout.features.iter().zip(&names).enumerate() {
            if let Some(problem) = cell_problem(row[c]) {
                return Err(fail(
                    path,
                    format!("row {i}, column {c} ({name}): {problem}: {}", row[c]),
                ));
            }
            if !whole {
                values_mut[i * d + slot] = row[c];
            }
        }
        let label = match (&labels, layout.target) {
            (Some(l), _) => l[i],
            (None, Some(t)) => row[t],
            (None, None) => 0.0,
        };
        if let Some(problem) = cell_problem(label) {
            return Err(fail(path, format!("row {i}: label {problem}: {label}")));
        }
        y.push(label);
        if let Some(w) = layout.weights {
            if !(row[w].is_finite() && row[w] >= 0.0) {
                return Err(fail(
                    path,
                    format!(
                        "row {i}: sample weight must be finite and ≥ 0, not {}",
                        row[w]
                    ),
                ));
            }
            weights.push(row[w]);
        }
    }
    let x = match values {
        Values::Read(mut v) => {
            v.truncate(rows * d);
            v.shrink_to_fit();
            Floats::from_vec(v)
        }
        Values::Mapped(floats) => floats,
    };
    let origin = match &target {
        Target::File(y_path) => Origin::LabelFile {
            path: y_path.clone(),
        },
        _ => layout.origin(path, &header),
    };
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

/// The labels in `y_path`, one for each of X's `rows` (a 1-D array, or 2-D with one
/// column or one row).
pub(super) fn labels(y_path: &Path, rows: usize) -> Result<Vec<f32>> {
    let y = open(y_path)?;
    if y.shape.iter().product::<usize>() != rows || y.shape.len() > 2 {
        return Err(fail(
            y_path,
            format!("labels of shape {:?} do not match X's {rows} rows", y.shape),
        ));
    }
    y.values(y_path)
}

/// X's values as read or as mapped.
enum Values {
    Read(Vec<f32>),
    Mapped(Floats),
}

/// Every element of a 2-D array, row-major (a Fortran-order array is transposed).
fn rowwise<R: Read>(array: Array<R>, path: &Path, rows: usize, columns: usize) -> Result<Vec<f32>> {
    let fortran = array.fortran;
    let values = array.values(path)?;
    if fortran && columns > 1 {
        // Column-major on disk: make it row-major.
        let mut rowwise = vec![0.0; values.len()];
        for (i, v) in values.iter().enumerate() {
            rowwise[(i % rows) * columns + i / rows] = *v;
        }
        return Ok(rowwise);
    }
    Ok(values)
}

/// Writes a 2-D (or, with one column, 1-D) float32 array: for tests and for exporting.
pub fn write(
    path: impl AsRef<Path>,
    values: &[f32],
    columns: usize,
    one_dimensional: bool,
) -> Result<()> {
    let path = path.as_ref();
    let rows = values.len() / columns.max(1);
    let shape = if one_dimensional {
        format!("({rows},)")
    } else {
        format!("({rows}, {columns})")
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic, version and length take 10 bytes; pad the header so the data start 64-aligned.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

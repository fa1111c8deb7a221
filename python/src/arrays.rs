//! NumPy arrays into datasets without copying X: a C-contiguous float32 array's floats are
//! read where NumPy keeps them, for as long as the dataset lives. Sparse X (CSR arrays)
//! is copied into the library's own CSR.

use downhill::backend::Data;
use downhill::floats::Floats;
use downhill::{Dataset, SparseDataset};
use numpy::{PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// A NumPy array's floats, with a reference to the array that keeps them alive.
struct InPlace {
    at: *const f32,
    len: usize,
    _array: Py<PyAny>,
}

// SAFETY: the floats are only read, and the reference keeps the array's buffer alive.
// Python code may still write to the array from another thread while the GIL is released,
// as with any extension that reads NumPy arrays without the GIL; the estimators document
// it, and the datasets never outlive the call that made them (see `dataset`).
unsafe impl Send for InPlace {}
unsafe impl Sync for InPlace {}

impl AsRef<[f32]> for InPlace {
    fn as_ref(&self) -> &[f32] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `at` is the first of `len` contiguous floats of the array, which lives as
        // long as `self` holds it.
        unsafe { std::slice::from_raw_parts(self.at, self.len) }
    }
}

/// X (n×d, C-contiguous float32, read in place), y and optional sample weights as a
/// dataset. The readonly borrows must outlive the dataset: the caller holds them for the
/// whole call, so NumPy's borrow flags keep Rust writers off the arrays meanwhile.
pub fn dataset(
    x: &PyReadonlyArray2<'_, f32>,
    y: Vec<f32>,
    weights: Option<Vec<f32>>,
) -> PyResult<Dataset> {
    let (rows, features) = (x.shape()[0], x.shape()[1]);
    if !x.is_c_contiguous() {
        return Err(PyValueError::new_err(
            "X must be C-contiguous float32 (the estimators convert it once)",
        ));
    }
    if y.len() != rows {
        return Err(PyValueError::new_err(format!(
            "X has {rows} rows but y has {} labels",
            y.len()
        )));
    }
    let floats = Floats::shared(InPlace {
        at: x.data(),
        len: rows * features,
        _array: x.as_any().clone().unbind(),
    });
    let data = Dataset::from_floats(floats, y, features).map_err(crate::errors::to_py)?;
    match weights {
        Some(w) => data.with_weights(w).map_err(crate::errors::to_py),
        None => Ok(data),
    }
}

/// A 1-D float32 array's values.
pub fn floats(v: &PyReadonlyArray1<'_, f32>) -> PyResult<Vec<f32>> {
    Ok(v.as_array().iter().copied().collect())
}

/// Whether a dataset made from `x` would read it in place: the test of the no-copy promise
/// (the dataset's X starts at the array's first float).
#[pyfunction]
pub fn shares_memory(x: PyReadonlyArray2<'_, f32>) -> PyResult<bool> {
    let rows = x.shape()[0];
    let data = dataset(&x, vec![0.0; rows], None)?;
    Ok(data.x_is_shared() && std::ptr::eq(data.x().as_ptr(), x.data()))
}

/// X as the estimators pass it: a dense C-contiguous float32 array, or a CSR matrix's
/// arrays `(indptr int64, indices int32, data float32, n_features)`.
#[derive(FromPyObject)]
pub enum Rows<'py> {
    Dense(PyReadonlyArray2<'py, f32>),
    Csr(
        (
            PyReadonlyArray1<'py, i64>,
            PyReadonlyArray1<'py, i32>,
            PyReadonlyArray1<'py, f32>,
            usize,
        ),
    ),
}

/// Rows in the library's form, dense (X read in place) or sparse (copied).
pub enum Held {
    Dense(Dataset),
    Sparse(SparseDataset),
}

impl Held {
    pub fn data(&self) -> Data<'_> {
        match self {
            Held::Dense(d) => Data::Host(d),
            Held::Sparse(s) => Data::Sparse(s),
        }
    }
}

impl Rows<'_> {
    /// The rows with labels `y` and optional sample weights. A sparse matrix's indptr and
    /// indices are checked by the library (negative ones are refused here).
    pub fn hold(&self, y: Vec<f32>, weights: Option<Vec<f32>>) -> PyResult<Held> {
        let (indptr, indices, values, features) = match self {
            Rows::Dense(x) => return Ok(Held::Dense(dataset(x, y, weights)?)),
            Rows::Csr(csr) => csr,
        };
        let to_py = crate::errors::to_py;
        let offsets = indptr
            .as_array()
            .iter()
            .map(|&o| u64::try_from(o))
            .collect::<Result<Vec<u64>, _>>()
            .map_err(|_| PyValueError::new_err("X's indptr holds a negative offset"))?;
        let indices = indices
            .as_array()
            .iter()
            .map(|&j| u32::try_from(j))
            .collect::<Result<Vec<u32>, _>>()
            .map_err(|_| PyValueError::new_err("X's indices hold a negative column"))?;
        let values: Vec<f32> = values.as_array().iter().copied().collect();
        let values = values.iter().any(|&v| v != 1.0).then_some(values);
        let rows =
            SparseDataset::from_csr(offsets, indices, values, y, *features).map_err(to_py)?;
        Ok(Held::Sparse(match weights {
            Some(w) => rows.with_weights(w).map_err(to_py)?,
            None => rows,
        }))
    }
}

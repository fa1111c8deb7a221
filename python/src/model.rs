//! `_native.Model`: a fitted model (the library's `FittedModel`), its parameters as NumPy
//! arrays, z for new rows on any backend, and pickling through the model file's JSON.

use downhill::FittedModel;
use numpy::{IntoPyArray, PyArray1, PyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::errors::to_py;

/// What a fit did, for the estimators' fitted attributes.
#[derive(Clone, Debug)]
pub struct FitInfo {
    /// Solver iterations, or epochs of descent.
    pub n_iter: u64,
    pub converged: bool,
    /// Why it stopped, in words.
    pub stop: String,
    pub solver: String,
    /// The backend that ran it, and why it was chosen.
    pub backend: String,
    /// J at the end, over the training rows.
    pub loss: f64,
    pub seconds: f64,
}

#[pyclass(module = "downhill._native", frozen)]
pub struct Model {
    inner: FittedModel,
    info: Option<FitInfo>,
}

impl Model {
    pub fn new(inner: FittedModel, info: Option<FitInfo>) -> Self {
        Model { inner, info }
    }

    fn info(&self) -> PyResult<&FitInfo> {
        self.info.as_ref().ok_or_else(|| {
            pyo3::exceptions::PyAttributeError::new_err(
                "a model read from its JSON has no record of its fit",
            )
        })
    }
}

#[pymethods]
impl Model {
    /// W, d×k (one column per output).
    fn weights<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let p = &self.inner.params;
        let w = numpy::ndarray::Array2::from_shape_vec(
            (p.features(), p.outputs()),
            p.weights().to_vec(),
        )
        .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        Ok(w.into_pyarray(py))
    }

    /// b, k values.
    fn bias<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        self.inner.params.bias().to_vec().into_pyarray(py)
    }

    #[getter]
    fn model(&self) -> &'static str {
        self.inner.model.name()
    }

    /// z = x·W + b for every row of X (n×k, float64), computed on `backend` without the
    /// GIL.
    #[pyo3(signature = (x, backend = "auto", devices = None))]
    fn decision<'py>(
        &self,
        py: Python<'py>,
        x: crate::arrays::Rows<'py>,
        backend: &str,
        devices: Option<&str>,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let rows = match &x {
            crate::arrays::Rows::Dense(x) => x.shape()[0],
            crate::arrays::Rows::Csr((indptr, ..)) => indptr.len().saturating_sub(1),
        };
        let held = x.hold(vec![0.0; rows], None)?;
        let selected = crate::backends::open(backend, devices).map_err(to_py)?;
        let interrupt = downhill::train::Interrupt::new();
        let predictions = crate::detached::run(py, &interrupt, || {
            self.inner.predict(selected.backend.as_ref(), held.data())
        })?
        .map_err(to_py)?;
        let k = predictions.outputs();
        let z = numpy::ndarray::Array2::from_shape_vec((rows, k), predictions.logits().to_vec())
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
        Ok(z.into_pyarray(py))
    }

    #[getter]
    fn n_iter(&self) -> PyResult<u64> {
        Ok(self.info()?.n_iter)
    }

    #[getter]
    fn converged(&self) -> PyResult<bool> {
        Ok(self.info()?.converged)
    }

    #[getter]
    fn stop(&self) -> PyResult<String> {
        Ok(self.info()?.stop.clone())
    }

    #[getter]
    fn solver(&self) -> PyResult<String> {
        Ok(self.info()?.solver.clone())
    }

    #[getter]
    fn backend(&self) -> PyResult<String> {
        Ok(self.info()?.backend.clone())
    }

    #[getter]
    fn loss(&self) -> PyResult<f64> {
        Ok(self.info()?.loss)
    }

    #[getter]
    fn seconds(&self) -> PyResult<f64> {
        Ok(self.info()?.seconds)
    }

    /// The model file's JSON (what `downhill fit --save-model` writes).
    fn to_json(&self) -> String {
        self.inner.to_json().to_string()
    }

    /// A model from its file's JSON.
    #[staticmethod]
    fn from_json(text: &str) -> PyResult<Model> {
        let inner = FittedModel::from_json_text(text, "the model's JSON").map_err(to_py)?;
        Ok(Model::new(inner, None))
    }

    /// Pickled as its model file: `Model.from_json(text)`.
    fn __reduce__<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
        let from_json = py.get_type::<Model>().getattr("from_json")?;
        Ok((from_json, (self.to_json(),)))
    }

    fn __repr__(&self) -> String {
        let p = &self.inner.params;
        format!(
            "Model({}, {} features, {} outputs)",
            self.inner.model.name(),
            p.features(),
            p.outputs()
        )
    }
}

//! downhill's Python module, `downhill._native`: the Rust library's fits, predictions and
//! model files over NumPy arrays. The scikit-learn estimators in `downhill/` call it; this
//! layer only converts (arrays read in place, errors into Python's exceptions), releases
//! the GIL while the library works, and turns Ctrl-C into the library's interrupt.

mod arrays;
mod backends;
mod detached;
mod errors;
mod fit;
mod model;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fit::fit, m)?)?;
    m.add_function(wrap_pyfunction!(backends::devices, m)?)?;
    m.add_function(wrap_pyfunction!(arrays::shares_memory, m)?)?;
    m.add_class::<model::Model>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

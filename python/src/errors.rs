//! The library's errors as Python's exceptions, with the same message: bad input or
//! options are `ValueError`, files `OSError`, the device and memory `RuntimeError`, an
//! interrupt `KeyboardInterrupt`.

use downhill::Error;
use pyo3::PyErr;
use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyValueError};

pub fn to_py(e: Error) -> PyErr {
    let message = e.to_string();
    match e {
        Error::Io { .. } | Error::Write { .. } | Error::OutputClash { .. } => {
            PyOSError::new_err(message)
        }
        Error::Interrupted { .. } => PyKeyboardInterrupt::new_err(message),
        Error::NoAdapter { .. }
        | Error::Gpu { .. }
        | Error::TooLarge { .. }
        | Error::LoopLimit { .. }
        | Error::Verification { .. }
        | Error::OutOfMemory { .. }
        | Error::OutOfDeviceMemory { .. }
        | Error::DeviceLost { .. }
        | Error::GpuValidation { .. } => PyRuntimeError::new_err(message),
        _ => PyValueError::new_err(message),
    }
}

//! Backends by name, opened once per process: a GPU device takes long to open, and an
//! estimator fitted a thousand times (scikit-learn's checks, a grid search) should open it
//! once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use downhill::backend::GpuOptions;
use downhill::{BackendKind, Selected};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Opened backends, by (backend, devices).
type Opened = HashMap<(String, String), Arc<Selected>>;

static OPENED: Mutex<Option<Opened>> = Mutex::new(None);

/// The backend `backend` names (`auto`, `gpu`, `cpu`, `reference`), or the data-parallel
/// one over `devices` (as the CLI's `--devices` spells them: `all`, `0,1`, `cpu,0`).
pub fn open(backend: &str, devices: Option<&str>) -> downhill::Result<Arc<Selected>> {
    let key = (backend.to_string(), devices.unwrap_or_default().to_string());
    let mut opened = OPENED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let opened = opened.get_or_insert_with(HashMap::new);
    if let Some(selected) = opened.get(&key) {
        return Ok(selected.clone());
    }
    let kind: BackendKind = backend.parse()?;
    let selected = Arc::new(match devices {
        Some(spec) => downhill::select_devices(spec, GpuOptions::default())?,
        None => downhill::select(kind, GpuOptions::default())?,
    });
    opened.insert(key, selected.clone());
    Ok(selected)
}

/// The GPU adapters wgpu sees, in the order `devices=` indexes them: name, type, API.
#[pyfunction]
pub fn devices(py: Python<'_>) -> PyResult<Vec<Bound<'_, PyDict>>> {
    let adapters = py.detach(downhill::gpu::adapters);
    adapters
        .iter()
        .enumerate()
        .map(|(index, a)| {
            let d = PyDict::new(py);
            d.set_item("index", index)?;
            d.set_item("name", &a.info.name)?;
            d.set_item("type", format!("{:?}", a.info.device_type))?;
            d.set_item("api", format!("{:?}", a.info.backend))?;
            d.set_item("hardware", downhill::gpu::is_hardware(&a.info))?;
            Ok(d)
        })
        .collect()
}

//! `_native.fit`: one fit of the library over NumPy arrays, with the options the
//! estimators translate from scikit-learn's names (the penalty already divided by the
//! total sample weight, the classes already numbered 0..k).

use downhill::train::{Interrupt, OptimizerKind, Solver};
use downhill::{Objective, Trainer};
use numpy::PyReadonlyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::errors::to_py;
use crate::model::{FitInfo, Model};

/// Descent options (the `gd` solver's); `None` leaves the library's default.
#[derive(FromPyObject, Default)]
#[pyo3(from_item_all)]
pub struct Descent {
    lr: Option<f64>,
    epochs: Option<u64>,
    batch_size: Option<usize>,
    optimizer: Option<String>,
    momentum: Option<f64>,
    /// The exponent of scikit-learn's `invscaling` rate, η / (epoch + 1)^power.
    power_t: Option<f64>,
    patience: Option<u64>,
    validation_fraction: Option<f64>,
}

/// Fits `model` (`linear`, `logistic` or `softmax` with `classes` classes) to X and y on
/// `backend`, and returns the fitted model with what the fit did.
#[pyfunction]
#[pyo3(signature = (
    x, y, *, model, classes = 1, sample_weight = None, backend = "auto", devices = None,
    solver = "auto", l1 = 0.0, l2 = 0.0, tol = None, max_iter = None, seed = 0,
    fit_intercept = true, standardize = false, descent = None
))]
#[allow(clippy::too_many_arguments)]
pub fn fit(
    py: Python<'_>,
    x: crate::arrays::Rows<'_>,
    y: PyReadonlyArray1<'_, f32>,
    model: &str,
    classes: usize,
    sample_weight: Option<PyReadonlyArray1<'_, f32>>,
    backend: &str,
    devices: Option<&str>,
    solver: &str,
    l1: f64,
    l2: f64,
    tol: Option<f64>,
    max_iter: Option<u64>,
    seed: u64,
    fit_intercept: bool,
    standardize: bool,
    descent: Option<Descent>,
) -> PyResult<Model> {
    let objective = objective(model, classes).map_err(to_py)?;
    let weights = sample_weight
        .as_ref()
        .map(crate::arrays::floats)
        .transpose()?;
    let held = x.hold(crate::arrays::floats(&y)?, weights)?;
    let interrupt = Interrupt::new();
    let mut trainer = Trainer::new()
        .solver(solver.parse().map_err(to_py)?)
        .l1(l1)
        .l2(l2)
        .seed(seed)
        .standardize(standardize)
        .fit_intercept(fit_intercept)
        .interrupt(interrupt.clone());
    if let Some(tol) = tol {
        trainer = trainer.tol(tol);
    }
    if let Some(max_iter) = max_iter {
        trainer = trainer.max_iter(max_iter);
    }
    if let Some(descent) = descent {
        trainer = with_descent(trainer, descent)?;
    }
    let selected = crate::backends::open(backend, devices).map_err(to_py)?;
    let fit = crate::detached::run(py, &interrupt, || {
        downhill::fit(selected.backend.as_ref(), held.data(), objective, &trainer)
    })?
    .map_err(to_py)?;
    if let downhill::train::StopReason::Interrupted { step } = fit.stop {
        return Err(pyo3::exceptions::PyKeyboardInterrupt::new_err(format!(
            "interrupted after step {step}"
        )));
    }
    let info = FitInfo {
        n_iter: fit.solved.as_ref().map_or(fit.epochs, |s| s.iterations),
        converged: !matches!(
            fit.stop,
            downhill::train::StopReason::NotConverged | downhill::train::StopReason::Epochs
        ),
        stop: match &fit.solved {
            Some(s) => s.reason.clone(),
            None => fit.stop.describe(),
        },
        solver: fit
            .solved
            .as_ref()
            .map_or(Solver::Gd, |s| s.solver)
            .to_string(),
        backend: selected.reason.clone(),
        loss: fit.loss,
        seconds: fit.train_seconds,
    };
    Ok(Model::new(fit.model, Some(info)))
}

fn objective(model: &str, classes: usize) -> downhill::Result<Objective> {
    match model {
        "linear" => Ok(Objective::linear()),
        "logistic" => Ok(Objective::logistic()),
        "softmax" => Objective::softmax(classes),
        other => Err(downhill::Error::option(
            "model",
            other,
            "expected linear, logistic or softmax",
        )),
    }
}

fn with_descent(mut trainer: Trainer, d: Descent) -> PyResult<Trainer> {
    trainer = trainer.solver(Solver::Gd).log_every(1);
    if let Some(lr) = d.lr {
        trainer = trainer.lr(lr);
    }
    if let Some(epochs) = d.epochs {
        trainer = trainer.epochs(epochs);
    }
    if let Some(b) = d.batch_size {
        trainer = trainer.batch_size(b);
    }
    if let Some(name) = d.optimizer {
        let kind: OptimizerKind = name.parse().map_err(to_py)?;
        trainer = trainer.optimizer(kind);
    }
    if let Some(m) = d.momentum {
        trainer = trainer.momentum(m);
    }
    if let Some(power) = d.power_t {
        if !(power.is_finite() && power >= 0.0) {
            return Err(PyValueError::new_err(format!(
                "power_t must be a finite number ≥ 0, not {power}"
            )));
        }
        trainer = trainer.schedule(downhill::optim::Schedule::InverseScaling { power });
    }
    if let Some(p) = d.patience {
        trainer = trainer.patience(p);
    }
    if let Some(f) = d.validation_fraction {
        trainer = trainer.validation_fraction(f);
    }
    Ok(trainer)
}

//! `downhill bench`: seconds per epoch of logistic regression (softmax with a class count)
//! on each backend, against the memory floor (one streaming read of X on the same device)
//! measured in the same run, interleaved with it so that both see the same machine. Medians are reported:
//! on a shared machine a single run says little. `--to-optimum` (time to the optimum
//! against scikit-learn's solvers) is [`optimum`].

pub mod optimum;
pub mod peak;

use std::process::Command;
use std::time::Instant;

use crate::backend::cpu::{Cpu, stream_read};
#[cfg(feature = "gpu")]
use crate::backend::gpu::Gpu;
use crate::backend::{Backend, Data, Session};
use crate::error::{Error, Result};
use crate::model::Objective;
use crate::synth::Synthetic;
use crate::train::Trainer;

/// What to measure.
#[derive(Clone)]
pub struct BenchOptions {
    /// (rows, features, classes) of each problem: logistic for 1 class, else softmax.
    pub shapes: Vec<(usize, usize, usize)>,
    /// Mini-batch sizes, measured on the first shape only.
    pub batch_sizes: Vec<usize>,
    /// Timed full-batch epochs per backend and shape (mini-batch epochs: a third).
    pub reps: usize,
    /// Measure the CPU backend.
    pub cpu: bool,
    /// Measure this GPU, if any.
    #[cfg(feature = "gpu")]
    pub gpu: Option<Gpu>,
    /// A Python with numpy, to time numpy's epoch on the same shapes.
    pub python: Option<String>,
}

/// One line of the report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Measurement {
    /// `cpu`, `gpu` or `numpy`.
    pub backend: String,
    pub device: String,
    pub rows: usize,
    pub features: usize,
    /// 1: logistic; more: softmax.
    pub classes: usize,
    /// `full` or `B=…`.
    pub mode: String,
    /// Bytes one epoch must read at least (X as stored, and y).
    pub bytes: u64,
    /// Seconds of each timed epoch.
    pub epoch_seconds: Vec<f64>,
    /// Seconds of each streaming read of X on the same device (empty for numpy).
    pub floor_seconds: Vec<f64>,
}

impl Measurement {
    pub fn epoch(&self) -> f64 {
        median(&self.epoch_seconds)
    }

    pub fn floor(&self) -> Option<f64> {
        (!self.floor_seconds.is_empty()).then(|| median(&self.floor_seconds))
    }

    /// Bytes per second an epoch achieves, in GB/s.
    pub fn gigabytes_per_second(&self) -> f64 {
        self.bytes as f64 / self.epoch() / 1e9
    }

    /// The floating-point operations of a full-batch epoch's two products, X·W and Xᵀ·Δ:
    /// 4·n·d·k (a multiply-add counted as two).
    pub fn flops(&self) -> f64 {
        4.0 * self.rows as f64 * self.features as f64 * self.classes as f64
    }

    /// The rate of those operations, in GFLOP/s.
    pub fn gigaflops(&self) -> f64 {
        self.flops() / self.epoch() / 1e9
    }
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One problem's modes of descent to time: (label, batch size, timed epochs).
struct Modes {
    rows: usize,
    features: usize,
    classes: usize,
    list: Vec<(String, Option<usize>, usize)>,
}

impl Modes {
    /// Times every mode on `session`: each timed epoch follows a floor measurement, after
    /// one untimed step (first-touch costs, pipeline compilation, thread start).
    fn measure<S: Session + ?Sized>(
        &self,
        backend: &str,
        bytes: u64,
        session: &mut S,
        mut floor: impl FnMut(&S) -> Result<f64>,
        emit: &mut dyn FnMut(Measurement),
    ) -> Result<()> {
        let trainer = Trainer::new().lr(0.1);
        for (mode, batch, reps) in &self.list {
            let t = batch.map_or(trainer.clone(), |b| trainer.clone().batch_size(b));
            let steps = t.epoch_steps(0, self.rows);
            session.run(&steps[..1])?;
            let (mut epoch_seconds, mut floor_seconds) = (Vec::new(), Vec::new());
            for _ in 0..*reps {
                floor_seconds.push(floor(session)?);
                let start = Instant::now();
                session.run(&steps)?;
                epoch_seconds.push(start.elapsed().as_secs_f64());
            }
            emit(Measurement {
                backend: backend.into(),
                device: session.describe(),
                rows: self.rows,
                features: self.features,
                classes: self.classes,
                mode: mode.clone(),
                bytes,
                epoch_seconds,
                floor_seconds,
            });
        }
        Ok(())
    }
}

/// Runs the benchmark, calling `report` with each measurement as it is made.
pub fn run(
    options: &BenchOptions,
    report: &mut dyn FnMut(&Measurement),
) -> Result<Vec<Measurement>> {
    // Every mode's options are refused before anything is measured.
    for &b in &options.batch_sizes {
        Trainer::new().batch_size(b).validate()?;
    }
    let mut all = Vec::new();
    let mut emit = |m: Measurement| {
        report(&m);
        all.push(m);
    };
    for (shape_index, &(rows, features, classes)) in options.shapes.iter().enumerate() {
        let objective = if classes == 1 {
            Objective::logistic()
        } else {
            Objective::softmax(classes)?
        };
        let problem = Synthetic::new(rows, features, objective, 1)?;
        let mut modes = Modes {
            rows,
            features,
            classes,
            list: vec![(String::from("full"), None, options.reps)],
        };
        if shape_index == 0 {
            for &b in &options.batch_sizes {
                modes
                    .list
                    .push((format!("B={b}"), Some(b), options.reps.div_ceil(3)));
            }
        }
        if options.cpu {
            let data = problem.generate()?;
            let cpu = Cpu::default();
            let mut session = cpu.open(Data::Host(&data), objective)?;
            let bytes = 4 * (data.x().len() + data.y().len()) as u64;
            let floor = |_: &_| {
                let start = Instant::now();
                std::hint::black_box(stream_read(data.x()));
                Ok(start.elapsed().as_secs_f64())
            };
            modes.measure("cpu", bytes, session.as_mut(), floor, &mut emit)?;
        }
        #[cfg(feature = "gpu")]
        if let Some(gpu) = &options.gpu {
            let host;
            let mut session = match gpu.session(Data::Synthetic(problem), objective) {
                // The device's loop limit stops it generating these rows (lavapipe, wide
                // rows of many classes): they are made here and uploaded.
                Err(crate::Error::LoopLimit { .. }) => {
                    host = problem.generate()?;
                    gpu.session(Data::Host(&host), objective)?
                }
                other => other?,
            };
            let bytes = session.data_bytes();
            let floor = |s: &crate::backend::gpu::GpuSession<'_>| s.time_stream_read();
            modes.measure("gpu", bytes, &mut session, floor, &mut emit)?;
        }
        if let Some(python) = &options.python {
            emit(numpy_epoch(
                python,
                (rows, features, classes),
                options.reps,
            )?);
        }
    }
    Ok(all)
}

/// The script that times numpy's epoch, next to the crate's sources.
const NUMPY_SCRIPT: &str = include_str!("../bench/numpy_epoch.py");

/// Times numpy's epoch on a problem of the same shape (rows, features, classes) in a
/// child Python.
fn numpy_epoch(
    python: &str,
    (rows, features, classes): (usize, usize, usize),
    reps: usize,
) -> Result<Measurement> {
    let fail = |message: String| Error::option("python", python, message);
    let output = Command::new(python)
        .args([
            "-c",
            NUMPY_SCRIPT,
            &rows.to_string(),
            &features.to_string(),
            &reps.to_string(),
            &classes.to_string(),
        ])
        .output()
        .map_err(|e| fail(format!("could not run it: {e}")))?;
    if !output.status.success() {
        return Err(fail(format!(
            "the numpy baseline failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| fail(format!("unreadable numpy timing ({e})")))?;
    let seconds: Vec<f64> = value["seconds"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    // The first epoch pays for page faults and thread start, as our untimed run does.
    let seconds = if seconds.len() > 1 {
        seconds[1..].to_vec()
    } else {
        seconds
    };
    Ok(Measurement {
        backend: "numpy".into(),
        device: format!(
            "numpy, float32, BLAS {}",
            value["blas"].as_str().unwrap_or("?")
        ),
        rows,
        features,
        classes,
        mode: "full".into(),
        bytes: 4 * (rows * features + rows) as u64,
        epoch_seconds: seconds,
        floor_seconds: Vec::new(),
    })
}

/// A Python that can import `modules` (`"numpy"`, `"numpy, sklearn"`): `DOWNHILL_PYTHON`,
/// else `python3` on the path.
pub fn find_python(modules: &str) -> Option<String> {
    let candidates = std::env::var("DOWNHILL_PYTHON").ok().into_iter();
    candidates.chain(["python3".to_string()]).find(|p| {
        Command::new(p)
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

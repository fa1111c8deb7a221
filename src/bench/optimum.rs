//! `downhill bench --to-optimum`: seconds and passes over the rows to reach a stated
//! relative suboptimality of the best objective any solver reached, downhill's solvers
//! against scikit-learn's lbfgs and newton-cholesky on the same rows in the same run (on
//! sparse rows: scikit-learn's lbfgs and LIBLINEAR's -s 0).
//!
//! A child Python (`bench/to_optimum.py`) writes the problem as `.npy` files (sparse rows
//! as a scipy `.npz`), which both sides read; downhill's solvers record their parameters and the time at every
//! iteration; the child then fits scikit-learn's solvers and measures everyone's F in f64
//! in one place, so no side is judged by its own arithmetic.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::backend::{Backend, Data};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::input::{Columns, Target};
use crate::model::Objective;
use crate::params::Params;
use crate::solve::Solver;
use crate::train::{LogEntry, Observer, Trainer};

/// The script that makes the problem and runs the peers, next to the crate's sources.
const SCRIPT: &str = include_str!("../../bench/to_optimum.py");

/// One problem: rows × features, with `classes` classes (2: logistic, more: softmax);
/// dense, or with `nonzeros` draws a row, sparse binary rows (logistic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Shape {
    pub rows: usize,
    pub features: usize,
    pub classes: usize,
    pub nonzeros: Option<usize>,
}

/// What `--to-optimum` measures.
pub struct OptimumOptions<'b> {
    pub shapes: Vec<Shape>,
    /// Backends to run downhill's solvers on, by name.
    pub backends: Vec<(&'static str, &'b dyn Backend)>,
    pub solvers: Vec<Solver>,
    /// scikit-learn's C; downhill's λ₂ is 1/(C·n).
    pub c: f64,
    /// The relative suboptimality each solver's time is measured to.
    pub rel: f64,
    /// A Python with numpy and scikit-learn.
    pub python: String,
    /// Where the problems' `.npy` files are written (and removed after).
    pub dir: PathBuf,
}

/// One solver's result on one problem.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Reached {
    /// `cpu newton`, `sklearn lbfgs`, ….
    pub name: String,
    /// Seconds to the target, none when it never got there.
    pub seconds: Option<f64>,
    /// Iterations to the target.
    pub iterations: Option<u64>,
    /// Passes over the rows to the target (downhill's; scikit-learn does not count them).
    pub passes: Option<u64>,
    /// F at the end of its run, in f64.
    pub final_objective: f64,
}

/// One problem's results.
#[derive(Clone, Debug, serde::Serialize)]
pub struct OptimumReport {
    pub shape: Shape,
    pub best: f64,
    pub target: f64,
    pub rel: f64,
    pub sklearn: String,
    /// Bytes of X one pass reads (f32).
    pub pass_bytes: u64,
    pub results: Vec<Reached>,
}

impl OptimumReport {
    /// The fastest peer's (scikit-learn's solvers, LIBLINEAR) seconds to the target.
    pub fn fastest_peer(&self) -> Option<f64> {
        self.results
            .iter()
            .filter(|r| r.name.starts_with("sklearn") || r.name.starts_with("liblinear"))
            .filter_map(|r| r.seconds)
            .min_by(f64::total_cmp)
    }
}

/// A downhill fit's iterates: the seconds since the fit began, and the parameters.
struct Trace {
    name: String,
    start: Instant,
    seconds: Vec<f64>,
    params: Vec<Vec<f64>>,
    passes: Vec<u64>,
}

impl Observer for Trace {
    fn logged(&mut self, _: &LogEntry, params: Option<&Params>) {
        self.seconds.push(self.start.elapsed().as_secs_f64());
        self.params
            .push(params.map(Params::flat).unwrap_or_default());
    }

    fn wants_params(&self) -> bool {
        true
    }
}

/// Measures every problem, calling `report` with each as it is done.
pub fn run(
    options: &OptimumOptions,
    report: &mut dyn FnMut(&OptimumReport),
) -> Result<Vec<OptimumReport>> {
    let mut all = Vec::new();
    for (i, &shape) in options.shapes.iter().enumerate() {
        let dir = options
            .dir
            .join(format!("downhill-to-optimum-{}-{i}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let outcome = measure(options, shape, &dir);
        // The problem's files go whatever happened.
        let _ = std::fs::remove_dir_all(&dir);
        let one = outcome?;
        report(&one);
        all.push(one);
    }
    Ok(all)
}

fn measure(options: &OptimumOptions, shape: Shape, dir: &Path) -> Result<OptimumReport> {
    let Shape {
        rows,
        features,
        classes,
        nonzeros,
    } = shape;
    let mut args: Vec<String> = [rows, features, classes, 1].map(|v| v.to_string()).to_vec();
    args.extend(nonzeros.map(|v| v.to_string()));
    let dir_text = dir.to_string_lossy();
    let make: Vec<&str> = ["make", &dir_text]
        .into_iter()
        .chain(args.iter().map(String::as_str))
        .collect();
    python(options, &make, None)?;
    let labels = dir.join("y.npy");
    let rows_held = match nonzeros {
        Some(_) => Rows::Sparse(crate::input::npz::read(&dir.join("x.npz"), Some(&labels))?),
        None => {
            let columns = Columns {
                target: Target::File(labels),
                features: None,
                weights: None,
            };
            Rows::Dense(Dataset::read(dir.join("x.npy"), &columns)?)
        }
    };
    let data = rows_held.data();
    let objective = if classes == 2 {
        Objective::logistic()
    } else {
        Objective::softmax(classes)?
    };
    let mut traces = Vec::new();
    for &(backend_name, backend) in &options.backends {
        for &solver in &options.solvers {
            traces.push(trace(
                options,
                backend_name,
                backend,
                solver,
                data.clone(),
                objective,
            )?);
        }
    }
    let input = serde_json::json!({
        "traces": traces.iter().map(|t| serde_json::json!({
            "name": t.name, "seconds": t.seconds, "params": t.params,
        })).collect::<Vec<_>>(),
    });
    let output = python(
        options,
        &[
            "peers",
            &dir.to_string_lossy(),
            &options.c.to_string(),
            &options.rel.to_string(),
        ],
        Some(input.to_string()),
    )?;
    let value: serde_json::Value = serde_json::from_slice(&output)
        .map_err(|e| peer_error(options, format!("unreadable answer ({e})")))?;
    let number = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
    let mut results = Vec::new();
    for (t, d) in traces
        .iter()
        .zip(value["downhill"].as_array().into_iter().flatten())
    {
        let first = d["first_within"].as_u64().map(|i| i as usize);
        results.push(Reached {
            name: t.name.clone(),
            seconds: first.map(|i| t.seconds[i]),
            iterations: first.map(|i| i as u64),
            passes: first.map(|i| t.passes[i]),
            final_objective: number(&d["final"]),
        });
    }
    for p in value["peers"].as_array().into_iter().flatten() {
        results.push(Reached {
            name: p["name"].as_str().unwrap_or("?").into(),
            seconds: p["seconds"].as_f64(),
            iterations: p["iterations"].as_u64(),
            passes: None,
            final_objective: number(&p["final"]),
        });
    }
    Ok(OptimumReport {
        shape,
        best: number(&value["best"]),
        target: number(&value["target"]),
        rel: options.rel,
        sklearn: value["sklearn"].as_str().unwrap_or("?").into(),
        pass_bytes: rows_held.bytes(),
        results,
    })
}

/// The problem's rows, as read.
enum Rows {
    Dense(Dataset),
    Sparse(crate::sparse::SparseDataset),
}

impl Rows {
    fn data(&self) -> Data<'_> {
        match self {
            Rows::Dense(d) => Data::Host(d),
            Rows::Sparse(s) => Data::Sparse(s),
        }
    }

    /// Bytes of X one pass reads: f32 rows, or the CSR arrays.
    fn bytes(&self) -> u64 {
        match self {
            Rows::Dense(d) => 4 * (d.rows() * d.features()) as u64,
            Rows::Sparse(s) => s.csr_bytes() as u64,
        }
    }
}

/// A fit by `solver` on `backend` from the session's opening, its iterates recorded.
fn trace(
    options: &OptimumOptions,
    backend_name: &str,
    backend: &dyn Backend,
    solver: Solver,
    data: Data<'_>,
    objective: Objective,
) -> Result<Trace> {
    let trainer = Trainer::new()
        .solver(solver)
        .l2(1.0 / (options.c * data.rows() as f64));
    let mut trace = Trace {
        name: format!("{backend_name} {solver}"),
        start: Instant::now(),
        seconds: Vec::new(),
        params: Vec::new(),
        passes: Vec::new(),
    };
    let mut session = backend.open(data, objective)?;
    let fit = trainer.fit_with(session.as_mut(), &mut trace)?;
    trace.passes = fit.solved.map(|s| s.pass_history).unwrap_or_default();
    Ok(trace)
}

/// Runs the script with `args`, `input` on its stdin; its stdout.
fn python(options: &OptimumOptions, args: &[&str], input: Option<String>) -> Result<Vec<u8>> {
    let mut child = Command::new(&options.python)
        .args(["-c", SCRIPT])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| peer_error(options, format!("could not run it: {e}")))?;
    if let Some(text) = input {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| peer_error(options, format!("could not write to it: {e}")))?;
    }
    drop(child.stdin.take());
    let output = child
        .wait_with_output()
        .map_err(|e| peer_error(options, format!("could not read its answer: {e}")))?;
    if !output.status.success() {
        return Err(peer_error(
            options,
            format!(
                "bench/to_optimum.py {} failed: {}",
                args[0],
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        ));
    }
    Ok(output.stdout)
}

fn peer_error(options: &OptimumOptions, message: String) -> Error {
    Error::option("python", &options.python, message)
}

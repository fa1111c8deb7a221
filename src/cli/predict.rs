//! `downhill predict`, `downhill score` and `downhill grad`: a model (or parameters) and a
//! data file in, numbers out.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::json;

use downhill::input::{self, Target};
use downhill::{Error, FittedModel, Model, Params, Predictions, params_file};

use super::args::{BackendArgs, ModelArgs, TargetArgs, columns};
use super::out;

#[derive(Args)]
pub struct PredictArgs {
    /// A model file written by `fit --out`.
    #[arg(long)]
    model_file: PathBuf,
    /// Rows to predict: .csv, .npy or .parquet, with the model's feature columns; or sparse
    /// rows, libsvm text (.svm, .svmlight, .libsvm) or a scipy CSR .npz.
    #[arg(long)]
    data: PathBuf,
    /// Also write probabilities: P(y = 1) (logistic), one column per class (softmax).
    #[arg(long)]
    proba: bool,
    /// Write the predictions (CSV) here instead of stdout (`-`: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(Args)]
pub struct ScoreArgs {
    /// A model file written by `fit --out`.
    #[arg(long)]
    model_file: PathBuf,
    /// Labelled rows: .csv, .npy or .parquet; or sparse rows, libsvm text (.svm,
    /// .svmlight, .libsvm) or a scipy CSR .npz (with --target y.npy).
    #[arg(long)]
    data: PathBuf,
    /// Default: the target the model was fitted to.
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    backend: BackendArgs,
}

#[derive(Args)]
pub struct GradArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Data file: .csv, .npy or .parquet.
    #[arg(long)]
    data: PathBuf,
    #[command(flatten)]
    target: TargetArgs,
    /// The feature columns, comma separated (default: every column but the target).
    #[arg(long)]
    features: Option<String>,
    /// The parameters (a parameter file).
    #[arg(long)]
    weights: PathBuf,
}

pub fn predict(args: PredictArgs) -> Result<(), Error> {
    let to_file = args.out.as_deref().filter(|p| *p != Path::new("-"));
    if let Some(out) = to_file {
        downhill::output::check_outputs(
            &[("--out", out)],
            &[("--model-file", &args.model_file), ("--data", &args.data)],
            &[],
        )?;
    }
    let model = FittedModel::load(&args.model_file)?;
    let rows = Rows::read(&model, &args.data, || Ok(Target::None))?;
    let selected = select(args.backend.backend, &rows)?;
    let predictions = match &rows {
        Rows::Dense(dataset) => model.predict(selected.backend.as_ref(), dataset)?,
        Rows::Sparse(dataset) => model.predict(selected.backend.as_ref(), dataset)?,
    };
    let text = predictions_csv(&predictions, args.proba);
    match to_file {
        Some(out) => {
            downhill::output::write(out, text.as_bytes())?;
            log::info!(
                "wrote {} predictions to {}",
                predictions.rows(),
                out.display()
            );
        }
        None => out::print(&text)?,
    }
    Ok(())
}

/// One line per row: the value (linear) or the class, then the probabilities if asked.
fn predictions_csv(p: &Predictions, proba: bool) -> String {
    let mut out = String::new();
    let k = p.outputs();
    match (p.model(), proba) {
        (Model::Linear, _) => out.push_str("prediction\n"),
        (_, false) => out.push_str("class\n"),
        (Model::Logistic, true) => out.push_str("class,probability\n"),
        (Model::Softmax, true) => {
            out.push_str("class");
            for c in 0..k {
                let _ = write!(out, ",p{c}");
            }
            out.push('\n');
        }
    }
    match p.classes() {
        None => {
            for v in p.values() {
                let _ = writeln!(out, "{v}");
            }
        }
        Some(classes) => {
            let probabilities = p.probabilities();
            let columns = p.probability_columns();
            for (i, class) in classes.iter().enumerate() {
                let _ = write!(out, "{class}");
                if proba {
                    let row = &probabilities[i * columns..(i + 1) * columns];
                    // Logistic: P(y = 1) only; softmax: every class.
                    let shown = if p.model() == Model::Logistic {
                        &row[1..]
                    } else {
                        row
                    };
                    for v in shown {
                        let _ = write!(out, ",{v}");
                    }
                }
                out.push('\n');
            }
        }
    }
    out
}

/// Rows read for a model: dense columns, or sparse rows.
enum Rows {
    Dense(downhill::Dataset),
    Sparse(downhill::SparseDataset),
}

impl Rows {
    /// `data` as the model reads it, with the labels `target()` names (asked only of files
    /// with columns to choose, and of an `.npz`, whose labels are a `.npy`).
    fn read(
        model: &FittedModel,
        data: &Path,
        target: impl FnOnce() -> Result<Target, Error>,
    ) -> Result<Self, Error> {
        if !model.reads_sparse(data) {
            return Ok(Rows::Dense(model.read(data, target()?)?));
        }
        let target = match downhill::input::libsvm::is_libsvm(data) {
            true => Target::None,
            false => target()?,
        };
        Ok(Rows::Sparse(model.read_sparse(data, target)?))
    }

    fn rows(&self) -> usize {
        match self {
            Rows::Dense(d) => d.rows(),
            Rows::Sparse(s) => s.rows(),
        }
    }
}

/// The backend asked for; `auto` takes the CPU for sparse rows (as `fit` does).
fn select(kind: downhill::BackendKind, rows: &Rows) -> Result<downhill::Selected, Error> {
    let kind = match (kind, rows) {
        (downhill::BackendKind::Auto, Rows::Sparse(_)) => downhill::BackendKind::Cpu,
        (kind, _) => kind,
    };
    let selected = downhill::select(kind, Default::default())?;
    log::info!("backend: {}", selected.reason);
    Ok(selected)
}

pub fn score(args: ScoreArgs) -> Result<(), Error> {
    let model = FittedModel::load(&args.model_file)?;
    let target = || {
        let libsvm = downhill::input::libsvm::is_libsvm(&args.data);
        let fallback = model.target.clone().map(Target::Column).filter(|_| !libsvm);
        args.target.target_or(fallback).ok_or_else(|| {
            Error::option(
                "target",
                "(none)",
                format!(
                    "{} names no target column: give --target COLUMN (or --target-index J, or \
                     --target y.npy)",
                    args.model_file.display()
                ),
            )
        })
    };
    let rows = Rows::read(&model, &args.data, target)?;
    let selected = select(args.backend.backend, &rows)?;
    let e = match &rows {
        Rows::Dense(dataset) => model.score(selected.backend.as_ref(), dataset)?,
        Rows::Sparse(dataset) => model.score(selected.backend.as_ref(), dataset)?,
    };
    if args.backend.json {
        let mut out = json!({"rows": rows.rows(), "loss_fn": model.loss_fn, "loss": e.loss});
        if let Some(a) = e.accuracy {
            out["accuracy"] = json!(a);
        }
        if let Some(r2) = e.r2 {
            out["r2"] = json!(r2);
        }
        out::line(out)?;
    } else {
        let mut text = format!(
            "rows: {}\nloss ({}): {}\n",
            rows.rows(),
            model.loss_fn,
            e.loss
        );
        if let Some(a) = e.accuracy {
            let _ = writeln!(text, "accuracy: {a}");
        }
        if let Some(r2) = e.r2 {
            let _ = writeln!(text, "r2: {r2}");
        }
        out::print(&text)?;
    }
    Ok(())
}

pub fn grad(args: GradArgs) -> Result<(), Error> {
    let m = &args.model;
    let classes = m.classes_hint(Some(&args.weights))?;
    let spec = columns(
        args.target.required(&args.data)?,
        args.features.as_deref(),
        None,
    )?;
    let dataset = input::read(&args.data, &spec)?;
    let objective = dataset.objective(m.model, m.loss()?, classes)?;
    let params = params_file::read(
        &args.weights,
        m.model,
        dataset.features(),
        Some(objective.outputs()),
    )?;
    let selected = downhill::select(m.backend.backend, Default::default())?;
    log::info!("backend: {}", selected.reason);
    let grad = downhill::gradient(
        selected.backend.as_ref(),
        &dataset,
        objective,
        Some(&params),
    )?;
    let as_params = Params::new(
        dataset.features(),
        objective.outputs(),
        grad.weights,
        grad.bias,
    )?;
    let (grad_w, grad_b) = params_file::json_parts(m.model, &as_params);
    let out = json!({"loss": grad.loss, "grad_w": grad_w, "grad_b": grad_b});
    if m.backend.json {
        out::line(out)?;
    } else {
        out::line(format_args!(
            "loss: {}\ngrad_w: {grad_w}\ngrad_b: {grad_b}",
            grad.loss
        ))?;
    }
    Ok(())
}

//! The `downhill` command line: fit, grad, devices. Results go to stdout, progress and
//! errors to stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use downhill::backend::ClassWeights;
use downhill::backend::{self, BackendKind, Data};
use downhill::custom::{CustomLoss, LossKind};
use downhill::optim::Schedule;
use downhill::optim::UpdateRule;
use downhill::train::{LogEntry, OptimizerKind, StopReason};
use downhill::{
    Dataset, Error, Fit, Loss, Model, Objective, Params, Synthetic, Trainer, params_file,
};

#[derive(Parser)]
#[command(
    name = "downhill",
    version,
    about = "Linear, logistic and softmax regression by gradient descent on the GPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit a model by gradient descent.
    Fit(Box<FitArgs>),
    /// Print the loss and gradient at given parameters, over all rows.
    Grad(GradArgs),
    /// List the GPU adapters wgpu can see.
    Devices,
    /// Time epochs of logistic regression on every backend against the memory floor.
    Bench(BenchArgs),
}

#[derive(Args)]
struct BenchArgs {
    /// Problem shapes, ROWSxFEATURES, comma separated.
    #[arg(long, default_value = "2000000x64,200000x512", value_delimiter = ',', value_parser = parse_shape)]
    shapes: Vec<(usize, usize)>,
    /// Mini-batch sizes (on the first shape).
    #[arg(long, default_value = "1024,65536", value_delimiter = ',')]
    batch_sizes: Vec<usize>,
    /// Timed full-batch epochs per backend and shape (mini-batch: a third of them).
    #[arg(long, default_value_t = 9)]
    reps: usize,
    /// Backends to measure: cpu, gpu (any adapter wgpu selects, software ones included).
    #[arg(long, default_value = "cpu,gpu", value_delimiter = ',')]
    backends: Vec<String>,
    /// Skip the numpy baseline (otherwise run with DOWNHILL_PYTHON or python3, if it has numpy).
    #[arg(long)]
    no_numpy: bool,
    /// Print the measurements as JSON.
    #[arg(long)]
    json: bool,
}

fn parse_shape(s: &str) -> Result<(usize, usize), String> {
    let (rows, features) = s
        .split_once('x')
        .ok_or_else(|| format!("shape {s:?}: expected ROWSxFEATURES, e.g. 2000000x64"))?;
    let number = |t: &str| {
        t.parse::<usize>()
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| format!("shape {s:?}: {t:?} is not a positive integer"))
    };
    Ok((number(rows)?, number(features)?))
}

#[derive(Args)]
struct ModelArgs {
    /// linear, logistic or softmax.
    #[arg(long, value_parser = parse::<Model>)]
    model: Model,
    /// mse, bce or ce. Default: linear → mse, logistic → bce, softmax → ce.
    #[arg(long, value_parser = parse::<Loss>, conflicts_with = "loss_expr")]
    loss: Option<Loss>,
    /// A custom per-row loss, compiled to the kernels: of z and y (linear, logistic), or a
    /// per-class term of p = softmax(z) and t = [class = label] (softmax). Numbers,
    /// + - * / ^, exp ln sqrt tanh sigmoid relu abs. E.g. "sqrt(1 + (z - y)^2) - 1".
    #[arg(long, allow_hyphen_values = true)]
    loss_expr: Option<String>,
    /// Softmax classes k. Default: from the parameter file, else max label + 1
    /// (3 for synthetic data).
    #[arg(long)]
    classes: Option<usize>,
    /// auto (a hardware GPU if there is one, else the CPU), gpu, cpu or reference.
    #[arg(long, default_value = "auto", value_parser = parse::<BackendKind>)]
    backend: BackendKind,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct FitArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// CSV file with a header row.
    #[arg(long, requires = "target", conflicts_with_all = ["rows", "features"])]
    data: Option<PathBuf>,
    /// The label column of --data; every other column is a feature.
    #[arg(long, requires = "data")]
    target: Option<String>,
    /// Rows of a synthetic problem (instead of --data).
    #[arg(long, requires = "features")]
    rows: Option<usize>,
    /// Features of a synthetic problem.
    #[arg(long, requires = "rows")]
    features: Option<usize>,
    /// Learning rate η.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    lr: f64,
    /// Passes over the data.
    #[arg(long, default_value_t = 100)]
    epochs: u64,
    /// Rows per step. Default: all rows (full batch).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Seed of the synthetic data and of the mini-batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Starting parameters (a parameter file). Default: zeros.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Write the fitted parameters here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Evaluate and log the loss every N epochs.
    #[arg(long, default_value_t = 10)]
    log_every: u64,
    /// Most bytes of rows (X and y) to hold in GPU memory; more stream through it each
    /// epoch. Default: all the device allows.
    #[arg(long)]
    max_device_bytes: Option<u64>,
    #[command(flatten)]
    training: TrainingArgs,
}

/// How gradients become steps, and when to stop (issue-4 options).
#[derive(Args)]
struct TrainingArgs {
    /// sgd, momentum, nesterov or adam (PyTorch's update rules).
    #[arg(long, default_value = "sgd", value_parser = parse::<OptimizerKind>)]
    optimizer: OptimizerKind,
    /// μ of momentum and nesterov. Default 0.9.
    #[arg(long)]
    momentum: Option<f64>,
    /// Adam's β₁. Default 0.9.
    #[arg(long)]
    beta1: Option<f64>,
    /// Adam's β₂. Default 0.999.
    #[arg(long)]
    beta2: Option<f64>,
    /// Adam's ε (outside the square root). Default 1e-8.
    #[arg(long)]
    eps: Option<f64>,
    /// λ₂ of the penalty (λ₂/2)‖W‖² (scikit-learn's C: λ₂ = 1/(C·n)).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    l2: f64,
    /// λ₁ of the penalty λ₁‖W‖₁ (soft-threshold after each step; with --l2, elastic net).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    l1: f64,
    /// constant, step:EVERY:GAMMA, exp:GAMMA, cosine or invscaling:POWER (per epoch).
    #[arg(long, default_value = "constant", value_parser = parse::<Schedule>)]
    lr_schedule: Schedule,
    /// Epochs of linear learning-rate warmup.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// Stop when the loss has not improved by more than this for --patience epochs.
    #[arg(long, allow_negative_numbers = true)]
    tol: Option<f64>,
    /// Epochs without improvement before stopping (default 5 when stopping early).
    #[arg(long)]
    patience: Option<u64>,
    /// Hold out this seeded fraction of rows; stop on their loss and keep the best
    /// parameters.
    #[arg(long, allow_negative_numbers = true)]
    validation_fraction: Option<f64>,
    /// Standardize features for the descent (reported parameters stay on the raw scale).
    #[arg(long)]
    standardize: bool,
    /// `balanced`: weight each class by n / (classes · n_class).
    #[arg(long)]
    class_weight: Option<String>,
    /// A CSV column of per-row sample weights (not a feature).
    #[arg(long, requires = "data")]
    weight_column: Option<String>,
}

impl TrainingArgs {
    fn apply(&self, mut t: Trainer) -> Result<Trainer, Error> {
        t = t
            .optimizer(self.optimizer)
            .l2(self.l2)
            .l1(self.l1)
            .schedule(self.lr_schedule)
            .warmup(self.warmup)
            .standardize(self.standardize);
        let options = [
            (
                self.momentum,
                Trainer::momentum as fn(Trainer, f64) -> Trainer,
            ),
            (self.beta1, Trainer::beta1),
            (self.beta2, Trainer::beta2),
            (self.eps, Trainer::eps),
            (self.tol, Trainer::tol),
            (self.validation_fraction, Trainer::validation_fraction),
        ];
        for (value, set) in options {
            if let Some(v) = value {
                t = set(t, v);
            }
        }
        if let Some(p) = self.patience {
            t = t.patience(p);
        }
        match self.class_weight.as_deref() {
            None => {}
            Some("balanced") => t = t.class_weights(ClassWeights::Balanced),
            Some(other) => return Err(Error::option("class weight", other, "expected balanced")),
        }
        t.validate()?;
        Ok(t)
    }
}

#[derive(Args)]
struct GradArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// CSV file with a header row.
    #[arg(long)]
    data: PathBuf,
    /// The label column of --data.
    #[arg(long)]
    target: String,
    /// The parameters (a parameter file).
    #[arg(long)]
    weights: PathBuf,
}

impl ModelArgs {
    /// --loss, or the compiled --loss-expr.
    fn loss(&self) -> Result<Option<Loss>, Error> {
        let Some(expr) = &self.loss_expr else {
            return Ok(self.loss);
        };
        let kind = match self.model {
            Model::Softmax => LossKind::Class,
            _ => LossKind::Output,
        };
        Ok(Some(CustomLoss::parse(expr, kind)?.register()))
    }
}

fn parse<T: std::str::FromStr<Err = Error>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: Error| e.to_string())
}

fn main() -> ExitCode {
    // Mesa's Vulkan drivers print "error: XDG_RUNTIME_DIR is invalid or not set" when it is
    // unset, which reads like one of our errors. Nothing here uses it; point it at the
    // temporary directory. Safe: no other thread exists yet.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Fit(args) => fit(*args),
        Command::Grad(args) => grad(args),
        Command::Devices => devices(),
        Command::Bench(args) => bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The softmax class count: --classes, else the parameter file's, else from the labels.
fn classes_hint(args: &ModelArgs, params: Option<&Path>) -> Result<Option<usize>, Error> {
    match (args.model, args.classes, params) {
        (Model::Softmax, None, Some(path)) => params_file::softmax_classes(path),
        _ => Ok(args.classes),
    }
}

fn fit(args: FitArgs) -> Result<(), Error> {
    let mut trainer = Trainer::new()
        .lr(args.lr)
        .epochs(args.epochs)
        .seed(args.seed)
        .log_every(args.log_every);
    if let Some(b) = args.batch_size {
        trainer = trainer.batch_size(b);
    }
    let mut trainer = args.training.apply(trainer)?;
    let m = &args.model;
    let classes = classes_hint(m, args.init.as_deref())?;

    let dataset;
    let (data, objective, synthetic) = match (&args.data, &args.target, args.rows, args.features) {
        (Some(path), Some(target), _, _) => {
            dataset =
                Dataset::read_csv_weighted(path, target, args.training.weight_column.as_deref())?;
            let objective = dataset.objective(m.model, m.loss()?, classes)?;
            (Data::Host(&dataset), objective, None)
        }
        (None, _, Some(rows), Some(features)) => {
            let objective = Objective::new(m.model, m.loss()?, classes.unwrap_or(3))?;
            let synthetic = Synthetic::new(rows, features, objective, args.seed)?;
            (Data::Synthetic(synthetic), objective, Some(synthetic))
        }
        _ => {
            return Err(Error::option(
                "data",
                "(none)",
                "give --data FILE.csv --target COL, or --rows N --features D for a synthetic problem",
            ));
        }
    };
    let (rows, features) = (data.rows(), data.features());
    if let Some(path) = &args.init {
        trainer = trainer.init(params_file::read(
            path,
            m.model,
            features,
            Some(objective.outputs()),
        )?);
    }

    let gpu_options = downhill::gpu::GpuOptions {
        max_device_bytes: args.max_device_bytes,
        ..Default::default()
    };
    let selected = backend::select(m.backend, gpu_options)?;
    eprintln!("backend: {}", selected.reason);
    let mut session = selected.backend.open(data, objective)?;
    let device = session.describe();
    eprintln!("{objective} on {rows} rows × {features} features");
    let result = trainer.fit_observed(session.as_mut(), &mut |entry| {
        eprintln!("epoch {}: {}", entry.epoch, describe_entry(entry));
    });
    let fit = match result {
        Ok(fit) => fit,
        Err(Error::Diverged {
            epoch,
            lr,
            last_finite,
        }) => {
            if let Some(out) = &args.out {
                params_file::write(out, &objective, &last_finite)?;
                eprintln!("wrote the last finite parameters to {}", out.display());
            }
            return Err(Error::Diverged {
                epoch,
                lr,
                last_finite,
            });
        }
        Err(e) => return Err(e),
    };
    if let Some(out) = &args.out {
        params_file::write(out, &objective, &fit.params)?;
    }
    let truth = synthetic.map(|s| s.true_params());
    let report = FitReport {
        objective,
        rule: trainer.update_rule(),
        backend: selected.backend.name(),
        device: &device,
        rows,
        features,
        fit: &fit,
        truth: truth.as_ref(),
    };
    if m.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
    }
    Ok(())
}

struct FitReport<'a> {
    objective: Objective,
    rule: UpdateRule,
    backend: &'static str,
    device: &'a str,
    rows: usize,
    features: usize,
    fit: &'a Fit,
    truth: Option<&'a Params>,
}

impl FitReport<'_> {
    fn json(&self) -> Value {
        let (weights, bias) = params_file::json_parts(self.objective.model(), &self.fit.params);
        let mut out = json!({
            "model": self.objective.model(),
            "loss_fn": self.objective.loss(),
            "backend": self.backend,
            "device": self.device,
            "rows": self.rows,
            "features": self.features,
            "classes": self.objective.outputs(),
            "weights": weights,
            "bias": bias,
            "loss": self.fit.loss,
            "history": self.fit.history,
            "history_epochs": self.fit.history_epochs,
            "epochs": self.fit.epochs,
            "train_seconds": self.fit.train_seconds,
            "optimizer": self.rule.optimizer.name(),
            "stop_reason": match self.fit.stop {
                StopReason::Epochs => "epochs",
                StopReason::NoImprovement { .. } => "no_improvement",
            },
            "stopped_epoch": self.fit.epochs,
            "metrics": entry_json(&self.fit.last),
            "metrics_history": self.fit.log.iter().map(entry_json).collect::<Vec<_>>(),
            "training_rows": self.fit.configured.training_rows,
            "held_out_rows": self.fit.configured.held_out_rows,
        });
        if let StopReason::NoImprovement { best_epoch } = self.fit.stop {
            out["best_epoch"] = json!(best_epoch);
        }
        let column = |f: &dyn Fn(&LogEntry) -> Option<f64>| -> Value {
            self.fit
                .log
                .iter()
                .map(|e| json!(f(e)))
                .collect::<Vec<_>>()
                .into()
        };
        if self.fit.last.validation.is_some() {
            out["val_history"] = column(&|e| e.validation.map(|v| v.loss));
        }
        match self.objective.model() {
            Model::Linear => out["r2_history"] = column(&|e| e.training.r2),
            _ => out["accuracy_history"] = column(&|e| e.training.accuracy),
        }
        if let Some(st) = &self.fit.configured.standardization {
            out["standardization"] = json!({"mean": st.mean, "scale": st.scale});
        }
        if let Some(cw) = &self.fit.configured.class_weights {
            out["class_weights"] = json!(cw);
        }
        if let Some(truth) = self.truth {
            let distance = self.fit.params.distance(truth);
            out["distance_to_truth"] = json!(distance);
            out["relative_distance_to_truth"] = json!(distance / truth.norm());
        }
        out
    }

    fn text(&self) -> String {
        let f = self.fit;
        let mut s = format!(
            "{} on {} rows × {} features\nbackend: {}\nepochs: {} ({}), {}, descent loop: {:.3} s\n",
            self.objective,
            self.rows,
            self.features,
            self.device,
            f.epochs,
            f.stop.describe(),
            describe_entry(&f.last),
            f.train_seconds
        );
        s += &format!("weights: {}\n", preview(f.params.weights()));
        s += &format!("bias: {}\n", preview(f.params.bias()));
        if let Some(truth) = self.truth {
            let distance = f.params.distance(truth);
            s += &format!(
                "distance to the true parameters: {distance:.6} ({:.3}% of their norm)\n",
                100.0 * distance / truth.norm()
            );
        }
        s
    }
}

/// `loss 0.123456, accuracy 0.9000, val_loss …` for the progress lines and the summary.
fn describe_entry(e: &LogEntry) -> String {
    let mut s = format!("loss {:.6}", e.training.loss);
    let metrics = |s: &mut String, prefix: &str, v: &downhill::backend::Evaluation| {
        if let Some(a) = v.accuracy {
            *s += &format!(", {prefix}accuracy {a:.4}");
        }
        if let Some(r2) = v.r2 {
            *s += &format!(", {prefix}r2 {r2:.4}");
        }
    };
    metrics(&mut s, "", &e.training);
    if let Some(v) = &e.validation {
        s += &format!(", val_loss {:.6}", v.loss);
        metrics(&mut s, "val_", v);
    }
    s
}

/// One logged epoch as JSON: loss and metrics, on training and held-out rows.
fn entry_json(e: &LogEntry) -> Value {
    let mut v = json!({"epoch": e.epoch, "loss": e.training.loss});
    let mut put = |prefix: &str, ev: &downhill::backend::Evaluation| {
        if let Some(a) = ev.accuracy {
            v[format!("{prefix}accuracy")] = json!(a);
        }
        if let Some(r2) = ev.r2 {
            v[format!("{prefix}r2")] = json!(r2);
        }
    };
    put("", &e.training);
    if let Some(val) = &e.validation {
        put("val_", val);
        v["val_loss"] = json!(val.loss);
    }
    v
}

/// Up to 12 numbers, then how many more there are.
fn preview(values: &[f64]) -> String {
    const SHOWN: usize = 12;
    let shown: Vec<String> = values
        .iter()
        .take(SHOWN)
        .map(|v| format!("{v:.6}"))
        .collect();
    let more = values.len().saturating_sub(SHOWN);
    if more == 0 {
        format!("[{}]", shown.join(", "))
    } else {
        format!(
            "[{}, … {more} more (see --json or --out)]",
            shown.join(", ")
        )
    }
}

fn grad(args: GradArgs) -> Result<(), Error> {
    let m = &args.model;
    let classes = classes_hint(m, Some(&args.weights))?;
    let dataset = Dataset::read_csv(&args.data, &args.target)?;
    let objective = dataset.objective(m.model, m.loss()?, classes)?;
    let params = params_file::read(
        &args.weights,
        m.model,
        dataset.features(),
        Some(objective.outputs()),
    )?;
    let selected = backend::select(m.backend, Default::default())?;
    eprintln!("backend: {}", selected.reason);
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
    if m.json {
        println!("{out}");
    } else {
        println!("loss: {}\ngrad_w: {grad_w}\ngrad_b: {grad_b}", grad.loss);
    }
    Ok(())
}

fn devices() -> Result<(), Error> {
    let adapters = downhill::gpu::adapters();
    if adapters.is_empty() {
        println!(
            "no GPU adapters found (on Debian, apt-get install mesa-vulkan-drivers libvulkan1 \
             gives a software one)"
        );
    }
    for (i, a) in adapters.iter().enumerate() {
        println!("[{i}] {a}");
    }
    Ok(())
}

fn bench(args: BenchArgs) -> Result<(), Error> {
    use downhill::bench::{self, BenchOptions, Measurement};
    for b in &args.backends {
        if b != "cpu" && b != "gpu" {
            return Err(Error::option("backend", b, "bench measures cpu and gpu"));
        }
    }
    if args.reps == 0 {
        return Err(Error::option("reps", 0, "must be at least 1"));
    }
    let gpu = if args.backends.iter().any(|b| b == "gpu") {
        match downhill::gpu::Gpu::open() {
            Ok(gpu) => Some(gpu),
            Err(e) => {
                eprintln!("no GPU measurements: {e}");
                None
            }
        }
    } else {
        None
    };
    let python = if args.no_numpy {
        None
    } else {
        bench::find_python()
    };
    if !args.no_numpy && python.is_none() {
        eprintln!("no numpy baseline: set DOWNHILL_PYTHON to a Python with numpy");
    }
    let options = BenchOptions {
        shapes: args.shapes.clone(),
        batch_sizes: args.batch_sizes.clone(),
        reps: args.reps,
        cpu: args.backends.iter().any(|b| b == "cpu"),
        gpu,
        python,
    };
    let mut seen = Vec::new();
    let all = bench::run(&options, &mut |m: &Measurement| {
        eprintln!("{}", bench_line(m, &seen));
        seen.push(m.clone());
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all).expect("numbers"));
    } else {
        println!(
            "{:<7} {:>14} {:>9} {:>11} {:>8} {:>11} {:>9} {:>9}",
            "backend", "shape", "mode", "s/epoch", "GB/s", "floor s", "/floor", "/numpy"
        );
        for m in &all {
            println!("{}", bench_line(m, &all));
        }
        let devices: Vec<String> = all
            .iter()
            .map(|m| format!("{}: {}", m.backend, m.device))
            .collect();
        let mut devices = devices;
        devices.dedup();
        for d in devices {
            println!("  {d}");
        }
        println!(
            "  medians of the timed epochs; the floor is one streaming read of the same bytes on the same device"
        );
    }
    Ok(())
}

/// One table line; the numpy ratio uses numpy's line for the shape when it came earlier.
fn bench_line(
    m: &downhill::bench::Measurement,
    earlier: &[downhill::bench::Measurement],
) -> String {
    let numpy = earlier
        .iter()
        .chain(std::iter::once(m))
        .find(|o| o.backend == "numpy" && o.rows == m.rows && o.features == m.features)
        .map(|o| o.epoch());
    let floor = m.floor();
    format!(
        "{:<7} {:>14} {:>9} {:>11.4} {:>8.2} {:>11} {:>9} {:>9}",
        m.backend,
        format!("{}x{}", m.rows, m.features),
        m.mode,
        m.epoch(),
        m.gigabytes_per_second(),
        floor.map_or("-".into(), |f| format!("{f:.4}")),
        floor.map_or("-".into(), |f| format!("{:.2}", m.epoch() / f)),
        match numpy {
            Some(n) if m.backend != "numpy" && m.mode == "full" => format!("{:.2}", m.epoch() / n),
            _ => "-".into(),
        },
    )
}

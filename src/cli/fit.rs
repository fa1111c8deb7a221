//! `downhill fit`: options, the run, and the report.

use std::path::PathBuf;

use clap::Args;

use downhill::backend::{ClassWeights, Data};
use downhill::error::count;
use downhill::input::{self, Target};
use downhill::optim::Schedule;
use downhill::train::{Interrupt, OptimizerKind, Solver, StopReason};
use downhill::{
    Dataset, Error, FittedModel, Model, Objective, Params, SparseDataset, Synthetic, Trainer,
    params_file, plot,
};

use super::args::{ModelArgs, TargetArgs, columns, parse, target_name};
use super::out;
use super::progress::{FitProgress, stop_on_ctrl_c};
use super::sparse::{self, SparseArgs};

#[derive(Args)]
pub struct FitArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Data file: .csv (with a header row), .npy (X as a 2-D array), .parquet; sparse rows
    /// as libsvm text (.svm, .svmlight, .libsvm: labels first) or a scipy CSR matrix (.npz,
    /// from scipy.sparse.save_npz, with --target y.npy).
    #[arg(long, conflicts_with = "rows")]
    data: Option<PathBuf>,
    #[command(flatten)]
    sparse: SparseArgs,
    #[command(flatten)]
    target: TargetArgs,
    /// With --data: the feature columns, comma separated (default: every column but the
    /// target and the weights). With --rows: the number of synthetic features.
    #[arg(long)]
    features: Option<String>,
    /// Rows of a synthetic problem (instead of --data).
    #[arg(long, requires = "features")]
    rows: Option<usize>,
    /// With --rows: sparse synthetic rows, each keeping this share of its cells
    /// (round(p·d) non-zeros a row, at least 1), with known true parameters.
    #[arg(long, requires = "rows")]
    density: Option<f64>,
    /// Learning rate η of gradient descent. Default 0.1.
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Passes over the data of gradient descent. Default 100.
    #[arg(long)]
    epochs: Option<u64>,
    /// Rows per step. Default: all rows (full batch).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Seed of the synthetic data and of the mini-batch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Starting parameters (a parameter file). Default: zeros.
    #[arg(long)]
    init: Option<PathBuf>,
    /// Write the model here: the parameters, feature names, target and standardization.
    /// Written on Ctrl-C too, with the last parameters.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write a checkpoint (parameters, optimizer and random state, log; a solver's
    /// iterate and memory) here every --checkpoint-every epochs (a solver's iterations), on
    /// Ctrl-C and at a solver's --max-iter, atomically.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Epochs (a solver's iterations) between checkpoints.
    #[arg(long, default_value_t = 10, requires = "checkpoint")]
    checkpoint_every: u64,
    /// Continue from a checkpoint of the same command line, to the same result as a fit
    /// that never stopped.
    #[arg(long, conflicts_with = "init")]
    resume: Option<PathBuf>,
    /// Draw the loss against the epoch into this PNG.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Animate the fitted line or sigmoid over the logged epochs into this GIF
    /// (one-feature linear and logistic problems).
    #[arg(long)]
    animate: Option<PathBuf>,
    /// Evaluate and log the loss every N epochs.
    #[arg(long, default_value_t = 10)]
    log_every: u64,
    /// Split the rows across several devices: all, adapter indices as `downhill devices`
    /// lists them (an index may repeat), and cpu, comma separated. Instead of --backend.
    #[arg(long, conflicts_with = "backend")]
    devices: Option<String>,
    /// Most bytes of rows (X and y) to hold in GPU memory; more stream through it each
    /// epoch. Default: all the device allows.
    #[arg(long)]
    max_device_bytes: Option<u64>,
    /// Before descending, compare the backend's loss and gradient with the f64 reference's
    /// on the same rows (all of them up to 100 000, a fixed sample of 100 000 above), at
    /// the starting parameters and at a fixed point; stop with an error if they differ
    /// beyond f32 rounding (10⁻⁴ relative).
    #[arg(long)]
    verify: bool,
    #[command(flatten)]
    training: TrainingArgs,
}

/// How the fit reaches its parameters, and when it stops.
#[derive(Args)]
pub struct TrainingArgs {
    /// gd (gradient descent), newton (exact Hessian), newton-cg (truncated Newton), lbfgs
    /// (OWL-QN with --l1) or auto: gd when a descent option is given (--lr, --epochs,
    /// --optimizer, --batch-size, --momentum, --beta1, --beta2, --eps, --lr-schedule,
    /// --warmup, --patience, --validation-fraction) or a descent's checkpoint is written
    /// or resumed (a solver's checkpoint resumes its solver), else newton up to 2048
    /// parameters where the backend has Hessian passes, else lbfgs.
    #[arg(long, default_value = "auto", value_parser = parse::<Solver>)]
    solver: Solver,
    /// Solver iterations at most. Default: 100 for newton and newton-cg, 1000 for lbfgs.
    #[arg(long)]
    max_iter: Option<u64>,
    /// Curvature pairs L-BFGS keeps.
    #[arg(long, default_value_t = 10)]
    lbfgs_memory: usize,
    /// sgd, momentum, nesterov or adam (PyTorch's update rules), for gd. Default sgd.
    #[arg(long, value_parser = parse::<OptimizerKind>)]
    optimizer: Option<OptimizerKind>,
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
    /// Default constant.
    #[arg(long, value_parser = parse::<Schedule>)]
    lr_schedule: Option<Schedule>,
    /// Epochs of linear learning-rate warmup. Default 0.
    #[arg(long)]
    warmup: Option<u64>,
    /// gd: stop when the loss has not improved by more than this for --patience epochs.
    /// The solvers: converged when the largest entry of the objective's gradient (the
    /// gradient of the mean loss plus the penalty) is at most this; default 1e-6.
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
    /// Fit z = x·W without a bias (it stays 0), as scikit-learn's fit_intercept=False.
    #[arg(long)]
    no_intercept: bool,
    /// `balanced`: weight each class by n / (classes · n_class).
    #[arg(long)]
    class_weight: Option<String>,
    /// A CSV column of per-row sample weights (not a feature).
    #[arg(long, requires = "data")]
    weight_column: Option<String>,
}

impl TrainingArgs {
    pub fn apply(&self, mut t: Trainer) -> Result<Trainer, Error> {
        t = t
            .solver(self.solver)
            .lbfgs_memory(self.lbfgs_memory)
            .l2(self.l2)
            .l1(self.l1)
            .standardize(self.standardize)
            .fit_intercept(!self.no_intercept);
        if let Some(o) = self.optimizer {
            t = t.optimizer(o);
        }
        if let Some(s) = self.lr_schedule {
            t = t.schedule(s);
        }
        if let Some(w) = self.warmup {
            t = t.warmup(w);
        }
        if let Some(m) = self.max_iter {
            t = t.max_iter(m);
        }
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

/// With several processes (MPI), `selected` becomes this rank's worker of a run across
/// all of them.
#[cfg(feature = "mpi")]
fn across_processes(
    selected: downhill::Selected,
    processes: super::Processes,
) -> downhill::Selected {
    use downhill::backend::mpi::Mpi;
    use downhill::backend::parallel::Parallel;
    if processes.size == 1 {
        return selected;
    }
    let reason = format!(
        "{}, rank {} of {}",
        selected.reason, processes.rank, processes.size
    );
    let parallel = Parallel::new(vec![selected.backend]).across(Box::new(Mpi));
    downhill::Selected::plain(Box::new(parallel), reason)
}

#[cfg(not(feature = "mpi"))]
fn across_processes(selected: downhill::Selected, _: super::Processes) -> downhill::Selected {
    selected
}

/// The rows to fit: a file read into memory (dense, or sparse rows), or a
/// synthetic problem (generated by the backend, or as sparse rows with their truth).
enum Source {
    File { dataset: Dataset, target: Target },
    Sparse(SparseDataset),
    Synthetic(Synthetic),
    SparseSynthetic { rows: SparseDataset, truth: Params },
}

impl FitArgs {
    fn source(&self) -> Result<(Source, Objective), Error> {
        let m = &self.model;
        let classes = m.classes_hint(self.init.as_deref())?;
        let sparse = sparse::read(
            self.data.as_deref(),
            &self.sparse,
            &self.target,
            self.training.weight_column.as_deref(),
            self.features.as_deref(),
            m.model,
        )?;
        if let Some(dataset) = sparse {
            let objective = dataset.objective(m.model, m.loss()?, classes)?;
            return Ok((Source::Sparse(dataset), objective));
        }
        match (&self.data, self.rows) {
            (Some(path), _) => {
                let target = self.target.required(path)?;
                let spec = columns(
                    target.clone(),
                    self.features.as_deref(),
                    self.training.weight_column.as_deref(),
                )?;
                let started = std::time::Instant::now();
                let dataset = input::read(path, &spec)?;
                log::info!(
                    "read {} × {} from {} in {:.2} s",
                    count(dataset.rows(), "row"),
                    count(dataset.features(), "feature"),
                    path.display(),
                    started.elapsed().as_secs_f64()
                );
                let objective = dataset.objective(m.model, m.loss()?, classes)?;
                Ok((Source::File { dataset, target }, objective))
            }
            (None, Some(rows)) => {
                if self.target.target_or(None).is_some() || self.training.weight_column.is_some() {
                    return Err(Error::option(
                        "target",
                        "(synthetic data)",
                        "--target, --target-index and --weight-column choose columns of --data",
                    ));
                }
                let text = self.features.as_deref().unwrap_or("");
                let features = text.parse::<usize>().map_err(|_| {
                    Error::option(
                        "features",
                        text,
                        "with --rows, --features is the number of synthetic features",
                    )
                })?;
                let objective = Objective::new(m.model, m.loss()?, classes.unwrap_or(3))?;
                let synthetic = Synthetic::new(rows, features, objective, self.seed)?;
                if let Some(density) = self.density {
                    let started = std::time::Instant::now();
                    let rows = synthetic.sparse_rows(density)?;
                    log::info!(
                        "generated {} sparse rows ({} non-zeros) in {:.2} s",
                        rows.rows(),
                        rows.nnz(),
                        started.elapsed().as_secs_f64()
                    );
                    let truth = synthetic.sparse_true_params(density)?;
                    return Ok((Source::SparseSynthetic { rows, truth }, objective));
                }
                Ok((Source::Synthetic(synthetic), objective))
            }
            (None, None) => Err(Error::option(
                "data",
                "(none)",
                "give --data FILE (.csv, .npy, .parquet) with --target COL, or --rows N \
                 --features D for a synthetic problem",
            )),
        }
    }

    fn trainer(&self, interrupt: Interrupt) -> Result<Trainer, Error> {
        let mut trainer = Trainer::new()
            .seed(self.seed)
            .log_every(self.log_every)
            .interrupt(interrupt);
        if let Some(lr) = self.lr {
            trainer = trainer.lr(lr);
        }
        if let Some(e) = self.epochs {
            trainer = trainer.epochs(e);
        }
        if let Some(b) = self.batch_size {
            trainer = trainer.batch_size(b);
        }
        self.training.apply(trainer)
    }

    /// Refuses, before any work, outputs that would land on an input or on each other and
    /// picture names whose format is not written.
    fn check_files(&self) -> Result<(), Error> {
        let outputs: Vec<(&'static str, &std::path::Path)> = [
            ("--out", &self.out),
            ("--checkpoint", &self.checkpoint),
            ("--plot", &self.plot),
            ("--animate", &self.animate),
        ]
        .into_iter()
        .filter_map(|(name, p)| p.as_deref().map(|p| (name, p)))
        .collect();
        let target_file = self
            .target
            .target
            .as_deref()
            .map(std::path::Path::new)
            .filter(|p| p.extension().is_some_and(|e| e == "npy"));
        let inputs: Vec<(&'static str, &std::path::Path)> = [
            ("--data", self.data.as_deref()),
            ("--target", target_file),
            ("--init", self.init.as_deref()),
            ("--resume", self.resume.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, p)| p.map(|p| (name, p)))
        .collect();
        downhill::output::check_outputs(&outputs, &inputs, &[("--checkpoint", "--resume")])?;
        let host_only = matches!(
            self.model.backend.backend,
            downhill::BackendKind::Cpu | downhill::BackendKind::Reference
        ) && self.devices.is_none();
        let cpu_devices = self
            .devices
            .as_deref()
            .is_some_and(|d| d.split(',').all(|p| p.trim() == "cpu"));
        if let Some(bytes) = self.max_device_bytes
            && (host_only || cpu_devices)
        {
            return Err(Error::option(
                "max-device-bytes",
                bytes,
                "limits the GPU's memory for rows; the CPU backend holds them in host memory",
            ));
        }
        if let Some(path) = &self.plot {
            plot::Format::of(path, plot::PLOT_FORMATS, "plot")?;
        }
        if let Some(path) = &self.animate {
            plot::Format::of(path, plot::ANIMATION_FORMATS, "animate")?;
        }
        Ok(())
    }

    /// Refuses an animation the data cannot make, before any work is done.
    fn check_animation(&self, objective: &Objective, features: usize) -> Result<(), Error> {
        let Some(path) = &self.animate else {
            return Ok(());
        };
        let problem = if objective.model() == Model::Softmax {
            Some("the animation draws linear and logistic models (a line or a sigmoid)".into())
        } else if features != 1 {
            Some(format!(
                "the animation draws one-feature problems; this one has {}",
                count(features, "feature")
            ))
        } else {
            None
        };
        match problem {
            Some(message) => Err(Error::option("animate", path.display(), message)),
            None => Ok(()),
        }
    }
}

pub fn fit(args: FitArgs, quiet: bool, processes: super::Processes) -> Result<(), Error> {
    args.check_files()?;
    let interrupt = Interrupt::new();
    let mut trainer = args.trainer(interrupt.clone())?;
    let (source, objective) = args.source()?;
    let m = &args.model;
    let data = match &source {
        Source::File { dataset, .. } => Data::Host(dataset),
        Source::Sparse(dataset) | Source::SparseSynthetic { rows: dataset, .. } => {
            Data::Sparse(dataset)
        }
        Source::Synthetic(s) => Data::Synthetic(*s),
    };
    let (rows, features) = (data.rows(), data.features());
    args.check_animation(&objective, features)?;
    if let Some(path) = &args.checkpoint
        && processes.writes()
    {
        trainer = trainer.checkpoint(path, args.checkpoint_every);
    }
    if let Some(path) = &args.resume {
        trainer = trainer.resume(downhill::checkpoint::Checkpoint::load(path)?);
    }
    if args.checkpoint.is_some() || args.resume.is_some() {
        trainer = trainer.data_id(data.fingerprint());
    }
    let init = match &args.init {
        Some(path) => Some(params_file::read(
            path,
            m.model,
            features,
            Some(objective.outputs()),
        )?),
        None => None,
    };
    if let Some(params) = &init {
        trainer = trainer.init(params.clone());
    }
    let gpu_options = downhill::gpu::GpuOptions {
        max_device_bytes: args.max_device_bytes,
        ..Default::default()
    };
    // `auto` takes the CPU for sparse rows: exact, and no real GPU has timed the GPU's
    // sparse passes against it yet (`--backend gpu` runs them).
    let kind = match (m.backend.backend, &data) {
        (downhill::BackendKind::Auto, Data::Sparse(_)) => downhill::BackendKind::Cpu,
        (kind, _) => kind,
    };
    let selected = match &args.devices {
        Some(spec) => downhill::select_devices(spec, gpu_options)?,
        None => downhill::select(kind, gpu_options)?.with_fallbacks(&data),
    };
    let selected = across_processes(selected, processes);
    log::info!("backend: {}", selected.reason);
    let (mut session, notices) = selected.open(data.clone(), objective)?;
    for notice in notices {
        log::warn!("{notice}");
    }
    let device = session.describe();
    if args.max_device_bytes.is_some() && !device.contains("gpu") {
        log::warn!("--max-device-bytes has no effect on {device}: it limits a GPU's memory");
    }
    log::info!(
        "{objective} on {} × {}",
        count(rows, "row"),
        count(features, "feature")
    );
    let verified = if args.verify {
        // The fit's own session when it holds few enough rows, else one on the sample.
        let verified = if rows <= downhill::verify::SAMPLE_ROWS {
            downhill::verify::verify_session(
                session.as_mut(),
                &data,
                objective,
                init.as_ref(),
                &device,
            )?
        } else {
            downhill::verify::verify(selected.backend.as_ref(), &data, objective, init.as_ref())?
        };
        log::info!(
            "verified against the f64 reference on {} rows: loss within {:.1e}, gradient \
             within {:.1e} of its largest entry",
            verified.rows,
            verified.loss,
            verified.gradient
        );
        Some(verified)
    } else {
        None
    };

    // Across processes, every rank must stop at the same step: Ctrl-C ends them all.
    if processes.size == 1 {
        stop_on_ctrl_c(&interrupt);
    }
    let writes = processes.writes();
    let (solver, solver_why) = trainer.chosen_solver(session.as_ref());
    let length = match solver {
        Solver::Gd => args.epochs.unwrap_or(100),
        _ => trainer.max_iterations(solver),
    };
    let mut progress = FitProgress::new(length, rows, quiet || !writes, args.animate.is_some());
    let result = trainer.fit_with(session.as_mut(), &mut progress);
    progress.finish();
    // The model as a file gives it: with the columns the rows came from.
    let with_columns = |mut model: FittedModel| -> FittedModel {
        match &source {
            Source::File { dataset, target } => {
                model.features = Some(dataset.feature_names().to_vec());
                model.target = target_name(target);
                model
            }
            Source::Sparse(dataset) => model.with_sparse(dataset),
            Source::Synthetic(_) | Source::SparseSynthetic { .. } => model,
        }
    };
    let fit = match result {
        Ok(fit) => fit,
        Err(Error::Diverged {
            epoch,
            lr,
            last_finite,
        }) => {
            if let Some(out) = args.out.as_ref().filter(|_| writes) {
                with_columns(FittedModel::new(&objective, (*last_finite).clone())).save(out)?;
                log::warn!("wrote the last finite parameters to {}", out.display());
            }
            return Err(Error::Diverged {
                epoch,
                lr,
                last_finite,
            });
        }
        Err(e) => return Err(e),
    };
    if !writes {
        return Ok(());
    }
    if let Some(out) = &args.out {
        with_columns(fit.model.clone()).save(out)?;
    }
    if let Some(path) = &args.plot {
        plot::loss_plot(path, &objective, &fit.log)?;
    }
    if let (Some(path), Some(frames)) = (&args.animate, &progress.frames) {
        let host = data.to_host()?;
        plot::fit_animation(path, objective.model(), host.x(), host.y(), frames)?;
    }
    let truth = match &source {
        Source::Synthetic(s) => Some(s.true_params()),
        Source::SparseSynthetic { truth, .. } => Some(truth.clone()),
        Source::File { .. } | Source::Sparse(_) => None,
    };
    if let Some(solved) = fit.solved.as_ref().filter(|s| !s.converged)
        && fit.stop == StopReason::NotConverged
    {
        log::warn!(
            "{} did not converge: {}; raise --max-iter, or --tol above ‖∇F‖∞ {:.3e}",
            solved.solver,
            solved.reason,
            solved.grad_norm
        );
    }
    let report = super::report::FitReport {
        objective,
        objective_value: trainer.objective_of(&fit),
        solver_why: &solver_why,
        rule: trainer.update_rule(),
        backend: device.split(' ').next().unwrap_or("?"),
        device: &device,
        rows,
        features,
        fit: &fit,
        truth: truth.as_ref(),
        verified: verified.as_ref(),
    };
    if m.backend.json {
        out::line(report.json())?;
    } else {
        out::print(&report.text())?;
    }
    match fit.stop {
        StopReason::Interrupted { step } => Err(Error::Interrupted {
            step,
            saved: args.out.clone(),
        }),
        _ => Ok(()),
    }
}

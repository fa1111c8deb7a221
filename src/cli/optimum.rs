//! `downhill bench --to-optimum`: the options and the table.

use clap::Args;

use downhill::bench::optimum::{self, OptimumOptions, OptimumReport, Shape};
use downhill::solve::Solver;
use downhill::{Backend, Error};

use super::args::{parse, parse_dims};
use super::out;

/// What `--to-optimum` takes beside `--backends` and `--json`.
#[derive(Args)]
pub struct OptimumArgs {
    /// Time downhill's solvers and scikit-learn's (lbfgs, newton-cholesky) to the optimum
    /// instead of timing epochs (needs DOWNHILL_PYTHON or python3 with scikit-learn).
    #[arg(long)]
    pub to_optimum: bool,
    /// --to-optimum's problems, ROWSxFEATURES (logistic), ROWSxFEATURESxCLASSES (softmax)
    /// or ROWSxFEATURES@NNZ (logistic on sparse binary rows, NNZ Zipf draws a row; against
    /// scikit-learn's lbfgs and LIBLINEAR -s 0), comma separated.
    #[arg(long, default_value = "1000000x64,200000x64x10", value_delimiter = ',', value_parser = parse_problem)]
    pub problems: Vec<Shape>,
    /// --to-optimum's downhill solvers.
    #[arg(long, default_value = "newton,newton-cg,lbfgs", value_delimiter = ',', value_parser = parse::<Solver>)]
    pub solvers: Vec<Solver>,
    /// --to-optimum's penalty as scikit-learn's C (downhill's l2 is 1/(C·rows)).
    #[arg(long, default_value_t = 1.0)]
    pub c: f64,
    /// --to-optimum's relative suboptimality of the best objective anyone reached.
    #[arg(long, default_value_t = 1e-6)]
    pub rel: f64,
    /// A device's read bandwidth in GB/s, for --to-optimum's estimate of a GPU's time
    /// (passes × bytes of X ÷ bandwidth). Default: an H200's 4 800.
    #[arg(long, default_value_t = 4800.0)]
    pub bandwidth: f64,
}

fn parse_problem(s: &str) -> Result<Shape, String> {
    let (dims, nonzeros) = match s.split_once('@') {
        Some((dims, nnz)) => {
            let nnz = nnz
                .parse::<usize>()
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| {
                    format!("problem {s:?}: {nnz:?} (non-zeros a row) is not a positive integer")
                })?;
            (dims, Some(nnz))
        }
        None => (s, None),
    };
    let (rows, features, classes) = parse_dims(dims)?;
    if nonzeros.is_some() && classes.is_some() {
        return Err(format!(
            "problem {s:?}: sparse rows are logistic (ROWSxFEATURES@NNZ)"
        ));
    }
    Ok(Shape {
        rows,
        features,
        // A logistic problem: the two classes of its labels.
        classes: classes.unwrap_or(2),
        nonzeros,
    })
}

/// Runs `--to-optimum` on the named backends.
pub fn run(args: &OptimumArgs, backends: &[String], json: bool) -> Result<(), Error> {
    for (name, value) in [
        ("c", args.c),
        ("rel", args.rel),
        ("bandwidth", args.bandwidth),
    ] {
        if !(value > 0.0 && value.is_finite()) {
            return Err(Error::option(name, value, "must be a positive number"));
        }
    }
    for &solver in &args.solvers {
        if matches!(solver, Solver::Gd | Solver::Auto) {
            return Err(Error::option(
                "solvers",
                solver,
                "--to-optimum times newton, newton-cg and lbfgs",
            ));
        }
    }
    let python = downhill::bench::find_python("numpy, sklearn").ok_or_else(|| {
        Error::option(
            "to-optimum",
            "",
            "needs a Python with numpy and scikit-learn: set DOWNHILL_PYTHON",
        )
    })?;
    let cpu = downhill::backend::cpu::Cpu::default();
    let gpu = if backends.iter().any(|b| b == "gpu") {
        Some(downhill::gpu::Gpu::open()?)
    } else {
        None
    };
    let mut chosen: Vec<(&'static str, &dyn Backend)> = Vec::new();
    if backends.iter().any(|b| b == "cpu") {
        chosen.push(("cpu", &cpu));
    }
    if let Some(gpu) = &gpu {
        chosen.push(("gpu", gpu));
    }
    let options = OptimumOptions {
        shapes: args.problems.clone(),
        backends: chosen,
        solvers: args.solvers.clone(),
        c: args.c,
        rel: args.rel,
        python,
        dir: std::env::temp_dir(),
    };
    let all = optimum::run(&options, &mut |r: &OptimumReport| {
        if !json {
            for line in table(r, args.bandwidth) {
                out::warn(line);
            }
        }
    })?;
    if json {
        out::line(serde_json::to_string_pretty(&all).expect("numbers"))?;
    } else {
        for r in &all {
            for line in table(r, args.bandwidth) {
                out::line(line)?;
            }
        }
    }
    Ok(())
}

/// One problem's lines: each solver's seconds, iterations and passes to the target, its
/// ratio to the faster of scikit-learn's, and a GPU's time for the same passes.
fn table(r: &OptimumReport, bandwidth: f64) -> Vec<String> {
    let Shape {
        rows,
        features,
        classes,
        nonzeros,
    } = r.shape;
    let model = match (classes, nonzeros) {
        (2, Some(nnz)) => format!("logistic, sparse binary rows of {nnz} Zipf draws"),
        (2, None) => "logistic".to_string(),
        _ => format!("softmax, {classes} classes"),
    };
    let mut lines = vec![
        format!(
            "{rows}x{features} {model}: best F {:.10}, target {:.10} (+{:e}); scikit-learn {}",
            r.best, r.target, r.rel, r.sklearn
        ),
        format!(
            "  {:<22} {:>10} {:>6} {:>7} {:>10} {:>12} {:>11}",
            "solver", "s to target", "iters", "passes", "/peer", "final F gap", "GPU est. ms"
        ),
    ];
    let peer = r.fastest_peer();
    let dash = || "-".to_string();
    for s in &r.results {
        let gap = (s.final_objective - r.best) / r.best.abs();
        let gpu = s.passes.map_or_else(dash, |p| {
            format!(
                "{:.3}",
                1e3 * p as f64 * r.pass_bytes as f64 / (bandwidth * 1e9)
            )
        });
        lines.push(format!(
            "  {:<22} {:>10} {:>6} {:>7} {:>10} {:>12.2e} {:>11}",
            s.name,
            s.seconds
                .map_or_else(|| "never".into(), |v| format!("{v:.3}")),
            s.iterations.map_or_else(dash, |v| v.to_string()),
            s.passes.map_or_else(dash, |v| v.to_string()),
            match (s.seconds, peer) {
                (Some(a), Some(b)) => format!("{:.2}", a / b),
                _ => dash(),
            },
            gap,
            gpu,
        ));
    }
    lines.push(format!(
        "  (F in f64 by numpy for everyone; /peer: against the fastest peer; GPU est.: passes × {:.0} MB of X at {bandwidth} GB/s)",
        r.pass_bytes as f64 / 1e6
    ));
    lines
}

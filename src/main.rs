//! The `downhill` command line: fit, predict, score, grad, devices, bench. Results go to
//! stdout; log lines, the progress bar and errors to stderr.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use downhill::Error;

use cli::bench::BenchArgs;
use cli::fit::FitArgs;
use cli::predict::{GradArgs, PredictArgs, ScoreArgs};

#[derive(Parser)]
#[command(
    name = "downhill",
    version,
    about = "Linear, logistic and softmax regression by gradient descent on the GPU"
)]
struct Cli {
    /// Log progress on stderr (-vv: details). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// No progress bar and no log lines but errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fit a model by gradient descent.
    Fit(Box<FitArgs>),
    /// Predict rows of a data file with a model file.
    Predict(PredictArgs),
    /// The loss and accuracy (or R²) of a model file on labelled rows.
    Score(ScoreArgs),
    /// Print the loss and gradient at given parameters, over all rows.
    Grad(GradArgs),
    /// List the GPU adapters wgpu can see.
    Devices,
    /// Time epochs of logistic regression on every backend against the memory floor.
    Bench(BenchArgs),
}

/// The exit status of a run stopped by Ctrl-C, as shells report SIGINT.
const INTERRUPTED: u8 = 130;
/// The exit status of a write to a closed pipe, as shells report SIGPIPE.
const CLOSED_PIPE: u8 = 141;

fn main() -> ExitCode {
    // Mesa's Vulkan drivers print "error: XDG_RUNTIME_DIR is invalid or not set" when it is
    // unset, which reads like one of our errors. Nothing here uses it; point it at the
    // temporary directory. Safe: no other thread exists yet.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
    let cli = Cli::parse();
    // Under an MPI launcher, each process is one rank of a run; MPI stays initialized
    // until `_universe` is dropped at the end of main.
    #[cfg(feature = "mpi")]
    let _universe = downhill::backend::mpi::init();
    #[cfg(feature = "mpi")]
    let processes = match &_universe {
        Some(_) => {
            use downhill::backend::parallel::Combine;
            let (rank, size) = downhill::backend::mpi::Mpi.rank();
            cli::Processes { rank, size }
        }
        None => cli::Processes::single(),
    };
    #[cfg(not(feature = "mpi"))]
    let processes = cli::Processes::single();
    cli::progress::init_logging(cli.verbose, cli.quiet || !processes.writes());
    if processes.size > 1 && !matches!(cli.command, Command::Fit(_)) {
        cli::out::warn("error: only fit runs across MPI processes; run the others as one process");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Fit(args) => cli::fit::fit(*args, cli.quiet, processes),
        Command::Predict(args) => cli::predict::predict(args),
        Command::Score(args) => cli::predict::score(args),
        Command::Grad(args) => cli::predict::grad(args),
        Command::Devices => cli::bench::devices(),
        Command::Bench(args) => cli::bench::bench(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ Error::Interrupted { .. }) => {
            cli::out::warn(format_args!("{e}{}", cli::hints::hint(&e)));
            ExitCode::from(INTERRUPTED)
        }
        // The reader of stdout has gone (`| head`): nothing is wrong, nothing more to say.
        Err(e) if cli::out::is_closed_pipe(&e) => ExitCode::from(CLOSED_PIPE),
        Err(e) => {
            cli::out::warn(format_args!("error: {e}{}", cli::hints::hint(&e)));
            ExitCode::FAILURE
        }
    }
}

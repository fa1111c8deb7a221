//! What the CLI shows while it works: log lines (`-v`, `RUST_LOG`) and, on a terminal, a
//! progress bar; and Ctrl-C, which asks a fit to stop after its current step.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use log::LevelFilter;

use downhill::Params;
use downhill::train::{Interrupt, LogEntry, Observer};

/// The bar being drawn, if any: log lines are written around it.
static BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn current_bar() -> Option<ProgressBar> {
    BAR.lock().map(|b| b.clone()).unwrap_or(None)
}

/// stderr, with the progress bar (when one is drawn) lifted out of the way.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match current_bar() {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf).map(|()| buf.len())),
            None => std::io::stderr().write_all(buf).map(|()| buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Log lines on stderr: warnings by default, downhill's progress with `-v`, its details
/// with `-vv`; `RUST_LOG` (env_logger's syntax) overrides.
pub fn init_logging(verbose: u8, quiet: bool) {
    let (ours, others) = match (quiet, verbose) {
        (true, _) => (LevelFilter::Error, LevelFilter::Error),
        (false, 0) => (LevelFilter::Warn, LevelFilter::Error),
        (false, 1) => (LevelFilter::Info, LevelFilter::Warn),
        (false, _) => (LevelFilter::Debug, LevelFilter::Warn),
    };
    let mut builder = env_logger::Builder::new();
    builder.filter_level(others).filter_module("downhill", ours);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        builder.parse_filters(&spec);
    }
    builder
        .format(|out, record| match record.level() {
            log::Level::Info => writeln!(out, "{}", record.args()),
            level => writeln!(
                out,
                "{}: {}",
                level.as_str().to_ascii_lowercase(),
                record.args()
            ),
        })
        .target(env_logger::Target::Pipe(Box::new(LogWriter)))
        .init();
}

/// Ctrl-C raises `interrupt`; a second Ctrl-C quits at once.
pub fn stop_on_ctrl_c(interrupt: &Interrupt) {
    let flag = interrupt.clone();
    let installed = ctrlc::set_handler(move || {
        if flag.is_raised() {
            std::process::exit(130);
        }
        flag.raise();
        log::warn!("Ctrl-C: stopping after the current step (Ctrl-C again quits at once)");
    });
    if let Err(e) = installed {
        log::warn!("Ctrl-C will quit at once: {e}");
    }
}

/// Follows a fit: the progress bar, and the parameters of each logged epoch when an
/// animation wants them.
pub struct FitProgress {
    bar: Option<ProgressBar>,
    rows: u64,
    start: Instant,
    loss: Option<f64>,
    /// (epoch, training loss, parameters) of each logged epoch, when recording.
    pub frames: Option<Vec<(u64, f64, Params)>>,
}

impl FitProgress {
    /// A bar on stderr when it is a terminal and not `quiet`.
    pub fn new(epochs: u64, rows: usize, quiet: bool, record_frames: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(epochs), ProgressDrawTarget::stderr());
            bar.set_message("starting");
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30.cyan/blue}] epoch {pos}/{len} · {msg} · {eta} left",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            if let Ok(mut slot) = BAR.lock() {
                *slot = Some(bar.clone());
            }
            bar
        });
        FitProgress {
            bar,
            rows: rows as u64,
            start: Instant::now(),
            loss: None,
            frames: record_frames.then(Vec::new),
        }
    }

    /// Takes the bar off the screen.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            if let Ok(mut slot) = BAR.lock() {
                *slot = None;
            }
        }
    }

    fn message(&self, epoch: u64) -> String {
        let seconds = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = (self.rows * epoch) as f64 / seconds;
        match self.loss {
            Some(loss) => format!("loss {loss:.6} · {} rows/s", si(rate)),
            None => format!("{} rows/s", si(rate)),
        }
    }
}

impl Drop for FitProgress {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Observer for FitProgress {
    fn progress(&mut self, epoch: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(epoch);
            bar.set_message(self.message(epoch));
        }
    }

    fn logged(&mut self, entry: &LogEntry, params: Option<&Params>) {
        self.loss = Some(entry.training.loss);
        if let (Some(frames), Some(p)) = (&mut self.frames, params) {
            frames.push((entry.epoch, entry.training.loss, p.clone()));
        }
        self.progress(entry.epoch);
    }

    fn wants_params(&self) -> bool {
        self.frames.is_some()
    }
}

/// 1234567 → "1.23M".
fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{:.2}G", v / 1e9),
        v if v >= 1e6 => format!("{:.2}M", v / 1e6),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

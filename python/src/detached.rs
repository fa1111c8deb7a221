//! Running library work without the GIL, on a thread of its own, while the calling thread
//! watches for Ctrl-C: Python delivers signals to its main thread only when that thread
//! runs Python, so the caller waits in short slices and checks for signals between them.

use std::sync::mpsc;
use std::time::Duration;

use downhill::train::Interrupt;
use pyo3::prelude::*;

/// How often the waiting thread checks for a signal.
const SLICE: Duration = Duration::from_millis(50);

/// Runs `work` without the GIL. On Ctrl-C (any signal whose Python handler raises) it
/// raises `interrupt`, waits for the work to stop after its current step, and returns the
/// handler's exception (`KeyboardInterrupt`).
pub fn run<T: Send>(
    py: Python<'_>,
    interrupt: &Interrupt,
    work: impl FnOnce() -> T + Send,
) -> PyResult<T> {
    std::thread::scope(|scope| {
        let (done, finished) = mpsc::channel();
        let worker = scope.spawn(move || {
            let result = work();
            let _ = done.send(());
            result
        });
        let mut finished = finished;
        loop {
            // The receiver goes into the closure and comes back (it is not `Sync`).
            let outcome;
            (outcome, finished) = py.detach(move || (finished.recv_timeout(SLICE), finished));
            if !matches!(outcome, Err(mpsc::RecvTimeoutError::Timeout)) {
                break;
            }
            if let Err(signal) = py.check_signals() {
                interrupt.raise();
                let _ = py.detach(|| worker.join());
                return Err(signal);
            }
        }
        py.detach(|| worker.join()).map_err(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            pyo3::exceptions::PyRuntimeError::new_err(format!("downhill panicked: {what}"))
        })
    })
}

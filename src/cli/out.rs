//! Writing results to stdout without panicking: a closed pipe (`downhill predict … | head`)
//! ends the command quietly, as coreutils do, and any other write error is an error.

use std::io::Write;

use downhill::Error;

/// Writes `text` to stdout and flushes it.
pub fn print(text: &str) -> Result<(), Error> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|source| Error::Io {
            path: "stdout".into(),
            source,
        })
}

/// Writes `text` and a newline to stdout.
pub fn line(text: impl std::fmt::Display) -> Result<(), Error> {
    print(&format!("{text}\n"))
}

/// Whether `e` is a write to a reader that has gone (a closed pipe).
pub fn is_closed_pipe(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } | Error::Write { source, .. }
        if source.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Writes a line to stderr, ignoring a failure: there is nowhere left to report it.
pub fn warn(text: impl std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

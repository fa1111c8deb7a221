//! What the command line adds to the library's errors: the flag that would fix them. The
//! library says what failed in its own terms (a learning rate, a number of classes); the
//! flags are the command line's.

use downhill::Error;

/// The flags to try after `e`, as a clause to append to its message.
pub fn hint(e: &Error) -> &'static str {
    match e {
        Error::Diverged { .. } => "; try a smaller --lr",
        Error::NonFiniteStart { custom: false } => " (--init)",
        Error::EmptyClasses { .. } => " (--classes K)",
        Error::Interrupted { saved: None, .. } => " (no --out was given)",
        _ => "",
    }
}

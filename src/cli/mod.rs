//! The command line's commands, one module each, and what they share.

pub mod args;
pub mod bench;
pub mod fit;
pub mod predict;
pub mod progress;

//! The command line's commands, one module each, and what they share.

pub mod args;
pub mod bench;
pub mod fit;
pub mod hints;
pub mod optimum;
pub mod out;
pub mod predict;
pub mod progress;
pub mod report;
pub mod sparse;

/// This process's place among the processes of one run (MPI ranks), or the only one.
#[derive(Clone, Copy, Debug)]
pub struct Processes {
    pub rank: usize,
    pub size: usize,
}

impl Processes {
    pub fn single() -> Self {
        Processes { rank: 0, size: 1 }
    }

    /// Rank 0 writes the outputs and prints the report; the others compute.
    pub fn writes(&self) -> bool {
        self.rank == 0
    }
}

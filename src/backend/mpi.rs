//! Across processes with MPI (the `mpi` cargo feature, over Open MPI): rank r of p takes
//! rows [r·n/p, (r + 1)·n/p) of the problem. Every step, each rank's sums are all-gathered
//! and added in rank order on every rank, so every rank applies the same update to the same
//! parameters; only (d + 1)·k + 5 numbers per rank cross the network per step.

use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::CommunicatorCollectives;

use super::parallel::Combine;
use crate::error::Result;

/// The world communicator. MPI must be initialized (see [`init`]) while it is used.
#[derive(Clone, Copy, Debug, Default)]
pub struct Mpi;

/// Initializes MPI when this process was started by an MPI launcher (mpirun, srun), and
/// returns the universe to keep until the end (dropping it finalizes MPI). `None` when
/// there is no launcher: one process.
pub fn init() -> Option<mpi::environment::Universe> {
    const LAUNCHED: [&str; 3] = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"];
    if !LAUNCHED.iter().any(|v| std::env::var_os(v).is_some()) {
        return None;
    }
    // Only the main thread calls MPI (the CPU backend's worker threads never do).
    mpi::initialize_with_threading(mpi::Threading::Funneled).map(|(universe, _)| universe)
}

impl Combine for Mpi {
    fn sum(&self, local: Vec<f64>) -> Result<Vec<f64>> {
        let world = SimpleCommunicator::world();
        let processes = world.size() as usize;
        let n = local.len();
        let mut all = vec![0.0; n * processes];
        world.all_gather_into(&local[..], &mut all[..]);
        let mut sum = vec![0.0; n];
        for part in all.chunks_exact(n.max(1)).take(processes) {
            for (s, v) in sum.iter_mut().zip(part) {
                *s += v;
            }
        }
        Ok(sum)
    }

    fn rank(&self) -> (usize, usize) {
        let world = SimpleCommunicator::world();
        (world.rank() as usize, world.size() as usize)
    }
}

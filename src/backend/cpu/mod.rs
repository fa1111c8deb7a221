//! The fast CPU backend: the same fused one-pass structure as the GPU kernel, on all cores.
//!
//! Rows are split into fixed chunks (their boundaries do not depend on the thread count);
//! each chunk computes z, δ and its partial Xᵀδ and Σδ from one read of its rows, adding
//! blocks of rows in f32 lanes and the blocks in f64; the chunks' partials are then added
//! in chunk order, so the result is the same bits whatever the thread scheduling. The hot
//! loop is compiled three times, for AVX-512, for AVX2 with FMA (each with hand-written
//! kernels for one output's two passes over the rows, in `avx512` and `avx2`) and for the
//! baseline, and the widest the CPU has is chosen at run time; the three add in different
//! orders, so their last bits differ (`DOWNHILL_CPU_SIMD` keeps a CPU to a narrower one).

use std::borrow::Cow;
use std::ops::Range;

use crate::backend::Snapshot;

use rayon::prelude::*;

use super::reference::{ReferenceSession, check_params_shape};
use super::{
    Backend, Batch, Configured, Data, Evaluation, Evaluations, HostRows, PassSums, RowSet,
    RunOutcome, Session, Setup, Split, Step, evaluate_then_run,
};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::model::{Gradient, Loss, Model, Objective, Params};
use crate::optim::Standardization;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod math;
mod order;
mod pass;
mod session;
mod simd;

use math::*;
use order::*;
use pass::*;
use session::*;

pub use math::stream_read;
pub use session::CpuSession;
pub use simd::{SIMD_VAR, Simd};

/// Tiles whose sums are added in f32 before they are moved into f64: 256 rows at d = 64,
/// few enough that f32 loses nothing a test at 1e-5 could see.
const FLUSH_TILES: usize = 16;

/// Most rows per parallel work item.
const CHUNK_ROWS: usize = 4096;

/// Rows per parallel work item for a batch of `len` rows: small batches are cut finer so
/// that every core has work. It depends on the batch alone, never on the thread count, so
/// the sums come out the same on any number of cores.
fn chunk_rows(len: usize) -> usize {
    (len / 8).clamp(256, CHUNK_ROWS)
}

/// How far ahead of the rows being read the loop asks for memory, in bytes. Measured on
/// the development machine (2 cores): 8 KiB into the second-level cache keeps enough reads
/// in flight; into the first level, the prefetches compete with the loop's own loads.
const PREFETCH_BYTES: usize = 8192;

/// The multi-threaded CPU backend (rayon's global pool), its loop compiled for one level
/// of vector instructions: by default the widest this CPU has ([`Simd::detected`]).
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    simd: Simd,
}

impl Default for Cpu {
    fn default() -> Self {
        Cpu {
            simd: Simd::detected(),
        }
    }
}

impl Cpu {
    /// The backend with its loop at `simd`, if this CPU has it.
    pub fn with_simd(simd: Simd) -> Result<Cpu> {
        if !simd.available() {
            return Err(Error::option(
                SIMD_VAR,
                simd.name(),
                "this CPU does not have these instructions",
            ));
        }
        Ok(Cpu { simd })
    }

    /// The level its loop runs at.
    pub fn simd(&self) -> Simd {
        self.simd
    }
}

impl Backend for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn open<'a>(&'a self, data: Data<'a>, objective: Objective) -> Result<Box<dyn Session + 'a>> {
        let n = data.window().len();
        let chunks = n.div_ceil(chunk_rows(n));
        super::check_host_memory(&data, objective, chunks)?;
        Ok(Box::new(CpuSession::from_host(
            data.into_host_rows()?,
            objective,
            self.simd,
        )))
    }
}

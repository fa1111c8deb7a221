//! The CPU backend itself: which vector instructions its loop runs at, and opening sessions.

use super::order::chunk_rows;
use super::product::on_tiles;
use super::session::CpuSession;
use super::sparse::SparseSession;
use crate::backend::{Backend, Data, Session, check_host_memory};
use crate::error::{Error, Result};
use crate::model::Objective;
use crate::simd::{SIMD_VAR, Simd};

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

    /// The bytes each thread keeps for a pass beside the partials, all threads together:
    /// the f32 sums, (d + 1)·k of them, and with many classes on AMX tiles W packed in
    /// three bfloat16 parts.
    fn scratch(&self, data: &Data, objective: Objective) -> u64 {
        let k = objective.outputs();
        let params = data.features().saturating_add(1).saturating_mul(k) as u64;
        let packed = if on_tiles(self.simd, k) { 6 } else { 0 };
        (rayon::current_num_threads() as u64)
            .saturating_mul(params)
            .saturating_mul(4 + packed)
    }
}

impl Backend for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn open<'a>(&'a self, data: Data<'a>, objective: Objective) -> Result<Box<dyn Session + 'a>> {
        if let Some(sparse) = data.sparse() {
            return Ok(Box::new(SparseSession::new(
                sparse,
                data.window(),
                objective,
            )?));
        }
        let n = data.window().len();
        let chunks = n.div_ceil(chunk_rows(n));
        check_host_memory(&data, objective, chunks, self.scratch(&data, objective))?;
        Ok(Box::new(CpuSession::from_host(
            data.into_host_rows()?,
            objective,
            self.simd,
        )))
    }
}

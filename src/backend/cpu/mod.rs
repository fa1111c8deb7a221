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

#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod backend;
mod columns;
mod curvature;
mod math;
mod order;
mod pass;
mod product;
mod session;
mod sparse;
mod view;

pub use crate::simd::{SIMD_VAR, Simd};
pub use backend::Cpu;
pub use math::stream_read;
pub use session::CpuSession;
pub use sparse::SparseSession;

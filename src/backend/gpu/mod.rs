//! The GPU backend: adapter choice, the device and its limits, and device errors turned
//! into [`Error`](crate::Error)s. Kernels live in `shaders/`; their host side in [`kernels`]; buffers and
//! the descent loop on the device in [`session`].

mod constants;
mod context;
#[doc(hidden)]
pub mod curvature;
mod dispatch;
#[doc(hidden)]
pub mod kernels;
mod loops;
#[doc(hidden)]
pub mod plan;
mod probe;
mod rows;
pub mod session;
mod sparse;
mod uniforms;

pub use context::{AdapterSummary, GpuContext, InjectedFaults, adapters, is_hardware};
pub use session::{Gpu, GpuOptions, GpuSession};
pub use sparse::GpuSparseSession;

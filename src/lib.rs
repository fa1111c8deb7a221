//! # downhill
//!
//! Linear, logistic and softmax regression fitted by gradient descent on the GPU through
//! wgpu compute shaders, with a CPU reference backend that checks every GPU result.
//!
//! For rows x (d features), parameters W (d×k) and b (k): z = x·W + b, a prediction
//! ŷ = act(z), a loss ℓ(ŷ, y) per row and the cost J = (1/n) Σ ℓ. The gradient is the
//! chain rule, row by row: δ = dℓ/dŷ · dŷ/dz, then ∇W = (1/n) Xᵀδ and ∇b = (1/n) Σ δ.
//! Descent repeats θ ← θ − η∇J.
//!
//! ```
//! use downhill::{Dataset, Objective, Trainer, backend::reference::Reference};
//!
//! // y = 2x − 1 on five points.
//! let x = [0.0f32, 1.0, 2.0, 3.0, 4.0];
//! let y = [-1.0f32, 1.0, 3.0, 5.0, 7.0];
//! let data = Dataset::from_slices(&x, &y, 1)?;
//!
//! // One gradient at W = 0, b = 0: ∇w = (2/n) Σ (ŷ − y) x = −20, ∇b = (2/n) Σ (ŷ − y) = −6.
//! let backend = Reference;
//! let grad = downhill::gradient(&backend, &data, Objective::linear(), None)?;
//! assert_eq!((grad.weights[0], grad.bias[0]), (-20.0, -6.0));
//!
//! // A fit. `downhill::select(BackendKind::Auto, Default::default())` picks the
//! // GPU when there is one.
//! let fit = downhill::fit(&backend, &data, Objective::linear(), &Trainer::new().lr(0.05).epochs(2000))?;
//! assert!((fit.params.weights()[0] - 2.0).abs() < 1e-3);
//! assert!((fit.params.bias()[0] + 1.0).abs() < 1e-3);
//! # Ok::<(), downhill::Error>(())
//! ```

// The documented API is the modules below without `#[doc(hidden)]` and the re-exports
// after them. The hidden modules are the command line's and the fuzz targets' helpers
// (bench timing, fuzz entry points, output and memory checks, aligned floats, hashes):
// public because the binary and `fuzz/` are other crates, not for library users.
pub mod autodiff;
pub mod backend;
#[doc(hidden)]
pub mod bench;
pub mod checkpoint;
pub mod custom;
pub mod data;
pub mod descent;
pub mod error;
#[doc(hidden)]
pub mod fingerprint;
mod fitted;
#[doc(hidden)]
pub mod floats;
#[doc(hidden)]
pub mod fuzzing;
pub mod hashing;
pub mod input;
pub mod loss;
pub mod math;
#[doc(hidden)]
pub mod memory;
pub mod model;
pub mod model_file;
pub mod optim;
#[doc(hidden)]
pub mod output;
pub mod params;
pub mod params_file;
#[cfg(feature = "plot")]
pub mod plot;
pub mod predict;
#[doc(hidden)]
pub mod rng;
pub mod selection;
#[doc(hidden)]
pub mod simd;
pub mod solve;
pub mod sparse;
pub mod synth;
pub mod train;
pub mod verify;

/// The GPU backend, at its historical path (it lives in `backend/gpu/`).
#[cfg(feature = "gpu")]
pub use backend::gpu;
pub use backend::gradient;
pub use backend::{Backend, Data, Session};
pub use data::Dataset;
pub use error::{Error, Result};
pub use model::{Loss, Model, Objective};
pub use model_file::FittedModel;
/// The name of [`FittedModel`] before fits returned one; model files are unchanged.
pub type SavedModel = FittedModel;
/// The ndarray version `Dataset::from_arrays` takes, for callers who want the same one.
#[cfg(feature = "ndarray")]
pub use ndarray;
pub use params::{Gradient, Params};
pub use predict::Predictions;
pub use selection::{BackendKind, Selected, select, select_devices};
pub use sparse::SparseDataset;
/// The sprs version `SparseDataset::from_sprs` takes.
#[cfg(feature = "sprs")]
pub use sprs;
pub use synth::Synthetic;
pub use train::{Fit, Trainer, fit};

/// The README's Rust example, compiled and run as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

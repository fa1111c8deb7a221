//! The GPU backend's options, which exist in every build: backend selection takes them
//! whether or not the `gpu` feature is on.

/// Tuning knobs of the GPU backend. The defaults use everything the adapter allows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuOptions {
    /// Largest shard of X in bytes. Default: the adapter's storage binding limit.
    pub max_shard_bytes: Option<u64>,
    /// Most bytes of rows (X and y) to hold on the device. Rows beyond it are streamed
    /// through two slots each step. Default: no limit beyond the device's own.
    pub max_device_bytes: Option<u64>,
    /// Kernel shapes. Default: chosen for the adapter, or by `DOWNHILL_GPU_TUNING`
    /// (`Tuning::for_device`).
    pub tuning: Option<Tuning>,
    /// The loop limit to plan the kernels for (`Some(None)`: as if there were none).
    /// Default: the device's, measured (`GpuContext::loop_limit`). Planning for less
    /// than the device has only costs speed; for more, kernels may end loops early and
    /// give wrong numbers, which is what tests of `--verify` need.
    pub loop_limit: Option<Option<u32>>,
}

/// Classes from which both tunings tile the split gradient's products. Measured on
/// lavapipe (`examples/tiled_products.rs`): 5 000 × 2 048 rows, tiled against untiled,
/// 0.78× as fast at 17 and 24 classes (a 64-class tile mostly empty), 1.04× at 32, 1.41×
/// at 48; 2.9× at 1 000 classes. No real GPU has timed them.
const PRODUCTS_FROM: u32 = 32;

/// How the kernels are shaped for a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Invocations per workgroup; a power of two (tree reductions halve it).
    pub workgroup: u32,
    /// Copy each tile of rows into workgroup memory (see `shaders/gradient.wgsl`).
    pub stage: bool,
    /// Most workgroups per shard in one fused gradient dispatch; each writes one partial.
    pub max_groups: u32,
    /// vec4 accumulators per invocation in the fused kernel (column quads owned ×
    /// classes of a class tile): registers on a GPU, ordinary memory on a CPU-type adapter.
    pub accumulators: u32,
    /// Classes from which the gradient's Xᵀδ is a tiled matrix product
    /// (`shaders/products.wgsl`) where the classes are split into class tiles, instead of
    /// one pass over X per class tile; `u32::MAX`: never.
    pub products_from: u32,
}

impl Tuning {
    /// GPUs: wide workgroups, tiles staged in workgroup memory, enough workgroups to fill
    /// every compute unit, 16 accumulators (one pass over X serves 16 classes when an
    /// invocation owns one column quad; each has its Kahan compensation beside it, so 32
    /// vec4 registers).
    pub const GPU: Tuning = Tuning {
        workgroup: 256,
        stage: true,
        max_groups: 1024,
        accumulators: 16,
        products_from: PRODUCTS_FROM,
    };

    /// CPU-type adapters (lavapipe, WARP) run a workgroup on one thread, pay for each
    /// barrier once per 8-wide slice of it, and have workgroup memory that is ordinary
    /// memory: narrow workgroups, rows read in place, a few workgroups per core, and
    /// eight times the accumulators (an eighth of the class tiles, each of which computes
    /// every z again).
    pub const CPU: Tuning = Tuning {
        workgroup: 64,
        stage: false,
        max_groups: 64,
        accumulators: 128,
        products_from: PRODUCTS_FROM,
    };
}

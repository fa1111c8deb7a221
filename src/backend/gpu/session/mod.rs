//! A problem on the device: its rows (resident in shards, or streamed; see `gpu/rows.rs`),
//! the parameters, and the descent loop recorded into command buffers, several steps per
//! submission. Nothing comes back to the host inside the loop except a status word per
//! run and the loss when the caller asks for it.
//!
//! Here: the backend ([`Gpu`]) and the session's buffers, built once. Recording passes and
//! reading results back is in `record.rs`, the [`Session`] contract in `contract.rs`,
//! predictions in `predict.rs`, the Newton solvers' Hessian and Hessian-vector passes in
//! `curvature.rs`, and what tests and benchmarks ask (the unfused oracle, the memory floor,
//! rows read back) in `oracle.rs`.

mod buffers;
mod contract;
mod curvature;
pub mod oracle;
mod predict;
mod record;

use std::ops::Range;
use std::sync::Arc;

use buffers::{Buffers, STEPS_PER_SUBMIT};

use super::context::GpuContext;
use super::kernels::{
    GeneratorKernels, GeneratorUniform, Kernels, ROWS_TRAINING_AND_HELD_OUT, SetupUniform,
    ShaderConstants, StepUniform, Tuning, grid,
};
use super::plan::check_loops;
use super::rows::{
    DeviceRows, Plan, RowBuffers, STORAGE, bind_group, read_buffer, uniform_buffer, upload,
};
use crate::backend::host::{self, check_params_shape};
pub use crate::backend::options::GpuOptions;
use crate::backend::{
    Backend, Batch, Configured, Data, Evaluation, Evaluations, PassSums, RowSet, RunOutcome,
    Session, Setup, Snapshot, Step, evaluate_then_run,
};
use crate::error::{Error, Result};
use crate::model::{Gradient, Objective, Params};
use crate::optim::Standardization;

/// The GPU backend: an open device (shared between clones) and the options of its sessions.
#[derive(Clone)]
pub struct Gpu {
    ctx: Arc<GpuContext>,
    options: GpuOptions,
}

impl Gpu {
    pub fn new(ctx: GpuContext) -> Self {
        Gpu {
            ctx: Arc::new(ctx),
            options: GpuOptions::default(),
        }
    }

    /// The same device with other options.
    pub fn with_options(&self, options: GpuOptions) -> Self {
        Gpu {
            ctx: Arc::clone(&self.ctx),
            options,
        }
    }

    pub fn options(&self) -> GpuOptions {
        self.options
    }

    /// Opens the adapter wgpu's environment selects ([`GpuContext::open`]).
    pub fn open() -> Result<Self> {
        GpuContext::open().map(Self::new)
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Loads a problem; the concrete session type, with its device-only extras.
    pub fn session<'a>(&'a self, data: Data<'a>, objective: Objective) -> Result<GpuSession<'a>> {
        GpuSession::new(&self.ctx, self.options, data, objective)
    }
}

impl Backend for Gpu {
    fn name(&self) -> &'static str {
        "gpu"
    }

    fn open<'a>(&'a self, data: Data<'a>, objective: Objective) -> Result<Box<dyn Session + 'a>> {
        if let Some(sparse) = data.sparse() {
            let session = super::sparse::GpuSparseSession::new(
                &self.ctx,
                self.options,
                sparse,
                data.window(),
                objective,
            )?;
            return Ok(Box::new(session));
        }
        Ok(Box::new(self.session(data, objective)?))
    }
}

/// A problem loaded on the GPU.
pub struct GpuSession<'a> {
    ctx: &'a GpuContext,
    objective: Objective,
    rows: usize,
    features: usize,
    kernels: Arc<Kernels>,
    device_rows: DeviceRows<'a>,
    /// The rows of each shard, or of each chunk when streamed.
    ranges: Vec<Range<u32>>,
    /// The device buffers and bind groups, built once.
    buffers: Buffers,
    /// What the session was configured with, and what it derived.
    setup: Setup,
    standardization: Option<Standardization>,
    weighted: bool,
    /// Reused bytes of the step records of one submission.
    records: Vec<u8>,
    /// The Newton solvers' buffers, made on their first pass.
    curvature: Option<super::curvature::CurvatureBuffers>,
}

impl<'a> GpuSession<'a> {
    fn new(
        ctx: &'a GpuContext,
        options: GpuOptions,
        data: Data<'a>,
        objective: Objective,
    ) -> Result<Self> {
        let (rows, features) = (data.rows(), data.features());
        if rows > u32::MAX as usize {
            return Err(Error::option(
                "rows",
                rows,
                "the GPU backend takes at most 4294967295 rows",
            ));
        }
        let limits = ctx.limits();
        // Rows are padded to a multiple of 4 floats on the device.
        let row_bytes = 4 * features.next_multiple_of(4) as u64;
        let binding_limit = options
            .max_shard_bytes
            .unwrap_or(u64::MAX)
            .min(ctx.storage_binding_limit());
        let window = data.window();
        let plan = Plan::new(
            window.clone(),
            row_bytes,
            binding_limit,
            options.max_device_bytes,
        )?;
        let shard_count = plan.ranges.len();
        let tuning = match options.tuning {
            Some(tuning) => tuning,
            None => Tuning::for_device(ctx.info())?,
        };
        let constants = ShaderConstants::new(
            &objective,
            features,
            shard_count,
            tuning,
            limits.max_compute_workgroup_storage_size,
            match options.loop_limit {
                Some(assumed) => assumed,
                None => ctx.loop_limit()?,
            },
        )?;
        let kernels = Kernels::shared(ctx, constants)?;
        if !constants.update_in_one_workgroup() {
            kernels.update_split(ctx)?;
        }
        let weighted = match &data {
            Data::Host(h) => h.weights().is_some(),
            Data::Part { whole, .. } => {
                matches!(whole.as_ref(), Data::Host(h) if h.weights().is_some())
            }
            Data::Synthetic(_) | Data::Sparse(_) => false,
        };
        let device_rows = DeviceRows::new(ctx, &constants, &kernels.layouts.shard, &plan, data)?;

        let n = (features as u64 + 1) * u64::from(constants.k);
        let buffers = Buffers::new(ctx, &kernels, features, rows, &plan, tuning)?;
        let session = GpuSession {
            ctx,
            objective,
            rows,
            features,
            kernels,
            device_rows,
            ranges: plan.ranges,
            buffers,
            setup: Setup::default(),
            standardization: None,
            weighted,
            records: Vec::new(),
            curvature: None,
        };
        session.write_setup(&[1.0; 2]);
        session.write_raw(&vec![0.0; n as usize]);
        ctx.check()?;
        Ok(session)
    }

    /// How many storage buffers hold X (resident), or how many chunks stream through the
    /// two slots (streamed).
    pub fn shard_count(&self) -> usize {
        self.ranges.len()
    }

    /// Dispatches of the fused gradient per shard in a full-batch pass: 1, or more where
    /// the device's loop limit cuts the tiles into slices (`shaders/gradient.wgsl`).
    pub fn slices_per_shard(&self) -> u32 {
        let tile_rows = self.kernels.constants.tile_rows;
        let most = self
            .ranges
            .iter()
            .map(|r| r.len() as u32)
            .max()
            .unwrap_or(0);
        most.div_ceil(tile_rows)
            .div_ceil(self.buffers.slices.span)
            .max(1)
    }

    /// The rows of each shard (resident) or chunk (streamed).
    pub fn row_ranges(&self) -> &[Range<u32>] {
        &self.ranges
    }

    /// True when the rows do not fit the device budget and stream through two slots.
    pub fn is_streamed(&self) -> bool {
        matches!(self.device_rows, DeviceRows::Streamed(_))
    }

    /// The tile shape and constants the kernels were built with.
    pub fn constants(&self) -> ShaderConstants {
        self.kernels.constants
    }
}

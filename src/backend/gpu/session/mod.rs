//! A problem on the device: its rows (resident in shards, or streamed; see `gpu/rows.rs`),
//! the parameters, and the descent loop recorded into command buffers, several steps per
//! submission. Nothing comes back to the host inside the loop except a status word per
//! run and the loss when the caller asks for it.
//!
//! Here: the backend ([`Gpu`]) and the session's buffers, built once. Recording passes and
//! reading results back is in `record.rs`, the [`Session`] contract in `contract.rs`,
//! predictions in `predict.rs`, and what tests and benchmarks ask (the unfused oracle, the
//! memory floor, rows read back) in `oracle.rs`.

mod contract;
pub mod oracle;
mod predict;
mod record;

use std::ops::Range;
use std::sync::Arc;

use super::context::GpuContext;
use super::dispatch::{Slices, moment_groups, record_bind_group};
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

/// Steps recorded per submission (and step records in the uniform buffer).
const STEPS_PER_SUBMIT: usize = 256;

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
    /// Raw-space parameters, (d + 1)·k: what every gradient pass reads.
    params: wgpu::Buffer,
    /// The optimizer's parameters (standardized space when standardizing) and state.
    theta: wgpu::Buffer,
    state: wgpu::Buffer,
    /// μ (d) then s = 1/σ (d), when standardizing.
    moments: wgpu::Buffer,
    setup_buffer: wgpu::Buffer,
    /// One weight per class slot (max(k, 2)); ones without class weights.
    class_weights: wgpu::Buffer,
    grad: wgpu::Buffer,
    partials: wgpu::Buffer,
    status: wgpu::Buffer,
    steps: wgpu::Buffer,
    staging: wgpu::Buffer,
    step_bind: wgpu::BindGroup,
    /// Slice records (see `shaders/gradient.wgsl`), one per `slice_stride` bytes.
    slices: Slices,
    gradient_bind: wgpu::BindGroup,
    reduce_bind: wgpu::BindGroup,
    update_bind: wgpu::BindGroup,
    /// What the session was configured with, and what it derived.
    setup: Setup,
    standardization: Option<Standardization>,
    weighted: bool,
    /// Bytes between step records (the device's uniform offset alignment).
    step_stride: u64,
    /// Workgroups per shard the partials buffer has room for.
    max_groups: u32,
    /// Workgroups per shard of the moments pass ([`moment_groups`]).
    moment_groups: u32,
    /// Reused bytes of the step records of one submission.
    records: Vec<u8>,
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
        let tuning = options
            .tuning
            .unwrap_or_else(|| Tuning::for_device(ctx.info()));
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
        let p = u64::from(constants.p);
        let weighted = match &data {
            Data::Host(h) => h.weights().is_some(),
            Data::Part { whole, .. } => {
                matches!(whole.as_ref(), Data::Host(h) if h.weights().is_some())
            }
            Data::Synthetic(_) => false,
        };
        let device_rows = DeviceRows::new(ctx, &constants, &kernels.layouts.shard, &plan, data)?;

        let n = (features as u64 + 1) * u64::from(constants.k);
        let read_write = STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let params = ctx.buffer("downhill.params", 4 * n, read_write, false)?;
        let theta = ctx.buffer("downhill.theta", 4 * n, read_write, false)?;
        let state = ctx.buffer("downhill.state", 8 * n, read_write, false)?;
        let moments = ctx.buffer("downhill.moments", 8 * features as u64, read_write, false)?;
        let setup_buffer = ctx.buffer(
            "downhill.setup",
            size_of::<SetupUniform>() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            false,
        )?;
        let class_slots = u64::from(constants.k.max(2));
        let class_weights =
            ctx.buffer("downhill.class_weights", 4 * class_slots, read_write, false)?;
        let grad = ctx.buffer(
            "downhill.grad",
            4 * p,
            STORAGE | wgpu::BufferUsages::COPY_SRC,
            false,
        )?;
        let status = ctx.buffer(
            "downhill.status",
            8,
            STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            false,
        )?;
        // The moments pass writes 2d + max(k, 2) + 1 numbers per workgroup, the others P.
        let per_group = p.max(2 * features as u64 + class_slots + 1);
        let partial_bytes = 4 * per_group * shard_count as u64;
        let max_groups =
            (ctx.storage_binding_limit() / partial_bytes).min(u64::from(tuning.max_groups)) as u32;
        if max_groups == 0 {
            return Err(Error::TooLarge {
                what: "the per-workgroup gradient partials".into(),
                bytes: partial_bytes,
                limit_name: "max_storage_buffer_binding_size",
                limit: ctx.storage_binding_limit(),
                hint: "",
            });
        }
        let moment_groups = moment_groups(
            ctx,
            constants.loop_limit,
            plan.ranges.iter().map(|r| r.len()).max().unwrap_or(0) as u64,
            features as u64,
            tuning.workgroup,
            class_slots,
            (shard_count as u64, max_groups),
        )?;
        let moment_bytes = 4 * (2 * features as u64 + class_slots + 1) * shard_count as u64;
        let partials = ctx.buffer(
            "downhill.partials",
            (partial_bytes * u64::from(max_groups)).max(moment_bytes * u64::from(moment_groups)),
            STORAGE | wgpu::BufferUsages::COPY_SRC,
            false,
        )?;
        let step_stride = (size_of::<StepUniform>() as u64)
            .next_multiple_of(u64::from(limits.min_uniform_buffer_offset_alignment));
        let steps = ctx.buffer(
            "downhill.steps",
            step_stride * STEPS_PER_SUBMIT as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            false,
        )?;
        let staging = ctx.buffer(
            "downhill.staging",
            (4 * p).max(8 * n).max(8 * features as u64),
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            false,
        )?;
        let step_bind = record_bind_group(
            ctx,
            "downhill.step",
            &kernels.layouts.step,
            &steps,
            size_of::<StepUniform>(),
        );
        let slices = Slices::new(ctx, &kernels, rows, max_groups)?;
        let gradient_bind = bind_group(
            ctx,
            "downhill.gradient",
            &kernels.layouts.gradient,
            &[&params, &partials, &setup_buffer, &class_weights],
        );
        let reduce_bind = bind_group(
            ctx,
            "downhill.reduce",
            &kernels.layouts.reduce,
            &[&partials, &grad],
        );
        let update_bind = bind_group(
            ctx,
            "downhill.update",
            &kernels.layouts.update,
            &[
                &params,
                &grad,
                &status,
                &theta,
                &state,
                &moments,
                &setup_buffer,
            ],
        );

        let session = GpuSession {
            ctx,
            objective,
            rows,
            features,
            kernels,
            device_rows,
            ranges: plan.ranges,
            params,
            theta,
            state,
            moments,
            setup_buffer,
            class_weights,
            grad,
            partials,
            status,
            steps,
            staging,
            step_bind,
            slices,
            gradient_bind,
            reduce_bind,
            update_bind,
            setup: Setup::default(),
            standardization: None,
            weighted,
            step_stride,
            max_groups,
            moment_groups,
            records: Vec::new(),
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
        most.div_ceil(tile_rows).div_ceil(self.slices.span).max(1)
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

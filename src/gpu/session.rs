//! A problem on the device: its rows (resident in shards, or streamed; see [`super::rows`]),
//! the parameters, and the descent loop recorded into command buffers, several steps per
//! submission. Nothing comes back to the host inside the loop except a status word per
//! run and the loss when the caller asks for it.

use std::ops::Range;
use std::sync::Arc;

use super::GpuContext;
use super::dispatch::{Slices, moment_groups, record_bind_group};
use super::kernels::{
    GeneratorKernels, GeneratorUniform, Kernels, ROWS_TRAINING_AND_HELD_OUT, SetupUniform,
    ShaderConstants, StepUniform, Tuning, grid,
};
use super::plan::check_loops;
use super::rows::{
    DeviceRows, Plan, RowBuffers, STORAGE, bind_group, read_buffer, uniform_buffer, upload,
};
pub use crate::backend::options::GpuOptions;
use crate::backend::reference::{balanced, check_params_shape};
use crate::backend::{
    Backend, Batch, ClassWeights, Configured, Data, Evaluation, Evaluations, PassSums, RowSet,
    RunOutcome, Session, Setup, Snapshot, Step, evaluate_then_run,
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

    /// Sets the parameters from raw-space values (W row-major, then b): `params` as they
    /// are, `theta` in the optimizer's space.
    fn write_raw(&self, raw: &[f64]) {
        let k = self.objective.outputs();
        let theta = match &self.standardization {
            Some(s) => s.from_raw(raw, k),
            None => raw.to_vec(),
        };
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let queue = self.ctx.queue();
        queue.write_buffer(&self.params, 0, bytemuck::cast_slice(&f32s(raw)));
        queue.write_buffer(&self.theta, 0, bytemuck::cast_slice(&f32s(&theta)));
    }

    /// Writes the setup uniform and the class weights (one per class slot).
    fn write_setup(&self, class_weights: &[f64]) {
        let uniform = SetupUniform::new(&self.setup, self.weighted);
        let queue = self.ctx.queue();
        queue.write_buffer(&self.setup_buffer, 0, bytemuck::bytes_of(&uniform));
        let slots = self.kernels.constants.k.max(2) as usize;
        let weights: Vec<f32> = (0..slots)
            .map(|c| class_weights.get(c).copied().unwrap_or(1.0) as f32)
            .collect();
        queue.write_buffer(&self.class_weights, 0, bytemuck::cast_slice(&weights));
    }

    /// The step uniform of `step` (the `index`-th of a run) over `rows`.
    fn step_uniform(&self, step: &Step, index: u32, rows: RowSet) -> StepUniform {
        let groups = self.groups_for(&step.batch);
        StepUniform::new(step, index, groups, rows, &self.setup.rule)
    }

    fn full_batch(&self) -> Batch {
        Batch {
            start: 0,
            len: self.rows as u32,
            order: None,
        }
    }

    /// Workgroups per shard for a batch: enough tiles to go round, at most `max_groups`.
    fn groups_for(&self, batch: &Batch) -> u32 {
        let span = match batch.order {
            // In file order each shard sees only its own rows of the batch.
            None => self
                .ranges
                .iter()
                .map(|r| overlap(r, batch.start..batch.start + batch.len))
                .max()
                .unwrap_or(0),
            Some(_) => batch.len,
        };
        span.div_ceil(self.kernels.constants.tile_rows)
            .clamp(1, self.max_groups)
    }

    /// Records the fused gradient of the step at record `slot` over the rows of `shards`.
    fn record_gradient(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        slot: usize,
        uniform: &StepUniform,
        shards: &[RowBuffers],
    ) {
        let groups = uniform.groups;
        let offset = [(slot as u64 * self.step_stride) as u32];
        pass.set_pipeline(&self.kernels.gradient);
        pass.set_bind_group(0, &self.step_bind, &offset);
        pass.set_bind_group(2, &self.gradient_bind, &[]);
        for shard in shards {
            pass.set_bind_group(1, &shard.bind, &[]);
            self.slices
                .dispatch(pass, &self.kernels.constants, uniform, &shard.rows, groups);
        }
    }

    /// Records the reduction of the partials into `grad` (∇J, then J), then, if `update`,
    /// the descent step, of the step at record `slot`.
    fn record_finish(&self, pass: &mut wgpu::ComputePass<'_>, slot: usize, update: bool) {
        let c = &self.kernels.constants;
        let offset = [(slot as u64 * self.step_stride) as u32];
        let max_dim = self.ctx.limits().max_compute_workgroups_per_dimension;
        let (gx, gy) = grid(c.p.div_ceil(c.wg), max_dim);
        pass.set_pipeline(&self.kernels.reduce);
        pass.set_bind_group(0, &self.step_bind, &offset);
        pass.set_bind_group(1, &self.reduce_bind, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
        if update {
            pass.set_bind_group(0, &self.step_bind, &offset);
            pass.set_bind_group(1, &self.update_bind, &[]);
            if c.update_in_one_workgroup() {
                pass.set_pipeline(&self.kernels.update_one);
                pass.dispatch_workgroups(1, 1, 1);
            } else {
                let (gx, gy) = grid(((c.d + 1) * c.k).div_ceil(c.wg), max_dim);
                let split = self
                    .kernels
                    .update_split(self.ctx)
                    .expect("built with the session");
                for pipeline in split {
                    pass.set_pipeline(pipeline);
                    pass.dispatch_workgroups(gx, gy, 1);
                }
            }
        }
    }

    /// Streams every chunk through the slots for the step whose record is at slot 0: each
    /// chunk's partial gradient in a submission of its own, so that the host fills one slot
    /// while the device computes on the other. Returns the encoder for what follows.
    fn stream_gradient(&mut self, uniform: &StepUniform) -> Result<wgpu::CommandEncoder> {
        let (kernels, step_bind, gradient_bind, slices) = (
            &self.kernels,
            &self.step_bind,
            &self.gradient_bind,
            &self.slices,
        );
        pass_over_rows(
            self.ctx,
            &mut self.device_rows,
            self.features,
            &mut |pass, rows| {
                pass.set_pipeline(&kernels.gradient);
                pass.set_bind_group(0, step_bind, &[0]);
                pass.set_bind_group(1, &rows.bind, &[]);
                pass.set_bind_group(2, gradient_bind, &[]);
                slices.dispatch(
                    pass,
                    &kernels.constants,
                    uniform,
                    &rows.rows,
                    uniform.groups,
                );
            },
        )?;
        Ok(self.encoder("downhill.finish"))
    }

    /// Records (resident) or streams (streamed) the gradient of the step at record slot 0,
    /// then its finish; submits unless `keep` and returns the encoder for more commands.
    fn one_step(&mut self, uniform: &StepUniform, update: bool) -> Result<wgpu::CommandEncoder> {
        let mut encoder = match &self.device_rows {
            DeviceRows::Resident(_) => self.encoder("downhill.step"),
            DeviceRows::Streamed(_) => self.stream_gradient(uniform)?,
        };
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("downhill.step"),
                timestamp_writes: None,
            });
            if let DeviceRows::Resident(shards) = &self.device_rows {
                self.record_gradient(&mut pass, 0, uniform, shards);
            }
            self.record_finish(&mut pass, 0, update);
        }
        Ok(encoder)
    }

    /// Writes step records for one submission into `self.steps`.
    fn write_records(&mut self, uniforms: &[StepUniform]) {
        let stride = self.step_stride as usize;
        self.records.clear();
        self.records.resize(uniforms.len() * stride, 0);
        for (i, u) in uniforms.iter().enumerate() {
            self.records[i * stride..i * stride + size_of::<StepUniform>()]
                .copy_from_slice(bytemuck::bytes_of(u));
        }
        self.ctx.queue().write_buffer(&self.steps, 0, &self.records);
    }

    /// Evaluates J, ∇J and the metric sums over `rows` into `grad` and reads back
    /// `entries` of it starting at `first`.
    fn evaluate_rows(&mut self, rows: RowSet, first: u32, entries: u32) -> Result<Vec<f32>> {
        let step = self.evaluation_step();
        let uniform = self.step_uniform(&step, 0, rows);
        self.write_records(&[uniform]);
        let encoder = self.one_step(&uniform, false)?;
        self.read_back(encoder, &self.grad, first, entries)
    }

    /// A step over every row with learning rate 0: what evaluations record.
    fn evaluation_step(&self) -> Step {
        Step {
            epoch: 0,
            t: 1,
            batch: self.full_batch(),
            lr: 0.0,
        }
    }

    /// Per-feature sums of (x − center) and (x − center)², label counts and the row count
    /// over the training rows, added over every workgroup and shard in f64.
    fn column_moments(&mut self, center: &[f64]) -> Result<Vec<f64>> {
        let d = self.features;
        let slots = self.kernels.constants.k.max(2) as usize;
        let m = 2 * d + slots + 1;
        let center_f32: Vec<f32> = center.iter().map(|&c| c as f32).collect();
        let center_buffer = upload(
            self.ctx,
            "downhill.center",
            bytemuck::cast_slice(&center_f32),
        )?;
        let step = self.evaluation_step();
        let groups = self.moment_groups;
        let mut uniform = StepUniform::new(&step, 0, groups, RowSet::Training, &self.setup.rule);
        uniform.groups = groups;
        self.write_records(&[uniform]);
        let own = bind_group(
            self.ctx,
            "downhill.moments",
            &self.kernels.layouts.moments,
            &[&self.partials, &self.setup_buffer, &center_buffer],
        );
        let (kernels, step_bind) = (&self.kernels, &self.step_bind);
        pass_over_rows(self.ctx, &mut self.device_rows, d, &mut |pass, rows| {
            pass.set_pipeline(&kernels.moments);
            pass.set_bind_group(0, step_bind, &[0]);
            pass.set_bind_group(1, &rows.bind, &[]);
            pass.set_bind_group(2, &own, &[]);
            pass.dispatch_workgroups(groups, 1, 1);
        })?;
        let count = self.ranges.len() * groups as usize * m;
        let values = read_buffer(self.ctx, &self.partials, 4 * count as u64)?;
        let mut total = vec![0.0; m];
        for partial in values.chunks_exact(m) {
            for (t, &v) in total.iter_mut().zip(partial) {
                *t += f64::from(v);
            }
        }
        Ok(total)
    }

    fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }

    /// Finishes `encoder` with a copy of `entries` floats of `source` (from entry `first`)
    /// into the staging buffer, submits, and reads them.
    fn read_back(
        &self,
        mut encoder: wgpu::CommandEncoder,
        source: &wgpu::Buffer,
        first: u32,
        entries: u32,
    ) -> Result<Vec<f32>> {
        let bytes = 4 * u64::from(entries);
        encoder.copy_buffer_to_buffer(source, 4 * u64::from(first), &self.staging, 0, bytes);
        self.ctx.queue().submit([encoder.finish()]);
        let raw = self.ctx.read(&self.staging, bytes)?;
        Ok(bytemuck::pod_collect_to_vec(&raw))
    }

    fn gradient_from(&self, values: &[f32]) -> Gradient {
        let (d, k) = (self.features, self.objective.outputs());
        let all: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        Gradient {
            loss: all[(d + 1) * k],
            weights: all[..d * k].to_vec(),
            bias: all[d * k..(d + 1) * k].to_vec(),
        }
    }

    /// Seconds for one streaming read of all of X on the device and nothing else: the
    /// memory floor of an epoch, for benchmarks.
    pub fn time_stream_read(&self) -> Result<f64> {
        let DeviceRows::Resident(shards) = &self.device_rows else {
            return Err(Error::gpu(
                "the memory floor is measured on resident rows only",
            ));
        };
        let groups = self
            .max_groups
            .min(u32::try_from(self.partials.size() / 4).unwrap_or(u32::MAX));
        let binds: Vec<wgpu::BindGroup> = shards
            .iter()
            .map(|s| {
                bind_group(
                    self.ctx,
                    "downhill.stream_read",
                    &self.kernels.layouts.stream_read,
                    &[&s.x, &self.partials],
                )
            })
            .collect();
        let pipeline = self.kernels.stream_read(self.ctx)?;
        let mut encoder = self.encoder("downhill.stream_read");
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("downhill.stream_read"),
                timestamp_writes: None,
            });
            pass.set_pipeline(pipeline);
            for bind in &binds {
                pass.set_bind_group(0, bind, &[]);
                pass.dispatch_workgroups(groups.max(1), 1, 1);
            }
        }
        let start = std::time::Instant::now();
        self.ctx.queue().submit([encoder.finish()]);
        self.ctx.wait()?;
        Ok(start.elapsed().as_secs_f64())
    }

    /// X and y as they are in device memory, unpadded, for checking what was uploaded or
    /// generated (streamed rows: each chunk as it passes through its slot).
    pub fn read_rows(&mut self) -> Result<crate::data::Dataset> {
        let (d, dp) = (self.features, self.kernels.constants.dp as usize);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for index in 0..self.ranges.len() {
            let buffers = match &mut self.device_rows {
                DeviceRows::Resident(shards) => &shards[index],
                DeviceRows::Streamed(stream) => {
                    let mut encoder = self
                        .ctx
                        .device()
                        .create_command_encoder(&Default::default());
                    let slot = stream.fill(self.ctx, d, index, &mut encoder)?;
                    self.ctx.queue().submit([encoder.finish()]);
                    &stream.slots[slot]
                }
            };
            let n = (buffers.rows.end - buffers.rows.start) as usize;
            let padded: Vec<f32> = read_buffer(self.ctx, &buffers.x, (4 * n * dp) as u64)?;
            x.extend(padded.chunks_exact(dp).flat_map(|row| &row[..d]));
            y.extend(read_buffer(self.ctx, &buffers.y, (4 * n) as u64)?);
        }
        crate::data::Dataset::new(x, y, d)
    }

    /// Bytes of X (as padded on the device) and y: what one epoch must read at least.
    pub fn data_bytes(&self) -> u64 {
        let row_bytes = 4 * u64::from(self.kernels.constants.dp);
        (row_bytes + 4) * self.held_rows()
    }

    /// Rows this session holds: all of the problem's, or a part's.
    fn held_rows(&self) -> u64 {
        self.ranges.iter().map(|r| u64::from(r.end - r.start)).sum()
    }

    /// J and ∇J over all rows through the unfused kernels (forward, δ, Xᵀδ): the device's
    /// own oracle for the fused kernel. Needs X in one shard.
    pub fn gradient_unfused(&mut self) -> Result<Gradient> {
        if let crate::model::Loss::Custom(_) = self.objective.loss() {
            return Err(Error::gpu(
                "the unfused kernels know the built-in losses only",
            ));
        }
        let c = self.kernels.constants;
        let ctx = self.ctx;
        let batch = self.full_batch();
        let n = u64::from(batch.len);
        let k = u64::from(c.k);
        let z = ctx.buffer("downhill.z", 4 * n * k, STORAGE, false)?;
        let yhat = ctx.buffer("downhill.yhat", 4 * n * k, STORAGE, false)?;
        let delta = ctx.buffer("downhill.delta", 4 * n * k, STORAGE, false)?;
        let row_loss = ctx.buffer("downhill.row_loss", 4 * n, STORAGE, false)?;
        let layouts = &self.kernels.layouts;
        let forward_bind = bind_group(
            ctx,
            "downhill.forward",
            &layouts.forward,
            &[&self.params, &z, &yhat],
        );
        let delta_bind = bind_group(
            ctx,
            "downhill.delta",
            &layouts.delta,
            &[&z, &yhat, &delta, &row_loss],
        );
        let xt_bind = bind_group(
            ctx,
            "downhill.xt_delta",
            &layouts.xt_delta,
            &[&delta, &row_loss, &self.grad],
        );
        let step = Step {
            epoch: 0,
            t: 1,
            batch,
            lr: 0.0,
        };
        self.write_records(&[StepUniform::new(&step, 0, 1, RowSet::All, &self.setup.rule)]);
        let shard = match &self.device_rows {
            DeviceRows::Resident(shards) if shards.len() == 1 => &shards[0],
            _ => {
                return Err(Error::gpu(format!(
                    "the unfused kernels read one resident shard; this problem has {} {}",
                    self.ranges.len(),
                    if self.is_streamed() {
                        "streamed chunks"
                    } else {
                        "shards"
                    }
                )));
            }
        };
        let max_dim = ctx.limits().max_compute_workgroups_per_dimension;
        let row_groups = batch.len.div_ceil(c.wg).min(max_dim);
        // forward: its rows' z, class by class over the features; xt_delta: a column's
        // products over the rows, WG at a time.
        let rows_each = u64::from(batch.len.div_ceil(row_groups * c.wg));
        let (d, k) = (u64::from(c.d), u64::from(c.k));
        let limit = c.loop_limit;
        let what = || format!("the unfused gradient of {d} features and {k} outputs");
        check_loops(what, rows_each * (k * (d + 1) + 3 * k + 1), limit)?;
        check_loops(what, u64::from(batch.len.div_ceil(c.wg)) + 16, limit)?;
        let unfused = self.kernels.unfused(ctx)?;
        let mut encoder = self.encoder("downhill.unfused");
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("downhill.unfused"),
                timestamp_writes: None,
            });
            pass.set_bind_group(0, &self.step_bind, &[0]);
            pass.set_bind_group(1, &shard.bind, &[]);
            pass.set_pipeline(&unfused.forward);
            pass.set_bind_group(2, &forward_bind, &[]);
            pass.dispatch_workgroups(row_groups, 1, 1);
            pass.set_pipeline(&unfused.delta);
            pass.set_bind_group(2, &delta_bind, &[]);
            pass.dispatch_workgroups(row_groups, 1, 1);
            pass.set_pipeline(&unfused.xt_delta);
            pass.set_bind_group(2, &xt_bind, &[]);
            let (gx, gy) = grid(c.p, max_dim);
            pass.dispatch_workgroups(gx, gy, 1);
        }
        let values = self.read_back(encoder, &self.grad, 0, c.p)?;
        Ok(self.gradient_from(&values))
    }
}

impl Session for GpuSession<'_> {
    fn describe(&self) -> String {
        match &self.device_rows {
            DeviceRows::Streamed(_) => format!(
                "gpu ({}; rows streamed in {} chunks)",
                self.ctx.describe(),
                self.ranges.len()
            ),
            DeviceRows::Resident(_) => format!("gpu ({})", self.ctx.describe()),
        }
    }

    fn objective(&self) -> Objective {
        self.objective
    }

    fn rows(&self) -> usize {
        self.rows
    }

    fn features(&self) -> usize {
        self.features
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        check_params_shape(params, self.features, self.objective.outputs())?;
        let raw: Vec<f64> = params.flat();
        self.write_raw(&raw);
        self.ctx.check()
    }

    fn params(&mut self) -> Result<Params> {
        let count = (self.features as u32 + 1) * self.kernels.constants.k;
        let encoder = self.encoder("downhill.params");
        let values = self.read_back(encoder, &self.params, 0, count)?;
        Ok(Params::from_flat(
            self.features,
            self.objective.outputs(),
            &values,
        ))
    }

    fn gradient(&mut self) -> Result<Gradient> {
        let values = self.evaluate_rows(RowSet::All, 0, self.kernels.constants.p)?;
        Ok(self.gradient_from(&values))
    }

    fn loss(&mut self) -> Result<f64> {
        Ok(self.evaluate(RowSet::All)?.loss)
    }

    fn configure(&mut self, setup: &Setup) -> Result<Configured> {
        setup.rule.validate()?;
        if setup.standardize {
            // update_params: each bias entry's shift is a sum over the features.
            check_loops(
                || format!("standardized descent on {} features", self.features),
                self.features as u64 + 1,
                self.kernels.constants.loop_limit,
            )?;
        }
        let params = self.params()?;
        let raw: Vec<f64> = params.flat();
        let (d, k) = (self.features, self.objective.outputs());
        self.setup = setup.clone();
        self.standardization = None;
        self.write_setup(&[1.0; 2]);
        // The training rows' feature sums and label counts (center 0), then, when
        // standardizing, their squared deviations from the means.
        let first = self.column_moments(&vec![0.0; d])?;
        let slots = k.max(2);
        let counts = &first[2 * d..2 * d + slots];
        let training = first[2 * d + slots];
        if training == 0.0 {
            let fraction = setup.split.map_or(0.0, |s| s.fraction);
            return Err(Error::option(
                "validation fraction",
                fraction,
                "leaves no training rows",
            ));
        }
        if setup.standardize {
            let mean: Vec<f64> = first[..d].iter().map(|s| s / training).collect();
            let second = self.column_moments(&mean)?;
            let variance: Vec<f64> = second[d..2 * d].iter().map(|s| s / training).collect();
            let st = Standardization::from_moments(mean, &variance);
            let values: Vec<f32> = st.mean.iter().chain(&st.scale).map(|&v| v as f32).collect();
            self.ctx
                .queue()
                .write_buffer(&self.moments, 0, bytemuck::cast_slice(&values));
            self.standardization = Some(st);
        }
        let class_weights = match &setup.class_weights {
            None => None,
            Some(ClassWeights::Given(w)) => Some(w.clone()),
            Some(ClassWeights::Balanced) => Some(balanced(counts)),
        };
        self.write_setup(class_weights.as_deref().unwrap_or(&[]));
        self.write_raw(&raw);
        let state = vec![0.0f32; 2 * raw.len()];
        self.ctx
            .queue()
            .write_buffer(&self.state, 0, bytemuck::cast_slice(&state));
        self.ctx.check()?;
        Ok(Configured {
            standardization: self.standardization.clone(),
            class_weights,
            training_rows: training as u64,
            held_out_rows: self.held_rows() - training as u64,
        })
    }

    fn evaluate(&mut self, rows: RowSet) -> Result<Evaluation> {
        let v = self.evaluate_rows(rows, self.loss_entry(), 5)?;
        Ok(self.evaluation_from(&v))
    }

    fn evaluate_and_run(
        &mut self,
        steps: &[Step],
        held_out: bool,
    ) -> Result<(Evaluations, Option<RunOutcome>)> {
        let Some(first) = steps.first().filter(|s| s.batch == self.full_batch()) else {
            return evaluate_then_run(self, steps, held_out);
        };
        // The first step on its own: its pass over every row leaves the loss and metrics
        // of the parameters before it in `grad` (the held-out rows' after the training
        // rows', when asked for), read back once the step is done. The update refuses a
        // step whose loss is not finite, so then none has run.
        self.clear_status();
        let mut uniform = self.step_uniform(first, 0, RowSet::Training);
        if held_out {
            uniform.rows = ROWS_TRAINING_AND_HELD_OUT;
        }
        self.write_records(&[uniform]);
        let encoder = self.one_step(&uniform, true)?;
        let v = self.read_back(encoder, &self.grad, self.loss_entry(), 10)?;
        let training = self.evaluation_from(&v[..5]);
        let evaluations = Evaluations {
            training,
            validation: held_out.then(|| self.evaluation_from(&v[5..])),
        };
        if !training.loss.is_finite() {
            return Ok((evaluations, None));
        }
        let outcome = match self.status()? {
            RunOutcome::Completed if steps.len() > 1 => match self.run(&steps[1..])? {
                RunOutcome::Diverged { step } => RunOutcome::Diverged { step: step + 1 },
                completed => completed,
            },
            first => first,
        };
        Ok((evaluations, Some(outcome)))
    }

    fn pass_sums(&mut self, step: &Step, rows: RowSet) -> Result<PassSums> {
        let uniform = self.step_uniform(step, 0, rows);
        self.write_records(&[uniform]);
        let encoder = self.one_step(&uniform, false)?;
        let values = self.read_back(encoder, &self.grad, 0, self.kernels.constants.p)?;
        let n = (self.features + 1) * self.objective.outputs();
        let all: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        // The reduction wrote the weighted means of the gradient and the loss.
        let weight = all[n + 1];
        Ok(PassSums {
            gradient: all[..n].iter().map(|g| g * weight).collect(),
            metrics: [all[n] * weight, weight, all[n + 2], all[n + 3], all[n + 4]],
        })
    }

    fn column_sums(&mut self, center: &[f64]) -> Result<Vec<f64>> {
        self.column_moments(center)
    }

    fn snapshot(&mut self) -> Result<Snapshot> {
        let n = (self.features as u32 + 1) * self.kernels.constants.k;
        let len = self.setup.rule.optimizer.state_len() as u32 * n;
        let read = |buffer: &wgpu::Buffer, count: u32| -> Result<Vec<f64>> {
            if count == 0 {
                return Ok(Vec::new());
            }
            let values = self.read_back(self.encoder("downhill.snapshot"), buffer, 0, count)?;
            Ok(values.iter().map(|&v| f64::from(v)).collect())
        };
        Ok(Snapshot {
            theta: read(&self.theta, n)?,
            state: read(&self.state, len)?,
            raw: read(&self.params, n)?,
        })
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        let n = (self.features + 1) * self.objective.outputs();
        snapshot.check(n, self.setup.rule.optimizer.state_len() * n)?;
        let queue = self.ctx.queue();
        for (buffer, values) in [
            (&self.theta, &snapshot.theta),
            (&self.state, &snapshot.state),
            (&self.params, &snapshot.raw),
        ] {
            let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
            if !values.is_empty() {
                queue.write_buffer(buffer, 0, bytemuck::cast_slice(&values));
            }
        }
        self.ctx.check()
    }

    fn predict(&mut self) -> Result<Vec<f64>> {
        self.predict_rows()
    }

    fn run(&mut self, steps: &[Step]) -> Result<RunOutcome> {
        self.clear_status();
        if self.is_streamed() {
            self.run_streamed(steps)?;
        } else {
            self.run_resident(steps);
        }
        self.status()
    }
}

impl GpuSession<'_> {
    /// Clears `status` for the steps to come.
    fn clear_status(&self) {
        self.ctx
            .queue()
            .write_buffer(&self.status, 0, bytemuck::cast_slice(&[0u32, u32::MAX]));
    }

    /// How the steps since `status` was cleared ended.
    fn status(&self) -> Result<RunOutcome> {
        let status = self.read_back(self.encoder("downhill.status"), &self.status, 0, 2)?;
        let status: Vec<u32> = status.iter().map(|v| v.to_bits()).collect();
        Ok(if status[0] == 0 {
            RunOutcome::Completed
        } else {
            RunOutcome::Diverged {
                step: status[1] as usize,
            }
        })
    }

    /// Where J begins in `grad`, after ∇J: the first of the five metric entries.
    fn loss_entry(&self) -> u32 {
        (self.features as u32 + 1) * self.kernels.constants.k
    }

    /// An evaluation from the metric entries of `grad` (J, Σw, then the weighted sums).
    fn evaluation_from(&self, v: &[f32]) -> Evaluation {
        let weight = f64::from(v[1]);
        let sums = [
            f64::from(v[0]) * weight,
            weight,
            f64::from(v[2]),
            f64::from(v[3]),
            f64::from(v[4]),
        ];
        Evaluation::from_sums(self.objective.model(), sums)
    }

    /// z of every row, shard by shard (or chunk by chunk when streamed), read back as each
    /// one finishes: the device holds z for one shard at a time.
    fn predict_rows(&mut self) -> Result<Vec<f64>> {
        let ctx = self.ctx;
        let k = u64::from(self.kernels.constants.k);
        let most_rows = self
            .ranges
            .iter()
            .map(|r| r.len() as u64)
            .max()
            .unwrap_or(1);
        let bytes = 4 * k * most_rows.max(1);
        let limit = ctx.storage_binding_limit();
        if bytes > limit {
            return Err(Error::TooLarge {
                what: "the predictions of one shard".into(),
                bytes,
                limit_name: "max_storage_buffer_binding_size",
                limit,
                hint: "; predict with --backend cpu",
            });
        }
        let max_dim = ctx.limits().max_compute_workgroups_per_dimension;
        let wg = u64::from(self.kernels.constants.wg);
        if k > u64::from(max_dim) {
            return Err(Error::TooLarge {
                what: format!("predicting {k} classes (one row of workgroups each)"),
                bytes: k,
                limit_name: "max_compute_workgroups_per_dimension",
                limit: u64::from(max_dim),
                hint: "; predict with --backend cpu",
            });
        }
        let sweeps = most_rows.div_ceil(u64::from(max_dim) * wg).max(1);
        check_loops(
            || format!("predicting rows of {} features", self.features),
            sweeps * (self.features as u64 + 1),
            self.kernels.constants.loop_limit,
        )?;
        let z = ctx.buffer(
            "downhill.predict.z",
            bytes,
            STORAGE | wgpu::BufferUsages::COPY_SRC,
            false,
        )?;
        let readback = ctx.buffer(
            "downhill.predict.readback",
            bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            false,
        )?;
        let kernels = Arc::clone(&self.kernels);
        let bind = bind_group(
            ctx,
            "downhill.predict",
            &kernels.layouts.predict,
            &[&self.params, &z],
        );
        let pipeline = kernels.predict(ctx)?;
        let mut out = Vec::with_capacity(self.rows * k as usize);
        let predict = |encoder: &mut wgpu::CommandEncoder, rows: &RowBuffers| -> u64 {
            let n = rows.rows.len() as u32;
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("downhill.predict"),
                    timestamp_writes: None,
                });
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, &rows.bind, &[]);
                pass.set_bind_group(1, &bind, &[]);
                let groups = n.div_ceil(kernels.constants.wg).clamp(1, max_dim);
                pass.dispatch_workgroups(groups, k as u32, 1);
            }
            let size = 4 * k * u64::from(n);
            encoder.copy_buffer_to_buffer(&z, 0, &readback, 0, size);
            size
        };
        let count = self.ranges.len();
        for index in 0..count {
            let mut encoder = self.encoder("downhill.predict");
            let size = match &mut self.device_rows {
                DeviceRows::Resident(shards) => {
                    let size = predict(&mut encoder, &shards[index]);
                    ctx.queue().submit([encoder.finish()]);
                    size
                }
                DeviceRows::Streamed(stream) => {
                    let slot = stream.fill(ctx, self.features, index, &mut encoder)?;
                    let size = predict(&mut encoder, &stream.slots[slot]);
                    let submission = ctx.queue().submit([encoder.finish()]);
                    stream.submitted(slot, submission);
                    size
                }
            };
            let values = ctx.read(&readback, size)?;
            let values: &[f32] = bytemuck::cast_slice(&values);
            out.extend(values.iter().map(|&v| f64::from(v)));
        }
        Ok(out)
    }

    /// Records the steps, up to STEPS_PER_SUBMIT of them per submission.
    fn run_resident(&mut self, steps: &[Step]) {
        let mut uniforms = Vec::with_capacity(STEPS_PER_SUBMIT);
        for (chunk_index, chunk) in steps.chunks(STEPS_PER_SUBMIT).enumerate() {
            uniforms.clear();
            for (i, step) in chunk.iter().enumerate() {
                let index = (chunk_index * STEPS_PER_SUBMIT + i) as u32;
                uniforms.push(self.step_uniform(step, index, RowSet::Training));
            }
            self.write_records(&uniforms);
            let DeviceRows::Resident(shards) = &self.device_rows else {
                unreachable!("run_resident on streamed rows");
            };
            let mut encoder = self.encoder("downhill.descent");
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("downhill.descent"),
                    timestamp_writes: None,
                });
                for (slot, uniform) in uniforms.iter().enumerate() {
                    self.record_gradient(&mut pass, slot, uniform, shards);
                    self.record_finish(&mut pass, slot, true);
                }
            }
            self.ctx.queue().submit([encoder.finish()]);
        }
    }

    /// Streams every chunk through the slots for each step. Full batches only: a
    /// mini-batch draws rows from every chunk, so each step would stream all of X.
    fn run_streamed(&mut self, steps: &[Step]) -> Result<()> {
        for (index, step) in steps.iter().enumerate() {
            if step.batch.order.is_some() {
                return Err(Error::option(
                    "batch size",
                    step.batch.len,
                    "mini-batches need every row in device memory, and these rows are \
                     streamed (--max-device-bytes); use full-batch descent, a larger \
                     --max-device-bytes, or --backend cpu",
                ));
            }
            let uniform = self.step_uniform(step, index as u32, RowSet::Training);
            self.write_records(&[uniform]);
            let encoder = self.one_step(&uniform, true)?;
            self.ctx.queue().submit([encoder.finish()]);
        }
        Ok(())
    }
}

/// Rounds 64-bit integers to f32 with the generator's own conversion on the device (the
/// one that makes synthetic labels): the check that it rounds as Rust's `as f32` does.
pub fn convert_i64_on_device(gpu: &Gpu, values: &[i64]) -> Result<Vec<f32>> {
    let ctx = gpu.context();
    let constants = ShaderConstants::new(&Objective::linear(), 1, 1, Tuning::GPU, 16384, None)?;
    let kernels = GeneratorKernels::new(ctx, &constants)?;
    let words: Vec<u32> = values
        .iter()
        .flat_map(|&v| [v as u32, (v >> 32) as u32])
        .collect();
    let input = upload(ctx, "downhill.convert_in", bytemuck::cast_slice(&words))?;
    let bytes = 4 * values.len() as u64;
    let output = ctx.buffer(
        "downhill.convert_out",
        bytes,
        STORAGE | wgpu::BufferUsages::COPY_SRC,
        false,
    )?;
    let unused_y = ctx.buffer("downhill.unused", 16, STORAGE, false)?;
    let unused_tables = ctx.buffer("downhill.unused", 16, STORAGE, false)?;
    let u = GeneratorUniform {
        rows: values.len() as u32,
        ..Default::default()
    };
    let uniform = uniform_buffer(ctx, "downhill.generator", bytemuck::bytes_of(&u))?;
    let staging = ctx.buffer(
        "downhill.read",
        bytes,
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        false,
    )?;
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&kernels.convert);
        pass.set_bind_group(
            0,
            &bind_group(ctx, "downhill.generator", &kernels.uniform, &[&uniform]),
            &[],
        );
        let buffers = [&output, &unused_y, &input, &unused_tables];
        pass.set_bind_group(
            1,
            &bind_group(ctx, "downhill.generated", &kernels.buffers, &buffers),
            &[],
        );
        pass.dispatch_workgroups((values.len() as u32).div_ceil(constants.wg), 1, 1);
    }
    encoder.copy_buffer_to_buffer(&output, 0, &staging, 0, bytes);
    ctx.queue().submit([encoder.finish()]);
    Ok(bytemuck::pod_collect_to_vec(&ctx.read(&staging, bytes)?))
}

/// Rows two ranges share.
pub(super) fn overlap(a: &Range<u32>, b: Range<u32>) -> u32 {
    a.end.min(b.end).saturating_sub(a.start.max(b.start))
}

/// Records `record` over every run of rows: all resident shards in one submission, or
/// each streamed chunk in a submission of its own as it passes through its slot (the host
/// fills one slot while the device computes on the other).
fn pass_over_rows(
    ctx: &GpuContext,
    rows: &mut DeviceRows<'_>,
    d: usize,
    record: &mut dyn FnMut(&mut wgpu::ComputePass<'_>, &RowBuffers),
) -> Result<()> {
    let label = Some("downhill.rows");
    let descriptor = wgpu::ComputePassDescriptor {
        label,
        timestamp_writes: None,
    };
    match rows {
        DeviceRows::Resident(shards) => {
            let mut encoder = ctx
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label });
            {
                let mut pass = encoder.begin_compute_pass(&descriptor);
                for shard in shards.iter() {
                    record(&mut pass, shard);
                }
            }
            ctx.queue().submit([encoder.finish()]);
        }
        DeviceRows::Streamed(stream) => {
            for index in 0..stream.chunks.len() {
                let mut encoder = ctx
                    .device()
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label });
                let slot = stream.fill(ctx, d, index, &mut encoder)?;
                {
                    let mut pass = encoder.begin_compute_pass(&descriptor);
                    record(&mut pass, &stream.slots[slot]);
                }
                let submission = ctx.queue().submit([encoder.finish()]);
                stream.submitted(slot, submission);
            }
        }
    }
    Ok(())
}

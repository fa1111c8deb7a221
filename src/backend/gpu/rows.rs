//! Where a session's rows live on the device: resident, in shards of whole rows (one
//! storage buffer each, within the binding limit), or, when they do not fit the device
//! budget, streamed through two slots: while the device computes on one slot, the host
//! fills the other (an upload of host rows, or a dispatch of the generator).

use std::ops::Range;

use super::context::GpuContext;
use super::kernels::{GeneratorKernels, GeneratorUniform, ShaderConstants, ShardUniform};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::synth::{Synthetic, quantile_tables};

pub(crate) const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE;

/// The buffers of one run of rows: a shard (resident) or a slot (streamed).
pub(crate) struct RowBuffers {
    /// The global rows it holds (a slot: the rows of its current chunk).
    pub rows: Range<u32>,
    pub x: wgpu::Buffer,
    pub y: wgpu::Buffer,
    /// `ShardUniform`: the rows, and the index that places its partials.
    pub uniform: wgpu::Buffer,
    /// Sample weights (a placeholder of 16 bytes when rows are unweighted).
    pub w: wgpu::Buffer,
    /// x, y, uniform, w, for the kernels' group 1.
    pub bind: wgpu::BindGroup,
}

impl RowBuffers {
    /// Empty buffers for `capacity` rows of `row_bytes` each (padded to whole vec4s), with
    /// room for sample weights when `weighted`.
    fn empty(
        ctx: &GpuContext,
        layout: &wgpu::BindGroupLayout,
        capacity: u32,
        row_bytes: u64,
        weighted: bool,
    ) -> Result<Self> {
        let usage = STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        let x_bytes = (row_bytes * u64::from(capacity)).next_multiple_of(16);
        let x = ctx.buffer("downhill.x", x_bytes, usage, false)?;
        let y_bytes = (4 * u64::from(capacity)).next_multiple_of(16);
        let y = ctx.buffer("downhill.y", y_bytes, usage, false)?;
        let w_bytes = if weighted { y_bytes } else { 16 };
        let w = ctx.buffer("downhill.w", w_bytes, usage, false)?;
        Self::with(ctx, layout, x, y, w)
    }

    fn with(
        ctx: &GpuContext,
        layout: &wgpu::BindGroupLayout,
        x: wgpu::Buffer,
        y: wgpu::Buffer,
        w: wgpu::Buffer,
    ) -> Result<Self> {
        let uniform = ctx.buffer(
            "downhill.shard",
            size_of::<ShardUniform>() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            false,
        )?;
        let bind = bind_group(ctx, "downhill.shard", layout, &[&x, &y, &uniform, &w]);
        Ok(RowBuffers {
            rows: 0..0,
            x,
            y,
            uniform,
            w,
            bind,
        })
    }

    /// Makes these buffers stand for `rows`, whose partials go to place `index`.
    fn assign(&mut self, ctx: &GpuContext, rows: Range<u32>, index: u32) {
        let uniform = ShardUniform {
            row_begin: rows.start,
            row_end: rows.end,
            index,
            _pad: 0,
        };
        ctx.queue()
            .write_buffer(&self.uniform, 0, bytemuck::bytes_of(&uniform));
        self.rows = rows;
    }
}

/// Where the rows are.
pub(crate) enum DeviceRows<'a> {
    Resident(Vec<RowBuffers>),
    Streamed(Box<Stream<'a>>),
}

/// How rows are laid out: resident shards or streamed chunks, both lists of row ranges.
pub(crate) struct Plan {
    pub ranges: Vec<Range<u32>>,
    pub streamed: bool,
}

impl Plan {
    /// Shards of at most `binding_limit` bytes when the data fit `budget`; else chunks
    /// such that two slots of them fit it.
    pub fn new(
        window: Range<usize>,
        row_bytes: u64,
        binding_limit: u64,
        budget: Option<u64>,
    ) -> Result<Self> {
        let total = window.len() as u64 * (row_bytes + 4);
        let streamed = budget.is_some_and(|b| total > b);
        // Each run's X within one binding (less 16 bytes: buffers are padded to whole
        // vec4s); streamed, two slots of X and y (4 bytes a row) within the budget too.
        let mut run_rows = binding_limit.saturating_sub(16) / row_bytes;
        let mut per_run = binding_limit;
        if let (true, Some(b)) = (streamed, budget) {
            per_run = b / 2;
            run_rows = run_rows.min(per_run.saturating_sub(32) / (row_bytes + 4));
        }
        let run_rows = run_rows.min(u64::from(u32::MAX));
        if run_rows == 0 {
            return Err(Error::TooLarge {
                what: format!("one row of {} bytes", row_bytes + 4),
                bytes: row_bytes + 4,
                limit_name: if streamed {
                    "budget (--max-device-bytes) for two streaming slots"
                } else {
                    "max_storage_buffer_binding_size"
                },
                limit: per_run,
                hint: "",
            });
        }
        let ranges = window
            .clone()
            .step_by(run_rows as usize)
            .map(|b| b as u32..(b + run_rows as usize).min(window.end) as u32)
            .collect();
        Ok(Plan { ranges, streamed })
    }
}

/// Rows that live elsewhere, brought through two slots a chunk at a time.
pub(crate) struct Stream<'a> {
    pub chunks: Vec<Range<u32>>,
    pub slots: [RowBuffers; 2],
    /// The last submission that read each slot: refilled only once it is done.
    in_flight: [Option<wgpu::SubmissionIndex>; 2],
    source: Source<'a>,
    /// Host rows padded to the device's row stride.
    padded: Vec<f32>,
}

enum Source<'a> {
    Host(&'a Dataset),
    Synthetic(Box<(Generator, [GeneratorTarget; 2])>),
}

impl<'a> DeviceRows<'a> {
    /// Places `data` on the device following `plan`.
    pub fn new(
        ctx: &GpuContext,
        constants: &ShaderConstants,
        layout: &wgpu::BindGroupLayout,
        plan: &Plan,
        data: crate::backend::Data<'a>,
    ) -> Result<Self> {
        use crate::backend::Data;
        // A part's rows come from the whole problem at their global indices (the plan's
        // ranges lie within the part).
        let data = match data {
            Data::Part { whole, .. } => *whole,
            data => data,
        };
        if let Data::Part { .. } = data {
            return Err(Error::option(
                "rows",
                "a part of a part",
                "take parts of a whole problem",
            ));
        }
        if let Data::Sparse(_) = data {
            return Err(crate::backend::no_sparse_passes("gpu"));
        }
        let d = constants.d as usize;
        let row_bytes = 4 * u64::from(constants.dp);
        if plan.streamed {
            let capacity = plan
                .ranges
                .iter()
                .map(|r| r.end - r.start)
                .max()
                .unwrap_or(1);
            let weighted = matches!(&data, Data::Host(h) if h.weights().is_some());
            let slots = [
                RowBuffers::empty(ctx, layout, capacity, row_bytes, weighted)?,
                RowBuffers::empty(ctx, layout, capacity, row_bytes, weighted)?,
            ];
            let source = match data {
                Data::Host(host) => Source::Host(host),
                Data::Synthetic(problem) => {
                    let generator = Generator::new(ctx, constants, problem)?;
                    let targets = [
                        generator.target(ctx, &slots[0])?,
                        generator.target(ctx, &slots[1])?,
                    ];
                    Source::Synthetic(Box::new((generator, targets)))
                }
                Data::Part { .. } | Data::Sparse(_) => unreachable!("refused above"),
            };
            return Ok(DeviceRows::Streamed(Box::new(Stream {
                chunks: plan.ranges.clone(),
                slots,
                in_flight: [None, None],
                source,
                padded: Vec::new(),
            })));
        }
        let mut shards = Vec::with_capacity(plan.ranges.len());
        let mut padded = Vec::new();
        for (index, range) in plan.ranges.iter().enumerate() {
            let (begin, end) = (range.start as usize, range.end as usize);
            let mut shard = match &data {
                Data::Host(host) => {
                    let x_rows = pad_rows(&host.x()[begin * d..end * d], d, &mut padded);
                    let x = upload(ctx, "downhill.x", bytemuck::cast_slice(x_rows))?;
                    let y = upload(
                        ctx,
                        "downhill.y",
                        bytemuck::cast_slice(&host.y()[begin..end]),
                    )?;
                    let w = match host.weights() {
                        Some(w) => upload(ctx, "downhill.w", bytemuck::cast_slice(&w[begin..end]))?,
                        None => ctx.buffer("downhill.w", 16, STORAGE, false)?,
                    };
                    RowBuffers::with(ctx, layout, x, y, w)?
                }
                Data::Synthetic(_) => {
                    let rows = range.end - range.start;
                    RowBuffers::empty(ctx, layout, rows, row_bytes, false)?
                }
                Data::Part { .. } | Data::Sparse(_) => unreachable!("refused above"),
            };
            shard.assign(ctx, range.clone(), index as u32);
            shards.push(shard);
        }
        if let Data::Synthetic(problem) = data {
            let generator = Generator::new(ctx, constants, problem)?;
            let targets = shards
                .iter()
                .map(|s| generator.target(ctx, s))
                .collect::<Result<Vec<_>>>()?;
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                for (shard, target) in shards.iter().zip(&targets) {
                    generator.record(ctx, &mut pass, target, shard.rows.clone());
                }
            }
            ctx.queue().submit([encoder.finish()]);
            ctx.wait()?;
        }
        Ok(DeviceRows::Resident(shards))
    }
}

impl Stream<'_> {
    /// Fills the slot for chunk `index` (waiting until the device is done with it) and
    /// records into `encoder` what the device must do first (generating rows, for
    /// synthetic problems). Returns the slot.
    pub fn fill(
        &mut self,
        ctx: &GpuContext,
        d: usize,
        index: usize,
        encoder: &mut wgpu::CommandEncoder,
    ) -> Result<usize> {
        let slot = index % 2;
        if let Some(done) = self.in_flight[slot].take() {
            ctx.wait_for(done)?;
        }
        let range = self.chunks[index].clone();
        self.slots[slot].assign(ctx, range.clone(), index as u32);
        let (begin, end) = (range.start as usize, range.end as usize);
        match &self.source {
            Source::Host(host) => {
                let x_rows = pad_rows(&host.x()[begin * d..end * d], d, &mut self.padded);
                ctx.queue()
                    .write_buffer(&self.slots[slot].x, 0, bytemuck::cast_slice(x_rows));
                ctx.queue().write_buffer(
                    &self.slots[slot].y,
                    0,
                    bytemuck::cast_slice(&host.y()[begin..end]),
                );
                if let Some(w) = host.weights() {
                    let w = bytemuck::cast_slice(&w[begin..end]);
                    ctx.queue().write_buffer(&self.slots[slot].w, 0, w);
                }
            }
            Source::Synthetic(synthetic) => {
                let (generator, targets) = &**synthetic;
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("downhill.generate"),
                    timestamp_writes: None,
                });
                generator.record(ctx, &mut pass, &targets[slot], range);
            }
        }
        Ok(slot)
    }

    /// Notes that `submission` reads `slot`.
    pub fn submitted(&mut self, slot: usize, submission: wgpu::SubmissionIndex) {
        self.in_flight[slot] = Some(submission);
    }
}

/// The device's synthetic-data generator for one problem: its kernels, the true
/// parameters (as integers, generated once) and the quantile tables.
pub(crate) struct Generator {
    kernels: GeneratorKernels,
    problem: Synthetic,
    wg: u32,
    w_int: wgpu::Buffer,
    tables: wgpu::Buffer,
}

/// What one generator dispatch writes: a shard or a slot.
pub(crate) struct GeneratorTarget {
    uniform: wgpu::Buffer,
    uniform_bind: wgpu::BindGroup,
    buffers_bind: wgpu::BindGroup,
}

impl Generator {
    /// Builds the kernels and generates the true parameters on the device.
    pub fn new(ctx: &GpuContext, constants: &ShaderConstants, problem: Synthetic) -> Result<Self> {
        // generate_rows: one row an invocation (more past 65 535 workgroups), each looping
        // over its features and, for each, the classes.
        let (d, k) = (u64::from(constants.d), u64::from(constants.k));
        let max_dim = u64::from(ctx.limits().max_compute_workgroups_per_dimension);
        let rows_each = (problem.rows() as u64).div_ceil(max_dim * u64::from(constants.wg));
        super::plan::check_loops(
            || format!("generating synthetic rows of {d} features and {k} outputs"),
            rows_each.max(1) * (d * (k + 1) + 2 * k + 2),
            constants.loop_limit,
        )?;
        let kernels = GeneratorKernels::new(ctx, constants)?;
        let params = (constants.d + 1) * constants.k;
        let w_int = ctx.buffer(
            "downhill.true_params",
            4 * u64::from(params),
            STORAGE,
            false,
        )?;
        let tables = upload(
            ctx,
            "downhill.quantiles",
            bytemuck::cast_slice(&quantile_tables()),
        )?;
        let generator = Generator {
            kernels,
            problem,
            wg: constants.wg,
            w_int,
            tables,
        };
        // The parameter pass binds no rows; it writes w_int alone.
        let unused_x = ctx.buffer("downhill.unused", 16, STORAGE, false)?;
        let unused_y = ctx.buffer("downhill.unused", 16, STORAGE, false)?;
        let target = generator.bind(ctx, &unused_x, &unused_y)?;
        generator.write_uniform(ctx, &target, 0..0);
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&generator.kernels.params);
            pass.set_bind_group(0, &target.uniform_bind, &[]);
            pass.set_bind_group(1, &target.buffers_bind, &[]);
            pass.dispatch_workgroups(params.div_ceil(constants.wg), 1, 1);
        }
        ctx.queue().submit([encoder.finish()]);
        Ok(generator)
    }

    fn bind(
        &self,
        ctx: &GpuContext,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
    ) -> Result<GeneratorTarget> {
        let uniform = ctx.buffer(
            "downhill.generator",
            size_of::<GeneratorUniform>() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            false,
        )?;
        let uniform_bind = bind_group(
            ctx,
            "downhill.generator",
            &self.kernels.uniform,
            &[&uniform],
        );
        let buffers = [x, y, &self.w_int, &self.tables];
        let buffers_bind = bind_group(ctx, "downhill.generated", &self.kernels.buffers, &buffers);
        Ok(GeneratorTarget {
            uniform,
            uniform_bind,
            buffers_bind,
        })
    }

    /// A target writing into `rows`' buffers.
    pub fn target(&self, ctx: &GpuContext, rows: &RowBuffers) -> Result<GeneratorTarget> {
        self.bind(ctx, &rows.x, &rows.y)
    }

    /// Sets `target`'s uniform: this problem's seed and shift, and the global rows `range`.
    fn write_uniform(&self, ctx: &GpuContext, target: &GeneratorTarget, range: Range<u32>) {
        let seed = self.problem.seed();
        let uniform = GeneratorUniform {
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            row_begin: range.start,
            rows: range.end - range.start,
            weight_shift: self.problem.weight_shift(),
            _pad: [0; 3],
        };
        ctx.queue()
            .write_buffer(&target.uniform, 0, bytemuck::bytes_of(&uniform));
    }

    /// Records the generation of the global rows `range` into `target`.
    pub fn record(
        &self,
        ctx: &GpuContext,
        pass: &mut wgpu::ComputePass<'_>,
        target: &GeneratorTarget,
        range: Range<u32>,
    ) {
        self.write_uniform(ctx, target, range.clone());
        let max_dim = ctx.limits().max_compute_workgroups_per_dimension;
        pass.set_pipeline(&self.kernels.rows);
        pass.set_bind_group(0, &target.uniform_bind, &[]);
        pass.set_bind_group(1, &target.buffers_bind, &[]);
        pass.dispatch_workgroups(
            (range.end - range.start).div_ceil(self.wg).min(max_dim),
            1,
            1,
        );
    }
}

/// A storage buffer holding `bytes`, written at creation (no staging copy). The size is
/// padded to 16 bytes (zeros) so kernels can read it as vec4s.
pub(crate) fn upload(ctx: &GpuContext, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer> {
    let size = (bytes.len() as u64).next_multiple_of(16);
    let usage = STORAGE | wgpu::BufferUsages::COPY_SRC;
    let buffer = ctx.buffer(label, size, usage, true)?;
    buffer
        .slice(..bytes.len() as u64)
        .get_mapped_range_mut()
        .map_err(|e| Error::gpu(format!("uploading {label}: {e}")))?
        .copy_from_slice(bytes);
    buffer.unmap();
    Ok(buffer)
}

/// The first `bytes` of a COPY_SRC buffer, through a staging buffer of their size (checks
/// and tests, not the descent loop).
pub(crate) fn read_buffer(ctx: &GpuContext, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<f32>> {
    let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
    let staging = ctx.buffer("downhill.read", bytes, usage, false)?;
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, bytes);
    ctx.queue().submit([encoder.finish()]);
    Ok(bytemuck::pod_collect_to_vec(&ctx.read(&staging, bytes)?))
}

/// A uniform buffer holding `bytes`.
pub(crate) fn uniform_buffer(ctx: &GpuContext, label: &str, bytes: &[u8]) -> Result<wgpu::Buffer> {
    let buffer = ctx.buffer(label, bytes.len() as u64, wgpu::BufferUsages::UNIFORM, true)?;
    buffer
        .slice(..)
        .get_mapped_range_mut()
        .map_err(|e| Error::gpu(format!("writing {label}: {e}")))?
        .copy_from_slice(bytes);
    buffer.unmap();
    Ok(buffer)
}

pub(crate) fn bind_group(
    ctx: &GpuContext,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    buffers: &[&wgpu::Buffer],
) -> wgpu::BindGroup {
    let entries: Vec<wgpu::BindGroupEntry> = buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry {
            binding: i as u32,
            resource: b.as_entire_binding(),
        })
        .collect();
    ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &entries,
    })
}

/// `rows` (row-major, `d` floats each) with each row padded to a multiple of 4 floats,
/// using `scratch` when padding is needed.
fn pad_rows<'s>(rows: &'s [f32], d: usize, scratch: &'s mut Vec<f32>) -> &'s [f32] {
    let dp = d.next_multiple_of(4);
    if dp == d {
        return rows;
    }
    scratch.clear();
    for row in rows.chunks_exact(d) {
        scratch.extend_from_slice(row);
        scratch.extend(std::iter::repeat_n(0.0, dp - d));
    }
    scratch
}

//! Sparse rows on the GPU (`shaders/sparse.wgsl`): the session's rows as CSR and, for
//! Xᵀ(w·δ), a column-major copy (CSC), in shards that each fit one storage binding
//! ([`shard`]), resident, or streamed through one slot when they pass the device budget
//! (`--max-device-bytes`). A pass is three dispatches a shard (rows, columns, row blocks)
//! and one read back of its gradient's column sums and its blocks' metrics, added on the
//! host in f64 in shard, segment and block order. Every sum on the device runs in a fixed
//! order, so reruns give the same bits. The optimizer, the solvers and the
//! standardization run on the host ([`SparseRowsSession`]), as for the CPU's sparse rows;
//! the row weights of each pass (sample and class weights, the held-out split, a
//! mini-batch) come from there and are uploaded with the parameters; a shard with no
//! weighted row is skipped. The exact Newton's Hessian is [`hessian`]'s.

mod hessian;
mod shard;

use std::cell::OnceCell;
use std::ops::Range;

use self::hessian::HessianPlan;
use self::shard::{ROWS_PER_BLOCK, Shard, ShardBuffers, WG, cut, slot_sizes};
use super::constants::{Mode, SPARSE, ShaderConstants};
use super::context::GpuContext;
use super::kernels::{Binding, RO, RW, bind_group_layout, grid};
use super::plan::check_loops;
use super::rows::STORAGE;
use crate::backend::options::GpuOptions;
use crate::backend::sparse::{RowWeight, SparsePasses, SparseRowsSession, window_nonzeros};
use crate::descent::PassSums;
use crate::error::{Error, Result};
use crate::model::{Loss, Model, Objective};
use crate::sparse::SparseDataset;

/// The pipelines of one problem's shape.
struct Kernels {
    gradient: wgpu::ComputePipeline,
    direction: wgpu::ComputePipeline,
    predict: wgpu::ComputePipeline,
    columns: wgpu::ComputePipeline,
    blocks: wgpu::ComputePipeline,
}

/// Where the shards' buffers live.
enum Placement {
    /// Each shard's own, uploaded once.
    Resident(Vec<ShardBuffers>),
    /// One slot, refilled from the host for each shard of every pass.
    Streamed(Box<ShardBuffers>),
}

/// Sparse rows on the GPU: the host's descent around the GPU's passes.
pub type GpuSparseSession<'a> = SparseRowsSession<'a, GpuSparsePasses<'a>>;

/// The GPU's passes over rows `window` of sparse rows, uploaded.
pub struct GpuSparsePasses<'a> {
    ctx: &'a GpuContext,
    data: &'a SparseDataset,
    window: Range<usize>,
    objective: Objective,
    kernels: Kernels,
    /// θ, then a direction: read by every shard.
    params: wgpu::Buffer,
    shards: Vec<Shard>,
    placement: Placement,
    /// Big enough for any shard's sums, or its z.
    staging: wgpu::Buffer,
    /// Workgroups per dimension at most.
    max_groups: u32,
    constants: ShaderConstants,
    /// The shape's, the rows' and the columns' bind group layouts.
    layouts: [wgpu::BindGroupLayout; 3],
    binding_limit: u64,
    /// The exact Hessian's kernels and buffers, made on its first pass.
    hessian: OnceCell<HessianPlan>,
}

impl<'a> SparseRowsSession<'a, GpuSparsePasses<'a>> {
    /// Uploads rows `window` of `data` (CSR, and the CSC copy made here) for `objective`,
    /// in shards of at most `options.max_shard_bytes` a buffer, streamed past
    /// `options.max_device_bytes`.
    pub fn new(
        ctx: &'a GpuContext,
        options: GpuOptions,
        data: &'a SparseDataset,
        window: Range<usize>,
        objective: Objective,
    ) -> Result<Self> {
        let passes = GpuSparsePasses::new(ctx, options, data, window.clone(), objective)?;
        Ok(Self::with_passes(data, window, objective, passes))
    }
}

impl<'a> GpuSparsePasses<'a> {
    fn new(
        ctx: &'a GpuContext,
        options: GpuOptions,
        data: &'a SparseDataset,
        window: Range<usize>,
        objective: Objective,
    ) -> Result<Self> {
        if objective.model() == Model::Softmax && matches!(objective.loss(), Loss::Custom(_)) {
            return Err(Error::option(
                "backend",
                "gpu",
                "has no sparse passes for a custom softmax loss; --backend cpu fits it",
            ));
        }
        let (d, k) = (data.features(), objective.outputs());
        // A row's loops: its non-zeros for z (and for the direction's logits), then a few
        // over the classes.
        let offsets = &data.offsets()[window.start..=window.end];
        let longest = offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        let needed = (2 * longest + 6) * k as u64 + 16;
        check_loops(
            || format!("a row of {longest} non-zeros in the GPU's sparse passes"),
            needed,
            ctx.loop_limit()?,
        )?;
        let limit = options
            .max_shard_bytes
            .unwrap_or(u64::MAX)
            .min(ctx.storage_binding_limit());
        let pk = (d + 1) * k;
        if 8 * pk as u64 > limit {
            return Err(Error::TooLarge {
                what: "the parameters and a direction".into(),
                bytes: 8 * pk as u64,
                limit_name: "max_storage_buffer_binding_size",
                limit,
                hint: "; --backend cpu fits them",
            });
        }
        let (mut shards, streamed) = cut(data, window.clone(), k, limit, options.max_device_bytes)?;
        let constants = ShaderConstants::for_sparse(&objective, d, WG)?;
        let device = ctx.device();
        let layouts = [
            bind_group_layout(device, "downhill.sparse.shape", &[Binding::Uniform]),
            bind_group_layout(device, "downhill.sparse.rows", &[RO, RO, RO, RO, RO, RW]),
            bind_group_layout(device, "downhill.sparse.columns", &[RO, RO, RO, RO, RW]),
        ];
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let rows_groups = [Some(&layouts[0]), Some(&layouts[1])];
        let column_groups = [Some(&layouts[0]), None, Some(&layouts[2])];
        let build = |entry: &str, groups: &[Option<&wgpu::BindGroupLayout>]| {
            let name = format!("sparse.{entry}");
            constants.pipeline_of_groups(device, &name, (SPARSE, Mode::Fused), entry, groups)
        };
        let kernels = Kernels {
            gradient: build("rows_gradient", &rows_groups),
            direction: build("rows_direction", &rows_groups),
            predict: build("rows_predict", &rows_groups),
            columns: build("columns", &column_groups),
            blocks: build("blocks", &column_groups),
        };
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::gpu(format!("building the sparse kernels: {e}")));
        }
        let max_groups = ctx.limits().max_compute_workgroups_per_dimension;
        let writable = STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let params = ctx.buffer("downhill.sparse.params", (8 * pk) as u64, writable, false)?;
        let binary = data.values().is_none();
        let slot = slot_sizes(&shards);
        let placement = if streamed {
            Placement::Streamed(Box::new(ShardBuffers::new(
                ctx, &layouts, &params, &slot, None,
            )?))
        } else {
            let mut resident = Vec::with_capacity(shards.len());
            for shard in &mut shards {
                let arrays = shard.arrays.take();
                let buffers =
                    ShardBuffers::new(ctx, &layouts, &params, &shard.sizes, arrays.as_ref())?;
                let labels = &data.y()[shard.range.clone()];
                buffers.fill(ctx, shard, labels, shard.shape(binary, max_groups));
                resident.push(buffers);
            }
            Placement::Resident(resident)
        };
        let read = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        let staging_bytes = slot[8]
            .max(4 * (k * shards.iter().map(|s| s.range.len()).max().unwrap_or(0)) as u64)
            .max(16);
        let staging = ctx.buffer("downhill.sparse.staging", staging_bytes, read, false)?;
        ctx.check()?;
        Ok(GpuSparsePasses {
            ctx,
            data,
            window,
            objective,
            kernels,
            params,
            shards,
            placement,
            staging,
            max_groups,
            constants,
            layouts,
            binding_limit: limit,
            hessian: OnceCell::new(),
        })
    }

    /// The buffers of shard `index`, filled from the host first when streamed.
    fn buffers(&self, index: usize) -> &ShardBuffers {
        let shard = &self.shards[index];
        match &self.placement {
            Placement::Resident(buffers) => &buffers[index],
            Placement::Streamed(slot) => {
                let shape = shard.shape(self.data.values().is_none(), self.max_groups);
                slot.fill(self.ctx, shard, &self.data.y()[shard.range.clone()], shape);
                slot
            }
        }
    }

    /// Uploads the raw parameters `theta` (and a direction after them).
    fn write_params(&self, theta: &[f64], direction: Option<&[f64]>) {
        let queue = self.ctx.queue();
        let narrow = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let theta = narrow(theta);
        queue.write_buffer(&self.params, 0, bytemuck::cast_slice(&theta));
        if let Some(v) = direction {
            let at = (4 * theta.len()) as u64;
            queue.write_buffer(&self.params, at, bytemuck::cast_slice(&narrow(v)));
        }
    }

    /// The weight of each row of the window in a pass over `rows` (global).
    fn row_weights(&self, rows: &[usize], weight: &RowWeight) -> Vec<f32> {
        let mut w = vec![0.0f32; self.window.len()];
        for &i in rows {
            w[i - self.window.start] += weight(i) as f32;
        }
        w
    }

    /// The buffers of shard `index` with its rows' share of `weights` (the window's, from
    /// [`Self::row_weights`]) written; `None` when none of its rows weighs anything (the
    /// shard adds nothing and is skipped).
    fn weighted(&self, index: usize, weights: &[f32]) -> Option<&ShardBuffers> {
        let range = &self.shards[index].range;
        let w = &weights[range.start - self.window.start..range.end - self.window.start];
        if w.iter().all(|&w| w == 0.0) {
            return None;
        }
        let buffers = self.buffers(index);
        let at = (4 * range.len()) as u64;
        self.ctx
            .queue()
            .write_buffer(&buffers.yw, at, bytemuck::cast_slice(w));
        Some(buffers)
    }

    /// Every shard's buffers, or the slot alone when streamed.
    fn sources(&self) -> Vec<&ShardBuffers> {
        match &self.placement {
            Placement::Resident(buffers) => buffers.iter().collect(),
            Placement::Streamed(slot) => vec![slot],
        }
    }

    /// Σ w·(x̃x̃ᵀ ⊗ ∂²ℓ/∂z∂zᵀ) over `rows` weighted by `weight`, row-major over θ's
    /// entries, at the raw parameters `theta`: each shard's parts added in shard order.
    fn hessian_of(&self, theta: &[f64], rows: &[usize], weight: &RowWeight) -> Result<Vec<f64>> {
        let plan = match self.hessian.get() {
            Some(plan) => plan,
            None => {
                let kernels = (&self.constants, &self.layouts);
                let rows = (self.data, self.shards.as_slice(), self.sources());
                let k = self.objective.outputs();
                let plan = HessianPlan::new(self.ctx, kernels, rows, k, self.binding_limit)?;
                self.hessian.get_or_init(|| plan)
            }
        };
        self.write_params(theta, None);
        let p = (self.data.features() + 1) * self.objective.outputs();
        let mut h = vec![0.0; p * p];
        let weights = self.row_weights(rows, weight);
        for (index, shard) in self.shards.iter().enumerate() {
            if let Some(buffers) = self.weighted(index, &weights) {
                plan.add(self.ctx, (index, shard.range.len(), buffers), &mut h)?;
            }
        }
        // Each half of H is summed by its own rows' columns: made symmetric, as H is.
        for r in 0..p {
            for c in r + 1..p {
                let mean = 0.5 * (h[r * p + c] + h[c * p + r]);
                h[r * p + c] = mean;
                h[c * p + r] = mean;
            }
        }
        Ok(h)
    }

    /// Dispatches `pipeline` with the bind groups it takes over `invocations`.
    fn dispatch(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        buffers: &ShardBuffers,
        pipeline: &wgpu::ComputePipeline,
        columns: bool,
        invocations: usize,
    ) {
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &buffers.groups[0], &[]);
        if columns {
            pass.set_bind_group(2, &buffers.groups[2], &[]);
        } else {
            pass.set_bind_group(1, &buffers.groups[1], &[]);
        }
        let groups = (invocations as u64).div_ceil(u64::from(WG)) as u32;
        let (x, y) = grid(groups, self.max_groups);
        pass.dispatch_workgroups(x, y, 1);
    }

    /// Runs `rows` (the gradient's or the direction's row kernel) on each shard, then the
    /// column and block sums, and reads them back: Σ w·x̃ ⊗ out per parameter, and the
    /// metrics, over `rows` weighted by `weight`.
    fn sums(
        &self,
        kernel: &wgpu::ComputePipeline,
        rows: &[usize],
        weight: &RowWeight,
    ) -> Result<PassSums> {
        let k = self.objective.outputs();
        let mut gradient = vec![0.0; self.data.features() * k];
        let mut bias = vec![0.0; k];
        let mut metrics = [0.0; 5];
        let weights = self.row_weights(rows, weight);
        for (index, shard) in self.shards.iter().enumerate() {
            let Some(buffers) = self.weighted(index, &weights) else {
                continue;
            };
            let n = shard.range.len();
            let segments = shard.segment_column.len();
            let blocks = (n as u64).div_ceil(ROWS_PER_BLOCK) as usize;
            let mut encoder = self
                .ctx
                .device()
                .create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                self.dispatch(&mut pass, buffers, kernel, false, n);
                self.dispatch(
                    &mut pass,
                    buffers,
                    &self.kernels.columns,
                    true,
                    segments * k,
                );
                self.dispatch(
                    &mut pass,
                    buffers,
                    &self.kernels.blocks,
                    true,
                    blocks * (k + 5),
                );
            }
            let bytes = (4 * (segments * k + blocks * (k + 5))) as u64;
            encoder.copy_buffer_to_buffer(&buffers.sums, 0, &self.staging, 0, bytes);
            self.ctx.queue().submit([encoder.finish()]);
            let sums: Vec<f32> =
                bytemuck::pod_collect_to_vec(&self.ctx.read(&self.staging, bytes)?);
            // A column's segments are consecutive: each adds in order, in f64.
            for (&j, segment) in shard.segment_column.iter().zip(sums.chunks_exact(k)) {
                let at = j as usize * k;
                for (g, &v) in gradient[at..at + k].iter_mut().zip(segment) {
                    *g += f64::from(v);
                }
            }
            for block in sums[segments * k..].chunks_exact(k + 5) {
                for (b, &v) in bias.iter_mut().zip(&block[..k]) {
                    *b += f64::from(v);
                }
                for (m, &v) in metrics.iter_mut().zip(&block[k..]) {
                    *m += f64::from(v);
                }
            }
        }
        gradient.extend(bias);
        Ok(PassSums { gradient, metrics })
    }
}

impl SparsePasses for GpuSparsePasses<'_> {
    fn describe(&self) -> String {
        format!(
            "gpu (sparse rows: {} non-zeros as CSR and CSC, {} {}, {})",
            window_nonzeros(self.data, &self.window),
            self.shards.len(),
            match (&self.placement, self.shards.len()) {
                (Placement::Streamed(_), _) => "shards streamed through one slot",
                (Placement::Resident(_), 1) => "shard",
                (Placement::Resident(_), _) => "shards",
            },
            self.ctx.describe()
        )
    }

    fn gradient(&self, theta: &[f64], rows: &[usize], weight: &RowWeight) -> Result<PassSums> {
        self.write_params(theta, None);
        self.sums(&self.kernels.gradient, rows, weight)
    }

    fn hessian_vector(
        &self,
        theta: &[f64],
        v: &[f64],
        rows: &[usize],
        weight: &RowWeight,
    ) -> Result<Vec<f64>> {
        self.write_params(theta, Some(v));
        Ok(self.sums(&self.kernels.direction, rows, weight)?.gradient)
    }

    fn predict(&self, theta: &[f64]) -> Result<Vec<f64>> {
        let k = self.objective.outputs();
        self.write_params(theta, None);
        let mut z = Vec::with_capacity(self.window.len() * k);
        for (index, shard) in self.shards.iter().enumerate() {
            let buffers = self.buffers(index);
            let n = shard.range.len();
            let mut encoder = self
                .ctx
                .device()
                .create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                let predict = &self.kernels.predict;
                self.dispatch(&mut pass, buffers, predict, false, n);
            }
            let bytes = (4 * n * k) as u64;
            encoder.copy_buffer_to_buffer(&buffers.out, 0, &self.staging, 0, bytes);
            self.ctx.queue().submit([encoder.finish()]);
            let part: Vec<f32> =
                bytemuck::pod_collect_to_vec(&self.ctx.read(&self.staging, bytes)?);
            z.extend(part.into_iter().map(f64::from));
        }
        Ok(z)
    }

    fn hessian(
        &self,
        theta: &[f64],
        rows: &[usize],
        weight: &RowWeight,
    ) -> Option<Result<Vec<f64>>> {
        Some(self.hessian_of(theta, rows, weight))
    }

    /// The Hessian's kernel binds eight storage buffers, WebGPU's least per stage.
    fn has_hessian(&self) -> bool {
        self.ctx.limits().max_storage_buffers_per_shader_stage >= 8
    }
}

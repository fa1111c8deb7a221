//! The exact Hessian of sparse rows on the GPU (`newton`), H = Σ w·x̃x̃ᵀ ⊗ ∂²ℓ/∂z∂zᵀ, row
//! by row of H from the CSC: `rows_curvature` writes each row's curvature, then `hessian`
//! sums, for each work segment of a column j and each class c, the segment's share of H's
//! row (j, c) into a part of its own (no atomics). Parts come back in batches that fit one
//! binding and are added to H's rows on the host in f64, in shard and segment order, so
//! reruns give the same bits. Built on the first Hessian pass (newton's, which the solvers
//! take only for at most `NEWTON_MAX_PARAMETERS` parameters).

use super::shard::{Arrays, Shard, ShardBuffers, WG};
use crate::backend::gpu::constants::{Mode, SPARSE, ShaderConstants};
use crate::backend::gpu::context::GpuContext;
use crate::backend::gpu::kernels::{Binding, RO, RW, bind_group_layout, grid};
use crate::backend::gpu::plan::{check_loops, loop_budget};
use crate::backend::gpu::rows::{STORAGE, bind_group, upload};
use crate::error::{Error, Result};
use crate::sparse::SparseDataset;

/// Work segments are cut at this many inner iterations even without a loop limit, to
/// spread a popular column over many invocations.
const MOST_WORK: u64 = 1 << 16;
/// Bytes of parts one batch writes at most.
const PARTS_BYTES: u64 = 64 << 20;

/// Mirrors `HessianBatch` in `shaders/sparse.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct HessianBatch {
    first: u32,
    count: u32,
    pad: [u32; 2],
}

/// The Hessian's kernels, each shard's work segments, and the buffers its passes write.
pub(super) struct HessianPlan {
    curvature: wgpu::ComputePipeline,
    hessian: wgpu::ComputePipeline,
    /// Each shard's work segments as (first entry, end, column).
    tables: Vec<Vec<u32>>,
    /// Work segments a dispatch takes at most.
    batch: usize,
    /// Outputs (classes), and parameters, (d + 1)·k.
    k: usize,
    p: usize,
    parts: wgpu::Buffer,
    staging: wgpu::Buffer,
    uniform: wgpu::Buffer,
    /// A bind group a shard: its table, and its buffers (or the slot's).
    groups: Vec<wgpu::BindGroup>,
}

impl HessianPlan {
    /// The plan for `shards` of `data` (in `sources`, each shard's buffers or the one
    /// slot), their arrays made again here from the rows (uploaded shards keep none on the
    /// host), for `k` outputs, with kernels of `constants` over the sparse `layouts`.
    pub fn new(
        ctx: &GpuContext,
        (constants, layouts): (&ShaderConstants, &[wgpu::BindGroupLayout; 3]),
        (data, shards, sources): (&SparseDataset, &[Shard], Vec<&ShardBuffers>),
        k: usize,
        binding_limit: u64,
    ) -> Result<Self> {
        let d = data.features();
        let p = ((d + 1) * k) as u64;
        let budget = match ctx.loop_limit()? {
            Some(limit) => loop_budget(limit).min(MOST_WORK),
            None => MOST_WORK,
        };
        // The part's zeroing, then (k + 1)·k iterations for an entry of a row of k ≤ d
        // non-zeros; a row of d is the longest there can be.
        let longest = (d as u64 + 2) * k as u64 + 4;
        check_loops(
            || format!("a Hessian row of {p} values in the GPU's sparse passes"),
            p + longest + 16,
            ctx.loop_limit()?,
        )?;
        let work = budget.saturating_sub(p + 16).max(longest);
        let device = ctx.device();
        let mut entries = vec![Binding::Uniform];
        entries.extend([RO; 7]);
        entries.push(RW);
        let layout = bind_group_layout(device, "downhill.sparse.hessian", &entries);
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let build = |entry: &str, groups: &[Option<&wgpu::BindGroupLayout>]| {
            let name = format!("sparse.{entry}");
            let kernel = (SPARSE, Mode::Fused);
            constants.pipeline_of_groups(device, &name, kernel, entry, groups)
        };
        let curvature = build("rows_curvature", &[Some(&layouts[0]), Some(&layouts[1])]);
        let hessian = build("hessian", &[Some(&layouts[0]), None, None, Some(&layout)]);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::gpu(format!(
                "building the sparse Hessian kernels: {e}"
            )));
        }
        let tables: Vec<Vec<u32>> = shards
            .iter()
            .map(|shard| {
                let arrays = Arrays::new(data, shard.range.clone());
                work_segments(arrays.csr_offsets(), arrays.columns(), k as u64, work)
            })
            .collect();
        let part_bytes = 4 * p * k as u64;
        let most = tables.iter().map(|t| t.len() / 3).max().unwrap_or(1).max(1);
        let batch = ((binding_limit.min(PARTS_BYTES) / part_bytes).max(1) as usize).min(most);
        let bytes = batch as u64 * part_bytes;
        let usage = STORAGE | wgpu::BufferUsages::COPY_SRC;
        let parts = ctx.buffer("downhill.sparse.hessian_parts", bytes, usage, false)?;
        let read = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        let staging = ctx.buffer("downhill.sparse.hessian_staging", bytes, read, false)?;
        let uniform_usage = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST;
        let size = std::mem::size_of::<HessianBatch>() as u64;
        let uniform = ctx.buffer("downhill.sparse.hessian_batch", size, uniform_usage, false)?;
        let mut groups = Vec::with_capacity(tables.len());
        for (s, table) in tables.iter().enumerate() {
            let table = upload(ctx, "downhill.sparse.work", bytemuck::cast_slice(table))?;
            let source = sources[s.min(sources.len() - 1)];
            let [rows, values, offsets, indices, row_values, out] = source.hessian_sources();
            let buffers = [
                &uniform, &table, rows, values, offsets, indices, row_values, out, &parts,
            ];
            groups.push(bind_group(
                ctx,
                "downhill.sparse.hessian",
                &layout,
                &buffers,
            ));
        }
        Ok(HessianPlan {
            curvature,
            hessian,
            tables,
            batch,
            k,
            p: p as usize,
            parts,
            staging,
            uniform,
            groups,
        })
    }
}

impl HessianPlan {
    /// Adds shard `index`'s parts to `h` (p × p, row-major): the shard's `n` rows are in
    /// `buffers`, their weights and the parameters written.
    pub fn add(
        &self,
        ctx: &GpuContext,
        (index, n, buffers): (usize, usize, &ShardBuffers),
        h: &mut [f64],
    ) -> Result<()> {
        let (k, p) = (self.k, self.p);
        let table = &self.tables[index];
        let segments = table.len() / 3;
        let max_groups = ctx.limits().max_compute_workgroups_per_dimension;
        let dispatch = |pass: &mut wgpu::ComputePass<'_>, invocations: usize| {
            let groups = (invocations as u64).div_ceil(u64::from(WG)) as u32;
            let (x, y) = grid(groups, max_groups);
            pass.dispatch_workgroups(x, y, 1);
        };
        for first in (0..segments).step_by(self.batch) {
            let count = self.batch.min(segments - first);
            let batch = HessianBatch {
                first: first as u32,
                count: count as u32,
                pad: [0; 2],
            };
            ctx.queue()
                .write_buffer(&self.uniform, 0, bytemuck::bytes_of(&batch));
            let mut encoder = ctx.device().create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                pass.set_bind_group(0, &buffers.groups[0], &[]);
                if first == 0 {
                    pass.set_pipeline(&self.curvature);
                    pass.set_bind_group(1, &buffers.groups[1], &[]);
                    dispatch(&mut pass, n);
                }
                pass.set_pipeline(&self.hessian);
                pass.set_bind_group(3, &self.groups[index], &[]);
                dispatch(&mut pass, count * k);
            }
            let bytes = (4 * count * k * p) as u64;
            encoder.copy_buffer_to_buffer(&self.parts, 0, &self.staging, 0, bytes);
            ctx.queue().submit([encoder.finish()]);
            let parts: Vec<f32> = bytemuck::pod_collect_to_vec(&ctx.read(&self.staging, bytes)?);
            for (t, part) in parts.chunks_exact(p).enumerate() {
                let (segment, c) = (first + t / k, t % k);
                let row = table[3 * segment + 2] as usize * k + c;
                for (h, &v) in h[row * p..(row + 1) * p].iter_mut().zip(part) {
                    *h += f64::from(v);
                }
            }
        }
        Ok(())
    }
}

/// The work segments of a shard, (first entry, end, column) each: every column's CSC
/// entries (`column_offsets`, `column_rows`), then the bias's (column d, whose entries are
/// the rows), cut where the next entry's inner iterations, k·(its row's non-zeros + 1) + 2,
/// would pass `work`.
fn work_segments(
    row_offsets: &[u32],
    (column_offsets, column_rows): (&[u32], &[u32]),
    k: u64,
    work: u64,
) -> Vec<u32> {
    let cost = |i: usize| k * u64::from(row_offsets[i + 1] - row_offsets[i] + 1) + 2;
    let mut table = Vec::new();
    let mut cut = |entries: std::ops::Range<u32>, column: usize, row_of: &dyn Fn(u32) -> usize| {
        let (mut start, mut load) = (entries.start, 0);
        for e in entries.clone() {
            let c = cost(row_of(e));
            if load + c > work && e > start {
                table.extend([start, e, column as u32]);
                (start, load) = (e, 0);
            }
            load += c;
        }
        if start < entries.end {
            table.extend([start, entries.end, column as u32]);
        }
    };
    let d = column_offsets.len() - 1;
    for j in 0..d {
        let entries = column_offsets[j]..column_offsets[j + 1];
        cut(entries, j, &|e| column_rows[e as usize] as usize);
    }
    cut(0..(row_offsets.len() - 1) as u32, d, &|e| e as usize);
    table
}

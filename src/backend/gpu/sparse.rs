//! Sparse rows on the GPU (`shaders/sparse.wgsl`): the session's rows as CSR and, for
//! Xᵀ(w·δ), a column-major copy (CSC), both resident; a pass is three dispatches (rows,
//! columns, row blocks) and one read back of the gradient's (d + 1)·k sums and the blocks'
//! metrics, added on the host in f64 in block order. Every sum on the device runs in a
//! fixed order, so reruns give the same bits. The optimizer, the solvers and the
//! standardization run on the host ([`SparseRowsSession`]), as for the CPU's sparse rows;
//! the row weights of each pass (sample and class weights, the held-out split, a
//! mini-batch) come from there and are uploaded with the parameters. The exact Newton's
//! Hessian is not built here: `newton-cg` and `lbfgs` take the Hessian-vector and gradient
//! passes.

use std::ops::Range;

use super::constants::{Mode, SPARSE, ShaderConstants};
use super::context::GpuContext;
use super::kernels::{Binding, RO, RW, bind_group_layout, grid};
use super::plan::check_loops;
use super::rows::{STORAGE, bind_group, uniform_buffer, upload};
use crate::backend::sparse::{RowWeight, SparsePasses, SparseRowsSession, window_nonzeros};
use crate::descent::PassSums;
use crate::error::{Error, Result};
use crate::model::{Loss, Model, Objective};
use crate::sparse::SparseDataset;

/// Invocations per workgroup of the sparse kernels.
const WG: u32 = 64;
/// Rows per block of the bias and metric sums (`ROWS_PER_BLOCK` in the shader).
const ROWS_PER_BLOCK: usize = 256;
/// Entries of one column one invocation sums at most (a segment).
const SEGMENT: usize = 4096;

/// Mirrors `SparseShape` in `shaders/sparse.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SparseShape {
    rows: u32,
    binary: u32,
    blocks: u32,
    width: u32,
    segments: u32,
    pad: [u32; 3],
}

/// The pipelines of one problem's shape.
struct Kernels {
    gradient: wgpu::ComputePipeline,
    direction: wgpu::ComputePipeline,
    predict: wgpu::ComputePipeline,
    columns: wgpu::ComputePipeline,
    blocks: wgpu::ComputePipeline,
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
    groups: [wgpu::BindGroup; 3],
    yw: wgpu::Buffer,
    params: wgpu::Buffer,
    out: wgpu::Buffer,
    sums: wgpu::Buffer,
    staging: wgpu::Buffer,
    /// The first segment of each column, then the number of segments (d + 1 entries).
    first_segment: Vec<usize>,
    /// Workgroups per dimension at most.
    max_groups: u32,
}

impl<'a> SparseRowsSession<'a, GpuSparsePasses<'a>> {
    /// Uploads rows `window` of `data` (CSR, and the CSC copy made here) for `objective`.
    pub fn new(
        ctx: &'a GpuContext,
        data: &'a SparseDataset,
        window: Range<usize>,
        objective: Objective,
    ) -> Result<Self> {
        let passes = GpuSparsePasses::new(ctx, data, window.clone(), objective)?;
        Ok(Self::with_passes(data, window, objective, passes))
    }
}

impl<'a> GpuSparsePasses<'a> {
    fn new(
        ctx: &'a GpuContext,
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
        let (d, k, n) = (data.features(), objective.outputs(), window.len());
        let csr = Csr::of_window(data, window.clone());
        let csc = csr.transposed(d);
        let (segment_offsets, first_segment) = segments(&csc.offsets);
        let segment_count = segment_offsets.len() - 1;
        let blocks = n.div_ceil(ROWS_PER_BLOCK);
        // A row's loops: its non-zeros for z (and for the direction's logits), then a few
        // over the classes.
        let longest = csr
            .offsets
            .windows(2)
            .map(|w| w[1] - w[0])
            .max()
            .unwrap_or(0);
        let needed = (2 * u64::from(longest) + 6) * k as u64 + 16;
        check_loops(
            || format!("a row of {longest} non-zeros in the GPU's sparse passes"),
            needed,
            ctx.loop_limit()?,
        )?;
        let limit = ctx.storage_binding_limit();
        let pk = (d + 1) * k;
        let sizes = [
            ("the rows' column indices", 4 * csr.indices.len()),
            ("the rows' values", 4 * csr.values.len()),
            ("the rows' offsets", 4 * (n + 1)),
            (
                "z, the deltas and the metrics of every row",
                4 * (2 * n * k + 5 * n),
            ),
            ("the parameters and a direction", 8 * pk),
            (
                "the column sums",
                4 * (segment_count * k + blocks * (k + 5)),
            ),
        ];
        for (what, bytes) in sizes {
            if bytes as u64 > limit {
                return Err(Error::TooLarge {
                    what: format!("{what} of {} sparse rows", window.len()),
                    bytes: bytes as u64,
                    limit_name: "max_storage_buffer_binding_size",
                    limit,
                    hint: "; sparse rows are not sharded on the GPU yet: --backend cpu fits them",
                });
            }
        }
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
        let binary = data.values().is_none();
        let shape = SparseShape {
            rows: n as u32,
            binary: u32::from(binary),
            blocks: blocks as u32,
            width: max_groups * WG,
            segments: segment_count as u32,
            pad: [0; 3],
        };
        let shape = uniform_buffer(ctx, "downhill.sparse.shape", bytemuck::bytes_of(&shape))?;
        let floats = |v: &[f32]| bytemuck::cast_slice::<f32, u8>(v).to_vec();
        let words = |v: &[u32]| bytemuck::cast_slice::<u32, u8>(v).to_vec();
        // A buffer is never empty (binary rows keep no values): one word stands in.
        let upload = |label: &str, bytes: Vec<u8>| match bytes.is_empty() {
            true => upload(ctx, label, &[0; 4]),
            false => upload(ctx, label, &bytes),
        };
        let offsets = upload("downhill.sparse.offsets", words(&csr.offsets))?;
        let indices = upload("downhill.sparse.indices", words(&csr.indices))?;
        let values = upload("downhill.sparse.values", floats(&csr.values))?;
        let writable = STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        // The labels, then each pass's row weights (written by the pass).
        let yw = ctx.buffer("downhill.sparse.yw", (8 * n) as u64, writable, false)?;
        let labels = &data.y()[window.clone()];
        ctx.queue()
            .write_buffer(&yw, 0, bytemuck::cast_slice(labels));
        let params = ctx.buffer("downhill.sparse.params", (8 * pk) as u64, writable, false)?;
        let out_bytes = (4 * (2 * n * k + 5 * n)) as u64;
        let out = ctx.buffer("downhill.sparse.out", out_bytes, writable, false)?;
        let column_offsets = upload("downhill.sparse.segment_offsets", words(&segment_offsets))?;
        let column_rows = upload("downhill.sparse.column_rows", words(&csc.indices))?;
        let column_values = upload("downhill.sparse.column_values", floats(&csc.values))?;
        let sums_bytes = (4 * (segment_count * k + blocks * (k + 5))) as u64;
        let sums = ctx.buffer("downhill.sparse.sums", sums_bytes, writable, false)?;
        let read = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        let staging_bytes = sums_bytes.max((4 * n * k) as u64);
        let staging = ctx.buffer("downhill.sparse.staging", staging_bytes, read, false)?;
        let groups = [
            bind_group(ctx, "downhill.sparse.shape", &layouts[0], &[&shape]),
            bind_group(
                ctx,
                "downhill.sparse.rows",
                &layouts[1],
                &[&offsets, &indices, &values, &yw, &params, &out],
            ),
            bind_group(
                ctx,
                "downhill.sparse.columns",
                &layouts[2],
                &[&column_offsets, &column_rows, &column_values, &out, &sums],
            ),
        ];
        ctx.check()?;
        Ok(GpuSparsePasses {
            ctx,
            data,
            window,
            objective,
            kernels,
            groups,
            yw,
            params,
            out,
            sums,
            staging,
            first_segment,
            max_groups,
        })
    }

    /// The weight of each row of the window in a pass over `rows` (global).
    fn weights(&self, rows: &[usize], weight: &RowWeight) -> Vec<f32> {
        let mut w = vec![0.0; self.window.len()];
        for &i in rows {
            w[i - self.window.start] += weight(i) as f32;
        }
        w
    }

    /// Uploads the row weights and the raw parameters `theta` (and a direction after them).
    fn write_inputs(&self, weights: &[f32], theta: &[f64], direction: Option<&[f64]>) {
        let n = self.window.len();
        let queue = self.ctx.queue();
        queue.write_buffer(&self.yw, (4 * n) as u64, bytemuck::cast_slice(weights));
        let narrow = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let theta = narrow(theta);
        queue.write_buffer(&self.params, 0, bytemuck::cast_slice(&theta));
        if let Some(v) = direction {
            let at = (4 * theta.len()) as u64;
            queue.write_buffer(&self.params, at, bytemuck::cast_slice(&narrow(v)));
        }
    }

    /// Dispatches `pipeline` with the bind groups it takes over `invocations`.
    fn dispatch(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        pipeline: &wgpu::ComputePipeline,
        columns: bool,
        invocations: usize,
    ) {
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &self.groups[0], &[]);
        if columns {
            pass.set_bind_group(2, &self.groups[2], &[]);
        } else {
            pass.set_bind_group(1, &self.groups[1], &[]);
        }
        let groups = (invocations as u64).div_ceil(u64::from(WG)) as u32;
        let (x, y) = grid(groups, self.max_groups);
        pass.dispatch_workgroups(x, y, 1);
    }

    /// Runs `rows` (the gradient's or the direction's row kernel), then the column and
    /// block sums, and reads them back: Σ w·x̃ ⊗ out per parameter, and the metrics.
    fn sums(&self, rows: &wgpu::ComputePipeline) -> Result<PassSums> {
        let (k, n) = (self.objective.outputs(), self.window.len());
        let segments = self.first_segment[self.first_segment.len() - 1];
        let blocks = n.div_ceil(ROWS_PER_BLOCK);
        let mut encoder = self
            .ctx
            .device()
            .create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.dispatch(&mut pass, rows, false, n);
            self.dispatch(&mut pass, &self.kernels.columns, true, segments * k);
            self.dispatch(&mut pass, &self.kernels.blocks, true, blocks * (k + 5));
        }
        let bytes = (4 * (segments * k + blocks * (k + 5))) as u64;
        encoder.copy_buffer_to_buffer(&self.sums, 0, &self.staging, 0, bytes);
        self.ctx.queue().submit([encoder.finish()]);
        let sums: Vec<f32> = bytemuck::pod_collect_to_vec(&self.ctx.read(&self.staging, bytes)?);
        // Each column's segments, added in order in f64.
        let mut gradient: Vec<f64> = self
            .first_segment
            .windows(2)
            .flat_map(|w| {
                let sums = &sums;
                (0..k).map(move |c| (w[0]..w[1]).map(|s| f64::from(sums[s * k + c])).sum())
            })
            .collect();
        let mut bias = vec![0.0; k];
        let mut metrics = [0.0; 5];
        for block in sums[segments * k..].chunks_exact(k + 5) {
            for (b, &v) in bias.iter_mut().zip(&block[..k]) {
                *b += f64::from(v);
            }
            for (m, &v) in metrics.iter_mut().zip(&block[k..]) {
                *m += f64::from(v);
            }
        }
        gradient.extend(bias);
        Ok(PassSums { gradient, metrics })
    }
}

impl SparsePasses for GpuSparsePasses<'_> {
    fn describe(&self) -> String {
        format!(
            "gpu (sparse rows: {} non-zeros as CSR and CSC, {})",
            window_nonzeros(self.data, &self.window),
            self.ctx.describe()
        )
    }

    fn gradient(&self, theta: &[f64], rows: &[usize], weight: &RowWeight) -> Result<PassSums> {
        self.write_inputs(&self.weights(rows, weight), theta, None);
        self.sums(&self.kernels.gradient)
    }

    fn hessian_vector(
        &self,
        theta: &[f64],
        v: &[f64],
        rows: &[usize],
        weight: &RowWeight,
    ) -> Result<Vec<f64>> {
        self.write_inputs(&self.weights(rows, weight), theta, Some(v));
        Ok(self.sums(&self.kernels.direction)?.gradient)
    }

    fn predict(&self, theta: &[f64]) -> Result<Vec<f64>> {
        let (k, n) = (self.objective.outputs(), self.window.len());
        self.write_inputs(&vec![0.0; n], theta, None);
        let mut encoder = self
            .ctx
            .device()
            .create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            self.dispatch(&mut pass, &self.kernels.predict, false, n);
        }
        let bytes = (4 * n * k) as u64;
        encoder.copy_buffer_to_buffer(&self.out, 0, &self.staging, 0, bytes);
        self.ctx.queue().submit([encoder.finish()]);
        let z: Vec<f32> = bytemuck::pod_collect_to_vec(&self.ctx.read(&self.staging, bytes)?);
        Ok(z.into_iter().map(f64::from).collect())
    }

    fn has_hessian(&self) -> bool {
        false
    }
}

/// The CSC's columns cut into segments of at most [`SEGMENT`] entries: the segments'
/// offsets (into the CSC's entries), and each column's first segment (then their count).
/// An empty column has no segment.
fn segments(column_offsets: &[u32]) -> (Vec<u32>, Vec<usize>) {
    let mut offsets = vec![0u32];
    let mut first = Vec::with_capacity(column_offsets.len());
    for w in column_offsets.windows(2) {
        first.push(offsets.len() - 1);
        let mut at = w[0];
        while at < w[1] {
            at = (at + SEGMENT as u32).min(w[1]);
            offsets.push(at);
        }
    }
    first.push(offsets.len() - 1);
    (offsets, first)
}

/// CSR (or CSC) arrays with u32 offsets, as the kernels read them; values are all ones
/// where the rows keep none.
struct Csr {
    offsets: Vec<u32>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl Csr {
    /// Rows `window` of `data`, offsets from 0.
    fn of_window(data: &SparseDataset, window: Range<usize>) -> Self {
        let all = data.offsets();
        let (from, to) = (all[window.start] as usize, all[window.end] as usize);
        let offsets = all[window.start..=window.end]
            .iter()
            .map(|&o| (o as usize - from) as u32)
            .collect();
        let indices = data.indices()[from..to].to_vec();
        let values = match data.values() {
            Some(v) => v[from..to].to_vec(),
            None => Vec::new(),
        };
        Csr {
            offsets,
            indices,
            values,
        }
    }

    /// The same matrix column-major, each column's entries in row order (a counting sort).
    fn transposed(&self, columns: usize) -> Self {
        let mut offsets = vec![0u32; columns + 1];
        for &j in &self.indices {
            offsets[j as usize + 1] += 1;
        }
        for j in 0..columns {
            offsets[j + 1] += offsets[j];
        }
        let mut next: Vec<u32> = offsets[..columns].to_vec();
        let mut indices = vec![0u32; self.indices.len()];
        let mut values = vec![0.0f32; self.values.len()];
        for (row, w) in self.offsets.windows(2).enumerate() {
            for e in w[0] as usize..w[1] as usize {
                let j = self.indices[e] as usize;
                let at = next[j] as usize;
                indices[at] = row as u32;
                if !self.values.is_empty() {
                    values[at] = self.values[e];
                }
                next[j] += 1;
            }
        }
        Csr {
            offsets,
            indices,
            values,
        }
    }
}

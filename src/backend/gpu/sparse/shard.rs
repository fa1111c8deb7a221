//! Shards of sparse rows: each a run of rows whose CSR, CSC and per-row buffers fit one
//! storage binding ([`cut`]), with its arrays made on the host ([`Shard`]), and the
//! device buffers that hold one shard, or each shard in turn when the rows are streamed
//! ([`ShardBuffers`]).

use std::ops::Range;

use crate::backend::gpu::context::GpuContext;
use crate::backend::gpu::rows::{STORAGE, bind_group, upload};
use crate::error::{Error, Result};
use crate::sparse::SparseDataset;

/// Invocations per workgroup of the sparse kernels.
pub(super) const WG: u32 = 64;
/// Rows per block of the bias and metric sums (`ROWS_PER_BLOCK` in the shader).
pub(super) const ROWS_PER_BLOCK: u64 = 256;
/// Entries of one column one invocation sums at most (a segment).
const SEGMENT: usize = 4096;

/// Mirrors `SparseShape` in `shaders/sparse.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct SparseShape {
    rows: u32,
    binary: u32,
    blocks: u32,
    width: u32,
    segments: u32,
    pad: [u32; 3],
}

/// The buffers of a shard, in the order [`Sizes`] gives their bytes.
const BUFFERS: [&str; 9] = [
    "the rows' offsets",
    "the rows' column indices",
    "the rows' values",
    "the labels and row weights",
    "z, the deltas and the metrics of every row",
    "the column segments' offsets",
    "the columns' row indices",
    "the columns' values",
    "the column and block sums",
];

/// The bytes of each of a shard's buffers (in [`BUFFERS`]' order), each at least 16 (a
/// buffer is never empty: binary rows keep no values) and a multiple of 16.
pub(super) type Sizes = [u64; 9];

/// One run of rows, as the kernels read them.
pub(super) struct Shard {
    /// The global rows it holds.
    pub range: Range<usize>,
    /// The column of each of the CSC's segments, in order (a column's are consecutive).
    pub segment_column: Vec<u32>,
    pub sizes: Sizes,
    /// The arrays: dropped once uploaded, kept on the host when the rows are streamed.
    pub arrays: Option<Arrays>,
}

/// A shard's CSR, its CSC copy and the CSC's segments, offsets from 0.
pub(super) struct Arrays {
    csr: Csr,
    csc: Csr,
    segment_offsets: Vec<u32>,
}

/// Where a shard's rows pass a limit: the buffer, its bytes, the limit's name and value.
type Excess = (&'static str, u64, &'static str, u64);

/// Cuts rows `window` into shards whose every buffer fits `binding_limit`; when they all
/// together pass `budget`, into shards that fit it one at a time (to be streamed, the
/// second value `true`). Each shard's arrays are made here.
pub(super) fn cut(
    data: &SparseDataset,
    window: Range<usize>,
    k: usize,
    binding_limit: u64,
    budget: Option<u64>,
) -> Result<(Vec<Shard>, bool)> {
    let binding = |sizes: &Sizes| {
        let at = sizes.iter().position(|&b| b > binding_limit)?;
        let limit_name = "max_storage_buffer_binding_size";
        Some((BUFFERS[at], sizes[at], limit_name, binding_limit))
    };
    let mut shards = Vec::new();
    for range in first_cut(data, window, k, binding_limit) {
        place(data, range, k, &binding, &mut shards)?;
    }
    let total: u64 = shards.iter().map(|s| s.sizes.iter().sum::<u64>()).sum();
    let Some(budget) = budget.filter(|&b| total > b) else {
        return Ok((shards, false));
    };
    // Streamed: one slot holds the largest of each buffer, so the slot's bytes are checked
    // too; shards are cut to half the budget at a time until it fits.
    let mut per_shard = budget;
    loop {
        let fits = |sizes: &Sizes| {
            let bytes: u64 = sizes.iter().sum();
            let name = "budget (--max-device-bytes) for one streaming slot";
            (bytes > per_shard).then_some(("the buffers", bytes, name, budget))
        };
        let mut streamed = Vec::new();
        for shard in shards {
            match fits(&shard.sizes) {
                None => streamed.push(shard),
                Some(_) => place(data, shard.range, k, &fits, &mut streamed)?,
            }
        }
        if slot_sizes(&streamed).iter().sum::<u64>() <= budget {
            return Ok((streamed, true));
        }
        shards = streamed;
        per_shard /= 2;
    }
}

/// The largest of each buffer over `shards`: what a streaming slot holds.
pub(super) fn slot_sizes(shards: &[Shard]) -> Sizes {
    let mut sizes = [16; 9];
    for shard in shards {
        for (s, &b) in sizes.iter_mut().zip(&shard.sizes) {
            *s = (*s).max(b);
        }
    }
    sizes
}

/// Runs of rows cut by what the rows alone decide (their non-zeros and their count); the
/// CSC's segments, known once a run is transposed, may cut them further.
fn first_cut(
    data: &SparseDataset,
    window: Range<usize>,
    k: usize,
    limit: u64,
) -> Vec<Range<usize>> {
    let offsets = data.offsets();
    let per_row = 4 * (2 * k as u64 + 5);
    let mut runs = Vec::new();
    let mut start = window.start;
    for i in window.clone() {
        let nonzeros = offsets[i + 1] - offsets[start];
        let rows = (i + 1 - start) as u64;
        if i > start && (4 * nonzeros + 16 > limit || per_row * rows + 16 > limit) {
            runs.push(start..i);
            start = i;
        }
    }
    runs.push(start..window.end);
    runs
}

/// Makes the shard of rows `range` and appends it to `shards` when `excess` finds nothing
/// too large; else halves the rows (by their non-zeros) and places each half. A single
/// row too large is refused, naming what passes which limit.
fn place(
    data: &SparseDataset,
    range: Range<usize>,
    k: usize,
    excess: &dyn Fn(&Sizes) -> Option<Excess>,
    shards: &mut Vec<Shard>,
) -> Result<()> {
    let shard = Shard::new(data, range.clone(), k);
    let Some((what, bytes, limit_name, limit)) = excess(&shard.sizes) else {
        shards.push(shard);
        return Ok(());
    };
    if range.len() <= 1 {
        let nonzeros = data.offsets()[range.end] - data.offsets()[range.start];
        return Err(Error::TooLarge {
            what: format!(
                "{what} of sparse row {} ({nonzeros} non-zeros)",
                range.start
            ),
            bytes,
            limit_name,
            limit,
            hint: "; --backend cpu fits it",
        });
    }
    drop(shard);
    let offsets = data.offsets();
    let middle = (offsets[range.start] + offsets[range.end]) / 2;
    let split = offsets[range.start + 1..range.end].partition_point(|&o| o <= middle);
    let split = range.start + 1 + split.min(range.len() - 2);
    place(data, range.start..split, k, excess, shards)?;
    place(data, split..range.end, k, excess, shards)
}

impl Shard {
    fn new(data: &SparseDataset, range: Range<usize>, k: usize) -> Self {
        let (arrays, segment_column) = Arrays::with_columns(data, range.clone());
        let (n, nonzeros) = (range.len() as u64, arrays.csr.indices.len() as u64);
        let (segments, blocks) = (segment_column.len() as u64, n.div_ceil(ROWS_PER_BLOCK));
        let k = k as u64;
        let values = if data.values().is_some() { nonzeros } else { 0 };
        let words = [
            n + 1,
            nonzeros,
            values,
            2 * n,
            (2 * k + 5) * n,
            segments + 1,
            nonzeros,
            values,
            segments * k + blocks * (k + 5),
        ];
        let sizes = words.map(|w| (4 * w).next_multiple_of(16).max(16));
        Shard {
            range,
            segment_column,
            sizes,
            arrays: Some(arrays),
        }
    }

    /// The shape the kernels read for this shard.
    pub fn shape(&self, binary: bool, max_groups: u32) -> SparseShape {
        let n = self.range.len();
        SparseShape {
            rows: n as u32,
            binary: u32::from(binary),
            blocks: n.div_ceil(ROWS_PER_BLOCK as usize) as u32,
            width: max_groups * WG,
            segments: self.segment_column.len() as u32,
            pad: [0; 3],
        }
    }
}

/// The device buffers of a shard, or of a streaming slot (sized for the largest shard).
pub(super) struct ShardBuffers {
    shape: wgpu::Buffer,
    /// The buffers of [`STATIC`], in its order.
    static_buffers: Vec<wgpu::Buffer>,
    pub yw: wgpu::Buffer,
    pub out: wgpu::Buffer,
    pub sums: wgpu::Buffer,
    /// The shape; the rows' buffers and the parameters; the columns' buffers.
    pub groups: [wgpu::BindGroup; 3],
}

/// Which of [`BUFFERS`] are written once per shard (the rows' and the columns' arrays).
const STATIC: [usize; 6] = [0, 1, 2, 5, 6, 7];

impl ShardBuffers {
    /// Buffers of `sizes`, holding `arrays` (uploaded) when given, else empty (a slot).
    pub fn new(
        ctx: &GpuContext,
        layouts: &[wgpu::BindGroupLayout; 3],
        params: &wgpu::Buffer,
        sizes: &Sizes,
        arrays: Option<&Arrays>,
    ) -> Result<Self> {
        let label = |i: usize| format!("downhill.sparse ({})", BUFFERS[i]);
        let copy = wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let static_buffers = STATIC
            .iter()
            .map(|&i| match arrays {
                Some(a) => upload(ctx, &label(i), a.bytes(i)),
                None => ctx.buffer(&label(i), sizes[i], STORAGE | copy, false),
            })
            .collect::<Result<Vec<_>>>()?;
        let yw = ctx.buffer(&label(3), sizes[3], STORAGE | copy, false)?;
        let out = ctx.buffer(&label(4), sizes[4], STORAGE | copy, false)?;
        let sums = ctx.buffer(&label(8), sizes[8], STORAGE | copy, false)?;
        let shape = ctx.buffer(
            "downhill.sparse.shape",
            std::mem::size_of::<SparseShape>() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            false,
        )?;
        // In STATIC's order: the rows' offsets, indices and values, then the columns'.
        let b = &static_buffers;
        let groups = [
            bind_group(ctx, "downhill.sparse.shape", &layouts[0], &[&shape]),
            bind_group(
                ctx,
                "downhill.sparse.rows",
                &layouts[1],
                &[&b[0], &b[1], &b[2], &yw, params, &out],
            ),
            bind_group(
                ctx,
                "downhill.sparse.columns",
                &layouts[2],
                &[&b[3], &b[4], &b[5], &out, &sums],
            ),
        ];
        Ok(ShardBuffers {
            shape,
            static_buffers,
            yw,
            out,
            sums,
            groups,
        })
    }

    /// What the Hessian's kernel reads: the CSC's rows and values, the CSR's offsets,
    /// indices and values, and the rows' curvatures (`out`).
    pub fn hessian_sources(&self) -> [&wgpu::Buffer; 6] {
        let b = &self.static_buffers;
        [&b[4], &b[5], &b[0], &b[1], &b[2], &self.out]
    }

    /// Writes the shape and the labels of `shard` (and its arrays, into a slot).
    pub fn fill(&self, ctx: &GpuContext, shard: &Shard, labels: &[f32], shape: SparseShape) {
        let queue = ctx.queue();
        queue.write_buffer(&self.shape, 0, bytemuck::bytes_of(&shape));
        queue.write_buffer(&self.yw, 0, bytemuck::cast_slice(labels));
        if let Some(arrays) = &shard.arrays {
            for (buffer, &i) in self.static_buffers.iter().zip(&STATIC) {
                queue.write_buffer(buffer, 0, arrays.bytes(i));
            }
        }
    }
}

impl Arrays {
    /// The arrays of rows `range` of `data`.
    pub fn new(data: &SparseDataset, range: Range<usize>) -> Self {
        Self::with_columns(data, range).0
    }

    /// The arrays of rows `range` of `data`, and the column of each of its segments.
    fn with_columns(data: &SparseDataset, range: Range<usize>) -> (Self, Vec<u32>) {
        let csr = Csr::of_window(data, range);
        let csc = csr.transposed(data.features());
        let (segment_offsets, segment_column) = segments(&csc.offsets);
        let arrays = Arrays {
            csr,
            csc,
            segment_offsets,
        };
        (arrays, segment_column)
    }

    /// The CSR's row offsets.
    pub fn csr_offsets(&self) -> &[u32] {
        &self.csr.offsets
    }

    /// The CSC's column offsets and row indices.
    pub fn columns(&self) -> (&[u32], &[u32]) {
        (&self.csc.offsets, &self.csc.indices)
    }

    /// The bytes of buffer `i` of [`BUFFERS`] (one zero word where it has none).
    fn bytes(&self, i: usize) -> &[u8] {
        let bytes: &[u8] = match i {
            0 => bytemuck::cast_slice(&self.csr.offsets),
            1 => bytemuck::cast_slice(&self.csr.indices),
            2 => bytemuck::cast_slice(&self.csr.values),
            5 => bytemuck::cast_slice(&self.segment_offsets),
            6 => bytemuck::cast_slice(&self.csc.indices),
            7 => bytemuck::cast_slice(&self.csc.values),
            _ => unreachable!("buffer {i} is written by the passes"),
        };
        match bytes.is_empty() {
            true => &[0; 4],
            false => bytes,
        }
    }
}

/// The CSC's columns cut into segments of at most [`SEGMENT`] entries: the segments'
/// offsets (into the CSC's entries), and each segment's column. An empty column has no
/// segment.
fn segments(column_offsets: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let mut offsets = vec![0u32];
    let mut column = Vec::new();
    for (j, w) in column_offsets.windows(2).enumerate() {
        let mut at = w[0];
        while at < w[1] {
            at = (at + SEGMENT as u32).min(w[1]);
            offsets.push(at);
            column.push(j as u32);
        }
    }
    (offsets, column)
}

/// CSR (or CSC) arrays with u32 offsets, as the kernels read them; no values where the
/// rows keep none (all ones).
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

//! How the host cuts kernels' work into dispatches: the fused gradient's slice records
//! (a step's tiles, one dispatch each, under the device's loop limit), the moments pass's
//! workgroups, and the bind groups of records read at dynamic offsets.

use std::ops::Range;

use super::context::GpuContext;
use super::kernels::{Kernels, SliceUniform, StepUniform};
use super::rows::uniform_buffer;
use crate::error::{Error, Result};

/// A bind group of one record of `size` bytes of `buffer`, read at dynamic offsets.
pub(super) fn record_bind_group(
    ctx: &GpuContext,
    label: &str,
    layout: &wgpu::BindGroupLayout,
    buffer: &wgpu::Buffer,
    size: usize,
) -> wgpu::BindGroup {
    ctx.device().create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(label),
        layout,
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer,
                offset: 0,
                size: wgpu::BufferSize::new(size as u64),
            }),
        }],
    })
}

/// Workgroups per shard for the moments pass over shards of up to `rows` rows: `groups`
/// (at most one per WG rows), or more where a block of rows per workgroup would run past
/// the device's loop limit (each of a block's rows is read for ⌈d / WG⌉ columns;
/// `shaders/moments.wgsl`): blocks of fewer rows than a tile where rows are wide.
pub(super) fn moment_groups(
    ctx: &GpuContext,
    limit: Option<u32>,
    rows: u64,
    d: u64,
    wg: u32,
    class_slots: u64,
    (shards, groups): (u64, u32),
) -> Result<u32> {
    // Unless the loop limit asks for more, a workgroup's block of rows is at least WG rows
    // (one tile): more workgroups would only add their label sums, K each, to the partials.
    let groups = groups.min(rows.div_ceil(u64::from(wg)).max(1) as u32);
    let Some(limit) = limit else {
        return Ok(groups);
    };
    let owned = d.div_ceil(u64::from(wg));
    let fixed = owned + (class_slots + 1) * (u64::from(wg.ilog2()) + 2) + 16;
    let what = || format!("column moments of {rows} rows of {d} features");
    let room = super::plan::loop_budget(limit).saturating_sub(fixed);
    let per_row = owned + 3;
    // Rows one workgroup's block may hold (fewer than a tile of WG where rows are wide).
    let block = room / per_row;
    if block == 0 {
        return Err(Error::LoopLimit {
            what: what(),
            needed: fixed + per_row,
            limit: u64::from(limit),
        });
    }
    let needed = rows.div_ceil(block);
    let moment_bytes = 4 * (2 * d + class_slots + 1) * shards;
    let most = ctx.storage_binding_limit() / moment_bytes;
    if needed > most {
        return Err(Error::LoopLimit {
            what: what(),
            needed: fixed + rows.div_ceil(most) * per_row,
            limit: u64::from(limit),
        });
    }
    Ok(groups.max(needed as u32))
}

/// The slice records of the fused gradient: slice i covers tiles i·S .. (i + 1)·S of a
/// step, S = most workgroups × [`ShaderConstants::slice_tiles`], so that no workgroup of a
/// dispatch takes more than `slice_tiles` tiles (see `shaders/gradient.wgsl`). One record
/// where the device has no loop limit.
pub(super) struct Slices {
    buffer: wgpu::Buffer,
    bind: wgpu::BindGroup,
    /// Bytes between records (the device's uniform offset alignment).
    stride: u64,
    /// Tiles per slice, S.
    pub(super) span: u32,
    /// The kept deltas of one slice's rows, where the classes are split (a placeholder of
    /// one float otherwise).
    pub(super) deltas: wgpu::Buffer,
}

/// Most bytes of kept deltas (one slice's rows × k floats) where the classes are split:
/// slices are cut to fit.
const DELTA_BYTES: u64 = 64 << 20;

impl Slices {
    /// Records for steps over up to `rows` rows with up to `max_groups` workgroups each.
    pub(super) fn new(
        ctx: &GpuContext,
        kernels: &Kernels,
        rows: usize,
        max_groups: u32,
    ) -> Result<Self> {
        let c = &kernels.constants;
        let mut span = max_groups.saturating_mul(c.slice_tiles);
        // The kept deltas of a slice: its tiles' rows × k floats, within the budget.
        let mut delta_bytes = 4;
        if c.splits_classes() {
            let tile_bytes = 4 * u64::from(c.tile_rows) * u64::from(c.k);
            let budget = DELTA_BYTES.min(ctx.storage_binding_limit());
            span = span.min((budget / tile_bytes).clamp(1, u64::from(u32::MAX)) as u32);
            delta_bytes = u64::from(span) * tile_bytes;
        }
        let tiles = (rows as u64).div_ceil(u64::from(c.tile_rows)).max(1);
        let count = tiles.div_ceil(u64::from(span)) as u32;
        let stride = (size_of::<SliceUniform>() as u64)
            .next_multiple_of(u64::from(ctx.limits().min_uniform_buffer_offset_alignment));
        let mut bytes = vec![0u8; (stride * u64::from(count)) as usize];
        for (i, record) in bytes.chunks_exact_mut(stride as usize).enumerate() {
            let slice = SliceUniform::new(i as u32, span);
            record[..size_of::<SliceUniform>()].copy_from_slice(bytemuck::bytes_of(&slice));
        }
        let buffer = uniform_buffer(ctx, "downhill.slices", &bytes)?;
        let deltas = ctx.buffer(
            "downhill.deltas",
            delta_bytes,
            wgpu::BufferUsages::STORAGE,
            false,
        )?;
        let bind = record_bind_group(
            ctx,
            "downhill.slices",
            &kernels.layouts.slice,
            &buffer,
            size_of::<SliceUniform>(),
        );
        Ok(Slices {
            buffer,
            bind,
            stride,
            span,
            deltas,
        })
    }

    /// Records the fused gradient of the step `uniform` over the rows `held` of one shard
    /// (or streamed chunk) with `groups` workgroups: one dispatch per slice of its tiles,
    /// with the gradient pipeline the caller set, or, where the classes are split, two
    /// (that one keeps the deltas, then `deltas_in` sums the class tiles or runs the tiled
    /// product) or three (`logits` first, where z is a tiled product too).
    pub(super) fn dispatch(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        kernels: &Kernels,
        uniform: &StepUniform,
        held: &Range<u32>,
        groups: u32,
    ) {
        let c = &kernels.constants;
        // The kernel's own count: a batch in file order visits this shard's rows of it.
        let positions = if uniform.shuffled != 0 {
            uniform.pos_count
        } else {
            overlap(
                held,
                uniform.pos_begin..uniform.pos_begin + uniform.pos_count,
            )
        };
        let tiles = positions.div_ceil(c.tile_rows);
        let count = tiles.div_ceil(self.span).max(1);
        debug_assert!(
            u64::from(count) * self.stride <= self.buffer.size(),
            "slice records"
        );
        for slice in 0..count {
            let offset = (u64::from(slice) * self.stride) as u32;
            pass.set_bind_group(3, &self.bind, &[offset]);
            match &kernels.deltas_in {
                Some(deltas_in) => {
                    if let Some(logits) = &kernels.logits {
                        pass.set_pipeline(logits);
                        pass.dispatch_workgroups(groups, c.product_tiles().1, 1);
                    }
                    pass.set_pipeline(&kernels.gradient);
                    pass.dispatch_workgroups(groups, 1, 1);
                    pass.set_pipeline(deltas_in);
                    if c.products.tiled() {
                        let (features, classes) = c.product_tiles();
                        pass.dispatch_workgroups(groups, features, classes);
                    } else {
                        pass.dispatch_workgroups(groups, c.class_tiles(), 1);
                    }
                }
                None => pass.dispatch_workgroups(groups, c.class_tiles(), 1),
            }
        }
    }
}

/// Rows two ranges share.
pub(crate) fn overlap(a: &Range<u32>, b: Range<u32>) -> u32 {
    a.end.min(b.end).saturating_sub(a.start.max(b.start))
}

//! The host side of the curvature kernels (`shaders/curvature.wgsl`): their segment
//! record, how a run of rows is cut into segments and blocks (within the device's loop
//! limit and binding size, with workgroups enough to fill a large device), and how the
//! blocks' partial tiles become the Hessian's entries.

use bytemuck::{Pod, Zeroable};

use super::plan::{check_loops, loop_budget};
use crate::error::{Error, Result};

/// One segment of a shard's rows; `struct Segment` in `shaders/curvature.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct SegmentUniform {
    /// The segment's first row, local to its shard.
    pub first: u32,
    pub rows: u32,
    /// Rows per block of the summing dispatch (a multiple of [`ROWS`]).
    pub block_rows: u32,
    pub blocks: u32,
}

/// Side of a tile of H in `hessian_tiles` (`HT`): each of its 256 invocations sums a
/// register block of 4 × 4 entries.
pub const TILE: u32 = 64;

/// Rows of a block come in multiples of 16 (the Hessian's staged rows, `HR`, divide it).
pub const ROWS: u32 = 16;

/// `hessian_tiles`' loop iterations per 16 rows of a block, at most: the staged entries
/// (4 an invocation), 16 rows of four register rows, the staging loops themselves.
const HESSIAN_LOOPS_PER_16_ROWS: u64 = 4 + 16 * 5 + 6;

/// Floats in one partial tile.
const TILE_ENTRIES: u64 = (TILE * TILE) as u64;

/// Workgroups a summing dispatch aims for where no loop limit bounds a block: enough to
/// fill a large device's cores several times over.
const WORKGROUP_TARGET: u64 = 4096;

/// Fewest rows a block takes where the rows allow it (fewer would only add partials).
const MIN_BLOCK_ROWS: u64 = 256;

/// Which curvature pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// H: the row coefficients, then tiles of H's upper triangle.
    Hessian,
    /// Hv: the rows' w·C·(x̃·V), then Xᵀ of them.
    Product,
}

/// The shape of one problem's curvature passes.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub d: u32,
    pub k: u32,
    /// A custom softmax loss: C in its general form, diag(r) − rpᵀ − prᵀ + Q·ppᵀ, whose
    /// factors p, r and Q a row carries (`GENERAL_SOFTMAX` in the kernels).
    pub general: bool,
    /// Invocations per workgroup of the row and column kernels.
    pub wg: u32,
    pub loop_limit: Option<u32>,
    /// Bytes one storage binding may hold.
    pub binding_limit: u64,
    pub max_per_dimension: u32,
}

/// How a pass cuts its rows: blocks of `block_rows`, `blocks` of them per segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub pass: Pass,
    pub block_rows: u32,
    /// Most blocks in one segment.
    pub blocks: u32,
    /// Floats of one block's partial.
    pub entries: u64,
    /// Floats of coefficients per row.
    pub coefficients: u64,
}

impl Shape {
    /// θ's entries, (d + 1)·k.
    pub fn parameters(&self) -> u64 {
        (u64::from(self.d) + 1) * u64::from(self.k)
    }

    /// Tiles along one side of H.
    pub fn tiles(&self) -> u64 {
        self.parameters().div_ceil(u64::from(TILE))
    }

    /// Workgroups of one block of the summing dispatch: tile pairs of H's upper triangle,
    /// or column groups of Hv.
    pub fn groups(&self, pass: Pass) -> u64 {
        match pass {
            Pass::Hessian => self.tiles() * (self.tiles() + 1) / 2,
            Pass::Product => self.parameters().div_ceil(u64::from(self.wg)),
        }
    }

    /// The segments' layout for runs of at most `rows` rows, or the limit that refuses it.
    pub fn layout(&self, pass: Pass, rows: u64) -> Result<Layout> {
        let (d, k) = (u64::from(self.d), u64::from(self.k));
        let groups = self.groups(pass);
        let what = || {
            format!(
                "the {} of {d} features and {k} outputs",
                match pass {
                    Pass::Hessian => "Hessian",
                    Pass::Product => "Hessian-vector product",
                }
            )
        };
        if groups > u64::from(self.max_per_dimension) {
            return Err(Error::TooLarge {
                what: what(),
                bytes: groups,
                limit_name: "max_compute_workgroups_per_dimension",
                limit: u64::from(self.max_per_dimension),
                hint: "; use --solver lbfgs",
            });
        }
        // Loops of one invocation of the row kernel per row: the logits, then softmax's
        // three passes over the classes (and Hv's direction logits), and the general
        // form's three more.
        let logits = k * (d + 1) + 7 * k + 8;
        let per_row = match pass {
            Pass::Hessian => logits,
            Pass::Product => 2 * logits,
        };
        check_loops(what, per_row, self.loop_limit)?;
        let entries = match pass {
            Pass::Hessian => groups * TILE_ENTRIES,
            Pass::Product => self.parameters(),
        };
        let coefficients = match pass {
            Pass::Hessian if self.general => 2 * k + 2,
            Pass::Hessian => k + 1,
            Pass::Product => k,
        };
        let block_rows = match self.loop_limit {
            // A block's loops per invocation: HESSIAN_LOOPS_PER_16_ROWS (Hessian), 1 per
            // row (Hv).
            Some(limit) => {
                let room = loop_budget(limit).saturating_sub(64);
                let rows = u64::from(ROWS);
                match pass {
                    Pass::Hessian => room / HESSIAN_LOOPS_PER_16_ROWS * rows,
                    Pass::Product => room / rows * rows,
                }
            }
            None => {
                let blocks = WORKGROUP_TARGET.div_ceil(groups).max(1);
                rows.div_ceil(blocks)
                    .max(MIN_BLOCK_ROWS)
                    .next_multiple_of(u64::from(ROWS))
            }
        };
        let block_rows = block_rows.min(rows.max(1).next_multiple_of(u64::from(ROWS)));
        // Segments within one binding of partials and of coefficients.
        let partial_bytes = 4 * entries;
        let by_partials = self.binding_limit / partial_bytes;
        let by_coefficients = self.binding_limit / (4 * coefficients * block_rows);
        let blocks = by_partials
            .min(by_coefficients)
            .min(u64::from(self.max_per_dimension))
            .min(rows.div_ceil(block_rows).max(1));
        if blocks == 0 {
            return Err(Error::TooLarge {
                what: format!("the partial sums of {}", what()),
                bytes: partial_bytes.max(4 * coefficients * block_rows),
                limit_name: "max_storage_buffer_binding_size",
                limit: self.binding_limit,
                hint: "; use --solver lbfgs",
            });
        }
        Ok(Layout {
            pass,
            block_rows: block_rows as u32,
            blocks: blocks as u32,
            entries,
            coefficients,
        })
    }
}

impl Layout {
    /// Rows of one segment at most.
    pub fn segment_rows(&self) -> u32 {
        self.block_rows.saturating_mul(self.blocks)
    }

    /// The segments of a run of `rows` rows.
    pub fn segments(&self, rows: u32) -> Vec<SegmentUniform> {
        let span = self.segment_rows().max(1);
        (0..rows.div_ceil(span))
            .map(|s| {
                let first = s * span;
                let len = span.min(rows - first);
                SegmentUniform {
                    first,
                    rows: len,
                    block_rows: self.block_rows,
                    blocks: len.div_ceil(self.block_rows),
                }
            })
            .collect()
    }
}

/// A GPU session's curvature buffers and bind group, sized for both passes (made by
/// `session/curvature.rs` on the first curvature pass).
pub(crate) struct CurvatureBuffers {
    pub shape: Shape,
    pub hessian: Layout,
    pub product: Layout,
    pub direction: wgpu::Buffer,
    pub partials: wgpu::Buffer,
    pub staging: wgpu::Buffer,
    pub segment: wgpu::Buffer,
    pub bind: wgpu::BindGroup,
}

/// Invocations of the row kernel for a segment of `rows`: one per row, in at most
/// `max_per_dimension` workgroups (more rows loop within an invocation), or the limit.
pub fn row_groups(shape: &Shape, pass: Pass, rows: u32) -> Result<u32> {
    let groups = rows.div_ceil(shape.wg).clamp(1, shape.max_per_dimension);
    let each = u64::from(rows.div_ceil(groups * shape.wg));
    let (d, k) = (u64::from(shape.d), u64::from(shape.k));
    let logits = k * (d + 1) + 4 * k + 8;
    let per_row = if pass == Pass::Product {
        2 * logits
    } else {
        logits
    };
    let what = || format!("the curvature of {rows} rows of {d} features and {k} outputs");
    check_loops(what, each * per_row, shape.loop_limit)?;
    Ok(groups)
}

/// Adds one segment's partial tiles (`blocks` blocks of `pairs` tiles each) into the upper
/// triangle of the p×p Hessian `h`, in block order.
pub fn add_tiles(h: &mut [f64], p: usize, partials: &[f32], blocks: usize, pairs: usize) {
    let tile = TILE as usize;
    for block in partials.chunks_exact(pairs * tile * tile).take(blocks) {
        let mut pair = 0;
        let tiles = p.div_ceil(tile);
        for tj in 0..tiles {
            for ti in 0..=tj {
                let values = &block[pair * tile * tile..(pair + 1) * tile * tile];
                for r in 0..tile {
                    let a = ti * tile + r;
                    if a >= p {
                        break;
                    }
                    for c in 0..tile {
                        let b = tj * tile + c;
                        if b < p && a <= b {
                            h[a * p + b] += f64::from(values[r * tile + c]);
                        }
                    }
                }
                pair += 1;
            }
        }
    }
}

/// Copies H's upper triangle onto its lower.
pub fn mirror(h: &mut [f64], p: usize) {
    for a in 0..p {
        for b in 0..a {
            h[a * p + b] = h[b * p + a];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(d: u32, k: u32, loop_limit: Option<u32>) -> Shape {
        Shape {
            d,
            k,
            general: false,
            wg: 64,
            loop_limit,
            binding_limit: 128 << 20,
            max_per_dimension: 65535,
        }
    }

    #[test]
    fn segments_cover_the_rows_once_in_order() {
        for (rows, limit) in [(1_000_000u32, Some(65535)), (1000, None), (5, Some(65535))] {
            for pass in [Pass::Hessian, Pass::Product] {
                let layout = shape(64, 3, limit).layout(pass, u64::from(rows)).unwrap();
                let mut next = 0;
                for s in layout.segments(rows) {
                    assert_eq!(s.first, next);
                    assert!(s.blocks <= layout.blocks);
                    assert!(s.blocks * s.block_rows >= s.rows);
                    next += s.rows;
                }
                assert_eq!(next, rows);
            }
        }
    }

    #[test]
    fn blocks_stay_within_the_loop_budget() {
        let layout = shape(64, 1, Some(65535))
            .layout(Pass::Hessian, 1 << 24)
            .unwrap();
        let steps = u64::from(layout.block_rows / ROWS);
        assert!(steps * HESSIAN_LOOPS_PER_16_ROWS + 64 <= loop_budget(65535));
        let layout = shape(64, 1, Some(65535))
            .layout(Pass::Product, 1 << 24)
            .unwrap();
        assert!(u64::from(layout.block_rows) + 64 <= loop_budget(65535));
    }

    #[test]
    fn tiles_fill_the_upper_triangle() {
        // p = 70: two tiles a side, three pairs; each partial entry its own index.
        let p = 70;
        let pairs = 3;
        let entries = 64 * 64;
        let partials: Vec<f32> = (0..pairs * entries).map(|i| i as f32).collect();
        let mut h = vec![0.0; p * p];
        add_tiles(&mut h, p, &partials, 1, pairs);
        mirror(&mut h, p);
        // (0, 0) is pair 0 entry 0; (3, 66) is pair 1 (ti 0, tj 1) entry 3·64 + 2.
        assert_eq!(h[0], 0.0);
        assert_eq!(h[3 * p + 66], (entries + 3 * 64 + 2) as f64);
        assert_eq!(h[66 * p + 3], h[3 * p + 66]);
        // (65, 67) is pair 2 (ti 1, tj 1) entry 1·64 + 3.
        assert_eq!(h[65 * p + 67], (2 * entries + 64 + 3) as f64);
    }
}

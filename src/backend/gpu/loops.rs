//! The fused kernel's plan under a device's loop limit: an upper bound of each loop's
//! iterations per invocation, kernel by kernel, and the class blocks, tiles, classes per
//! class tile and slices that keep them within the budget ([`super::plan`]).

use super::constants::{PRODUCT_ROWS, PRODUCT_TILE, Products, ShaderConstants};
use super::plan::{class_block, loop_budget};
use crate::error::{Error, Result};

/// The tiled product's loop iterations per block of rows (`xt_delta_tiles` in
/// `shaders/products.wgsl`): the staged quad's components and its row's cycle walking
/// (four rounds, as `tile_loops`), the deltas, RB rows of four register rows, the
/// compensated sums, the block itself.
const PRODUCT_BLOCK_LOOPS: u64 = 4 + 16 + 4 + PRODUCT_ROWS as u64 * 5 + 4 + 1;

/// The same outside the blocks: the writes of its 16 sums.
const PRODUCT_FIXED_LOOPS: u64 = 4 + 16 + 4;

impl ShaderConstants {
    /// Shrinks the class blocks and the tiles until one tile's loops fit in `budget`
    /// iterations per invocation, then sets how many tiles a workgroup takes per dispatch.
    pub(super) fn fit_loop_budget(&mut self, budget: u64, limit: u32) -> Result<()> {
        let refuse = |needed: u64| Error::LoopLimit {
            what: format!(
                "the fused gradient of {} features and {} outputs",
                self.d, self.k
            ),
            needed,
            limit: u64::from(limit),
        };
        // Fewer classes per class tile while the final sums over the row groups (a loop
        // per accumulator) take more than half the budget.
        while self.fixed_loops() > budget / 2 && self.kt > 1 {
            self.kt = self.kt.div_ceil(2);
        }
        let fixed = self.fixed_loops();
        let room = budget.checked_sub(fixed).ok_or_else(|| refuse(fixed))?;
        // Smaller class blocks, while one block of z alone does not fit.
        let mut blocks = self.class_blocks();
        while self.block_loops() > room && self.kb > 1 {
            blocks += 1;
            self.kb = class_block(self.k, blocks);
        }
        if self.block_loops() > room {
            return Err(refuse(fixed + self.block_loops()));
        }
        while self.tile_loops(self.tile_rows) > room && self.tile_rows > 1 {
            self.tile_rows = self.tile_rows.div_ceil(2);
        }
        let per_tile = self.tile_loops(self.tile_rows);
        if per_tile > room {
            return Err(refuse(fixed + per_tile));
        }
        self.slice_tiles = u32::try_from(room / per_tile).unwrap_or(u32::MAX);
        Ok(())
    }

    /// Fewer tiles per slice where the tiled products (`shaders/products.wgsl`) would run
    /// past `budget`: a workgroup of `xt_delta_tiles` takes up to ⌈slice_tiles ·
    /// TILE_ROWS / RB⌉ blocks of RB rows of a slice, one of `logits_tiles` blocks of 64.
    /// Where not even one tile's blocks fit, that product is not tiled: z computed by the
    /// fused kernel, or Xᵀδ one pass over X per class tile.
    pub(super) fn fit_products_budget(&mut self, budget: u64) {
        if !self.products.tiled() {
            return;
        }
        let tile_rows = u64::from(self.tile_rows);
        // Tiles of a slice whose blocks of `rows` rows stay within the budget.
        let tiles = |rows: u32, per_block: u64| {
            budget.saturating_sub(PRODUCT_FIXED_LOOPS) / per_block * u64::from(rows) / tile_rows
        };
        let xt = tiles(PRODUCT_ROWS, PRODUCT_BLOCK_LOOPS);
        let z = tiles(PRODUCT_TILE, self.logit_block_loops());
        let most = match (xt, z) {
            (0, _) => {
                self.products = Products::Untiled;
                return;
            }
            (xt, 0) => {
                self.products = Products::TiledXt;
                xt
            }
            (xt, z) => xt.min(z),
        };
        self.slice_tiles = self.slice_tiles.min(most.min(u64::from(u32::MAX)) as u32);
    }

    /// An upper bound of `logits_tiles`' loop iterations per block of rows: per slab of RB
    /// features, the staged quad's components and its row's cycle walking, W's numbers,
    /// RB features of four register rows, the slab itself; then the 16 writes.
    fn logit_block_loops(&self) -> u64 {
        let slabs = u64::from(self.dp.div_ceil(PRODUCT_ROWS));
        slabs * (4 + 16 + 4 + u64::from(PRODUCT_ROWS) * 5 + 1) + 4 + 16 + 1
    }

    /// Whether the descent step runs in one workgroup (`update` in `shaders/update.wgsl`):
    /// up to 256 entries per invocation, within the device's loop budget with its three
    /// loops over them (and a sum over the features per bias entry when standardizing).
    pub fn update_in_one_workgroup(&self) -> bool {
        let n = u64::from(self.d + 1) * u64::from(self.k);
        let each = n.div_ceil(u64::from(self.wg));
        let loops = 3 * each + u64::from(self.k).div_ceil(u64::from(self.wg)) * u64::from(self.d);
        each <= 256 && self.loop_limit.is_none_or(|l| loops + 16 <= loop_budget(l))
    }

    /// Classes blocks per row: ⌈K / KB⌉.
    pub fn class_blocks(&self) -> u32 {
        self.k.div_ceil(self.kb)
    }

    /// Loop iterations of one class block of z over one column block (`logits` in
    /// `shaders/gradient.wgsl`): the inner loop turns once per class, or once per four when
    /// KB ≥ 4.
    fn block_loops(&self) -> u64 {
        let (q, kb) = (u64::from(self.qb), u64::from(self.kb));
        let inner = if kb >= 4 { kb / 4 } else { kb };
        inner + q * (inner + 1) + kb + 1
    }

    /// An upper bound of the loop iterations one invocation of the fused kernel runs per
    /// tile of `rows` rows (the loops of `shaders/gradient.wgsl`, each counted with its
    /// most iterations; batch_row's cycle walking as four rounds).
    fn tile_loops(&self, rows: u32) -> u64 {
        let (wg, rows) = (u64::from(self.wg), u64::from(rows));
        let k = u64::from(self.k);
        let (qb, blocks) = (u64::from(self.qb), u64::from(self.column_blocks()));
        let per_invocation = |items: u64| items.div_ceil(wg);
        let status = per_invocation(rows) * (1 + 16);
        // Each block staged for z, and all but the last again for x^T delta.
        let staging = u64::from(self.stage) * per_invocation(rows * qb) * (2 * blocks - 1);
        let logits =
            blocks * per_invocation(rows * u64::from(self.class_blocks())) * self.block_loops();
        let deltas = per_invocation(rows) * (5 * k + 4);
        // The invocation's column quads in one block (all COLS with one block); column quad
        // 0 adds the bias sums beside its x^T delta.
        let cols = u64::from(self.cols);
        let block_cols = if blocks == 1 {
            cols
        } else {
            cols.min(qb.div_ceil(u64::from(self.col_stride)) + 1)
        };
        let accumulate = blocks
            * (block_cols + 1)
            * (rows.div_ceil(u64::from(self.row_groups)) * (u64::from(self.kt) + 1) + 1);
        1 + status + staging + logits + deltas + accumulate + 2 * blocks
    }

    /// An upper bound of the fused kernel's loop iterations per invocation outside the
    /// tiles: caching W, clearing the accumulators and their compensations, the final sums
    /// over the row groups and the workgroup.
    fn fixed_loops(&self) -> u64 {
        let wg = u64::from(self.wg);
        let (q, k) = (u64::from(self.dp / 4), u64::from(self.k));
        let accumulators = u64::from(self.cols) * u64::from(self.kt);
        let w_cache = u64::from(self.w_cached) * (q * k).div_ceil(wg);
        let tree = u64::from(wg.ilog2()) + 2;
        let bias = u64::from(self.kt) * (u64::from(self.row_groups) + 1);
        let writes = accumulators * (4 * (u64::from(self.row_groups) + 1) + 1) + bias;
        w_cache + writes + 10 * tree + 2 * (accumulators + u64::from(self.kt)) + 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::gpu::kernels::Tuning;
    use crate::model::Objective;

    /// With llvmpipe's loop limit, every shape of the GPU tests' sweep (`tests/wide.rs`), and
    /// wider ones, is planned within the budget on lavapipe's 32 KiB of workgroup memory,
    /// rows read in place or staged (in column blocks where a whole row does not fit).
    #[test]
    fn plans_stay_within_the_loop_budget() {
        let limit = 65_535;
        let features = [
            1, 3, 4, 5, 63, 64, 65, 511, 512, 513, 1023, 2048, 3000, 8192, 20_000, 100_000,
        ];
        let mut objectives = vec![Objective::linear(), Objective::logistic()];
        for k in [2, 3, 31, 32, 33, 64, 100, 128, 512, 1000] {
            objectives.push(Objective::softmax(k).unwrap());
        }
        for d in features {
            for objective in &objectives {
                for tuning in [Tuning::CPU, Tuning::GPU] {
                    let c = match ShaderConstants::new(objective, d, 1, tuning, 32768, Some(limit))
                    {
                        Ok(c) => c,
                        // One invocation sums a row's z (a block at a time): 100 000
                        // features are more loop iterations than llvmpipe allows it.
                        Err(Error::LoopLimit { .. }) if d == 100_000 => continue,
                        Err(e) => panic!("{objective}, {d}, {tuning:?}: {e}"),
                    };
                    let what = format!("{objective}, {d}, {tuning:?}");
                    if tuning.stage {
                        // Staged rows and z fit in the workgroup memory, in blocks when wide.
                        let floats = c.tile_rows * (4 * c.qb + c.k + 1) + c.wg;
                        assert!(floats <= 8192, "{what}: {floats} floats");
                        if d >= 8192 {
                            assert!(c.column_blocks() > 1, "{what}: one block");
                        }
                    } else {
                        assert_eq!(c.column_blocks(), 1, "{what}");
                    }
                    let worst =
                        c.fixed_loops() + u64::from(c.slice_tiles) * c.tile_loops(c.tile_rows);
                    assert!(
                        worst <= loop_budget(limit),
                        "{objective}, {d}: {worst} iterations"
                    );
                    // The tiled products' blocks of a slice, where they run.
                    let slice_rows = u64::from(c.slice_tiles) * u64::from(c.tile_rows);
                    if c.products.tiled() {
                        let blocks = slice_rows.div_ceil(u64::from(PRODUCT_ROWS));
                        let xt = PRODUCT_FIXED_LOOPS + blocks * PRODUCT_BLOCK_LOOPS;
                        assert!(xt <= loop_budget(limit), "{what}: x^T delta {xt}");
                    }
                    if c.products == Products::TiledBoth {
                        let blocks = slice_rows.div_ceil(u64::from(PRODUCT_TILE));
                        let z = PRODUCT_FIXED_LOOPS + blocks * c.logit_block_loops();
                        assert!(z <= loop_budget(limit), "{what}: z {z}");
                    }
                    let tiled = c.splits_classes() && c.k >= tuning.products_from;
                    assert_eq!(c.products.tiled(), tiled, "{what}");
                    assert!(c.kb >= 1 && c.kt >= 1 && c.tile_rows >= 1);
                    assert!(c.class_blocks() * c.kb >= c.k);
                }
            }
        }
        // Without a limit nothing is sliced, and classes come sixteen to a block.
        let c = ShaderConstants::new(
            &Objective::softmax(1000).unwrap(),
            64,
            1,
            Tuning::CPU,
            32768,
            None,
        )
        .unwrap();
        assert_eq!((c.slice_tiles, c.kb, c.class_blocks()), (u32::MAX, 16, 63));
        let c = ShaderConstants::new(
            &Objective::softmax(10).unwrap(),
            64,
            1,
            Tuning::CPU,
            32768,
            None,
        )
        .unwrap();
        assert_eq!((c.kb, c.class_blocks()), (12, 1));
        let c = ShaderConstants::new(
            &Objective::softmax(3).unwrap(),
            64,
            1,
            Tuning::CPU,
            32768,
            None,
        )
        .unwrap();
        assert_eq!((c.kb, c.class_blocks()), (3, 1));
        // A limit too small for one row's z is refused, naming it.
        let e = ShaderConstants::new(
            &Objective::logistic(),
            8192,
            1,
            Tuning::CPU,
            32768,
            Some(2000),
        )
        .unwrap_err();
        assert!(matches!(e, Error::LoopLimit { limit: 2000, .. }), "{e}");
    }
}

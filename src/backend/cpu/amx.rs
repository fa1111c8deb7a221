//! Matrix products on Intel's AMX tiles, as exact as f32 products. Each f32 is split into
//! three bfloat16 parts that add up to it exactly (a = a₀ + a₁ + a₂, each rounded to the
//! nearest from what the parts before it leave, so |a₁| ≤ 2⁻⁸|a| and |a₂| ≤ 2⁻¹⁶|a|),
//! and A·B is the sum of the six part products down to 2⁻¹⁶ of |a|·|b|: a₀b₀, a₁b₀, a₂b₀,
//! a₁b₁, a₀b₁, a₀b₂. A tile multiply forms bfloat16 products exactly and adds them in f32,
//! so each product of the sum is off by the three part products left out (at most about
//! 2⁻²³ of |a|·|b|, of either sign), about what rounding an f32 product costs. A core's tiles multiply bfloat16 at about 16
//! times its AVX-512 f32 rate, so even six of them a product come out ahead.
//!
//! Operands are packed before they are multiplied: A by tiles of 16 rows, B by tiles of 16
//! columns in the pairs-of-rows order the tiles read, each in blocks of 32 of the shared
//! dimension, zero beyond the matrix. C is worked on 32 × 32 at a time (four tiles of
//! accumulators) in a fixed order, so the bits depend only on the shapes.

use std::arch::asm;

use super::view::View;
use crate::simd::Simd;

/// Whether the tiles can run here.
pub(super) fn available() -> bool {
    Simd::Amx.available()
}

/// The shared dimension a tile multiply covers.
const BLOCK: usize = 32;

/// Rows (of A) or columns (of B) a tile covers.
const TILE: usize = 16;

/// Blocks of the shared dimension that one visit to a block of C covers: B's pair of tiles
/// for them (96 KB) stays in the second-level cache while A's tiles go by, and C is
/// loaded and stored once for 16 · 32 of the shared dimension (tiles of 256 rows and 8, 16
/// and 32 blocks measured: 16 the fastest, by 3-4 %).
const KC: usize = 16;

/// A 64-byte line: one row of a tile.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct Line([u16; BLOCK]);

/// Lines a tile part takes: one per row of A's tiles, one per pair of rows of B's.
const LINES: usize = TILE;

/// The parts of a split f32, a block's tile of each.
const PARTS: usize = 3;

/// The bfloat16 nearest to `x` (ties to even), as its bits; finite `x` only (an infinite
/// or NaN `x` gives an infinite or NaN part, and so an infinite or NaN product).
#[inline(always)]
fn bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

/// The f32 a bfloat16 stands for.
#[inline(always)]
fn widen(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `x` as three bfloat16 parts, largest first, that add up to it exactly (for finite
/// normal `x`; parts below f32's normal range are lost, as the tiles flush them).
#[inline(always)]
fn split(x: f32) -> [u16; PARTS] {
    let first = bf16(x);
    let rest = x - widen(first);
    let second = bf16(rest);
    [first, second, bf16(rest - widen(second))]
}

/// The operands of a pass's two products, packed: W once a pass, the rest once a tile.
#[derive(Default)]
pub(super) struct Operands {
    /// W, the right operand of Z = X_t·W.
    pub(super) w: Packed,
    /// X_t, the left operand of Z = X_t·W.
    pub(super) x: Packed,
    /// Δᵀ, the left operand of G += Δᵀ·X_t.
    pub(super) deltas: Packed,
    /// X_t, the right operand of G += Δᵀ·X_t.
    pub(super) x_pairs: Packed,
}

/// An operand packed for the tiles: `tiles` tiles (always even, the last pair padded with
/// zeros), each `blocks` blocks of the shared dimension, each block [`PARTS`] tile parts
/// of [`LINES`] lines.
#[derive(Default)]
pub(super) struct Packed {
    lines: Vec<Line>,
    tiles: usize,
    blocks: usize,
}

impl Packed {
    /// Sizes it for `outer` rows of A (columns of B) and a shared dimension of `inner`.
    fn shape(&mut self, outer: usize, inner: usize) {
        self.tiles = 2 * outer.div_ceil(2 * TILE);
        self.blocks = inner.div_ceil(BLOCK);
        let len = self.tiles * self.blocks * PARTS * LINES;
        self.lines.resize(len, Line([0; BLOCK]));
    }

    /// The first line of `tile`'s block `block`.
    fn at(&self, tile: usize, block: usize) -> usize {
        (tile * self.blocks + block) * PARTS * LINES
    }

    /// Packs A (m×k, seen through `a`) as the left operand: line r of a tile part holds
    /// that part of A's row 16·tile + r, shared indices 32·block to 32·block + 31.
    pub(super) fn left(&mut self, a: &View, (m, k): (usize, usize)) {
        self.shape(m, k);
        // SAFETY: the tiles are only used where AVX-512F and BW are (`Simd::Amx`).
        unsafe {
            if a.row == 1 && a.col != 1 {
                self.left_columns(a, (m, k))
            } else {
                self.left_rows(a, (m, k))
            }
        }
    }

    /// Packs B (k×n, seen through `b`) as the right operand: line r of a tile part holds
    /// that part of B's rows 32·block + 2r and + 2r + 1, interleaved, for the columns
    /// 16·tile to 16·tile + 15.
    pub(super) fn right(&mut self, b: &View, (k, n): (usize, usize)) {
        self.shape(n, k);
        // SAFETY: as in `left`.
        unsafe { self.right_rows(b, (k, n)) }
    }
}

impl Packed {
    /// [`Packed::left`] a row of A at a time (contiguous where `a.col` = 1), vectorized.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn left_rows(&mut self, a: &View, (m, k): (usize, usize)) {
        for tile in 0..self.tiles {
            for block in 0..self.blocks {
                let first = self.at(tile, block);
                let cols = BLOCK.min(k - BLOCK * block);
                for r in 0..LINES {
                    let row = TILE * tile + r;
                    let mut values = [0.0f32; BLOCK];
                    if row < m {
                        gather(&mut values, cols, a, row * a.row + BLOCK * block * a.col);
                    }
                    let parts = split_line(&values);
                    for (p, part) in parts.into_iter().enumerate() {
                        self.lines[first + p * LINES + r] = Line(part);
                    }
                }
            }
        }
    }

    /// [`Packed::left`] for columns of A that are contiguous (`a.row` = 1), vectorized: 16
    /// of a column's values at a time go to one place of 16 lines.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn left_columns(&mut self, a: &View, (m, k): (usize, usize)) {
        // Aᵀ: a column of A is a row of it, contiguous.
        let transposed = View {
            data: a.data,
            row: a.col,
            col: a.row,
        };
        for tile in 0..self.tiles {
            let start = TILE * tile;
            let rows = if start < m { TILE.min(m - start) } else { 0 };
            for block in 0..self.blocks {
                let first = self.at(tile, block);
                let mut parts = [[[0u16; BLOCK]; LINES]; PARTS];
                // j indexes the lines' columns: a transpose.
                #[allow(clippy::needless_range_loop)]
                for j in 0..BLOCK.min(k - BLOCK * block) {
                    let base = (BLOCK * block + j) * a.col + start * a.row;
                    let mut values = [0.0f32; TILE];
                    if rows > 0 {
                        gather(&mut values, rows, &transposed, base);
                    }
                    for (r, &v) in values.iter().enumerate() {
                        for (part, s) in parts.iter_mut().zip(split(v)) {
                            part[r][j] = s;
                        }
                    }
                }
                for (p, part) in parts.into_iter().enumerate() {
                    for (r, line) in part.into_iter().enumerate() {
                        self.lines[first + p * LINES + r] = Line(line);
                    }
                }
            }
        }
    }

    /// [`Packed::right`] two rows of B at a time (contiguous where `b.col` = 1),
    /// vectorized: a line holds two rows' 16 columns, interleaved.
    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn right_rows(&mut self, b: &View, (k, n): (usize, usize)) {
        for block in 0..self.blocks {
            for r in 0..LINES {
                let rows = [BLOCK * block + 2 * r, BLOCK * block + 2 * r + 1];
                for tile in 0..self.tiles {
                    let first = self.at(tile, block);
                    let start = TILE * tile;
                    let cols = if start < n { TILE.min(n - start) } else { 0 };
                    let mut pair = [[0.0f32; TILE]; 2];
                    for (values, &i) in pair.iter_mut().zip(&rows) {
                        if i < k && cols > 0 {
                            gather(values, cols, b, i * b.row + start * b.col);
                        }
                    }
                    let parts = split_pair(&pair);
                    for (p, part) in parts.into_iter().enumerate() {
                        self.lines[first + p * LINES + r] = Line(part);
                    }
                }
            }
        }
    }
}

/// The first `len` of `values` from a row of `m`, from `start` on; a whole contiguous
/// array is copied as one (a copy of a length known only at run time is a call).
#[inline(always)]
fn gather<const N: usize>(values: &mut [f32; N], len: usize, m: &View, start: usize) {
    if m.col == 1 && len == N {
        *values = m.data[start..start + N].try_into().expect("N floats");
    } else if m.col == 1 {
        values[..len].copy_from_slice(&m.data[start..start + len]);
    } else {
        for (j, v) in values[..len].iter_mut().enumerate() {
            *v = m.data[start + j * m.col];
        }
    }
}

/// 32 values' three parts, a line each.
#[inline(always)]
fn split_line(values: &[f32; BLOCK]) -> [[u16; BLOCK]; PARTS] {
    let mut parts = [[0u16; BLOCK]; PARTS];
    for (j, &v) in values.iter().enumerate() {
        let s = split(v);
        for p in 0..PARTS {
            parts[p][j] = s[p];
        }
    }
    parts
}

/// Two rows of 16 values' three parts, a line each, the rows interleaved (first row's
/// value, then the second's, for each column).
#[inline(always)]
fn split_pair([even, odd]: &[[f32; TILE]; 2]) -> [[u16; BLOCK]; PARTS] {
    let mut parts = [[0u16; BLOCK]; PARTS];
    for c in 0..TILE {
        let (e, o) = (split(even[c]), split(odd[c]));
        for p in 0..PARTS {
            parts[p][2 * c] = e[p];
            parts[p][2 * c + 1] = o[p];
        }
    }
    parts
}

/// C ← A·B (`add`: C ← C + A·B) for `(m, n)` from packed A (m×k) and B (k×n) with the
/// same k; C is row-major with `c_row` floats a row. The CPU must have the tiles
/// ([`available`]).
pub(super) fn gemm(
    (m, n): (usize, usize),
    a: &Packed,
    b: &Packed,
    c: &mut [f32],
    c_row: usize,
    add: bool,
) {
    assert!(available(), "AMX tiles are not available");
    assert_eq!(a.blocks, b.blocks, "A and B share k");
    assert!(
        a.tiles * TILE >= m && b.tiles * TILE >= n,
        "packed for {m}×{n}"
    );
    assert!(
        m == 0 || n == 0 || c.len() >= (m - 1) * c_row + n,
        "C is {m}×{n}"
    );
    if a.blocks == 0 && !add {
        for r in 0..m {
            c[r * c_row..r * c_row + n].fill(0.0);
        }
    }
    let mut spare = Spare([0.0; 4 * TILE * TILE]);
    // SAFETY: the tiles are available (asserted); the configuration is a valid palette 1.
    unsafe { asm!("ldtilecfg [{config}]", config = in(reg) &CONFIG, options(nostack)) };
    for first in (0..a.blocks).step_by(KC) {
        let blocks = KC.min(a.blocks - first);
        for np in 0..n.div_ceil(2 * TILE) {
            for mp in 0..m.div_ceil(2 * TILE) {
                let rows = (m - 2 * TILE * mp).min(2 * TILE);
                let cols = (n - 2 * TILE * np).min(2 * TILE);
                let corner = 2 * TILE * (mp * c_row + np);
                let pair = Pair {
                    a: &a.lines[a.at(2 * mp, first)..],
                    b: &b.lines[b.at(2 * np, first)..],
                    next: a.blocks * PARTS * LINES,
                    blocks,
                };
                let add = add || first > 0;
                if rows == 2 * TILE && cols == 2 * TILE {
                    let end = corner + (rows - 1) * c_row + cols;
                    // SAFETY: the tiles are available (asserted); the block's 32 rows of 32
                    // floats are inside C (`end`), and both operands hold a pair of tiles.
                    unsafe { block(&pair, &mut c[corner..end], c_row, add) };
                } else {
                    let s = &mut spare.0;
                    s.fill(0.0);
                    if add {
                        for r in 0..rows {
                            let from = corner + r * c_row;
                            s[r * 2 * TILE..][..cols].copy_from_slice(&c[from..from + cols]);
                        }
                    }
                    // SAFETY: as above, with a 32 × 32 block of its own.
                    unsafe { block(&pair, s, 2 * TILE, true) };
                    for r in 0..rows {
                        let to = corner + r * c_row;
                        c[to..to + cols].copy_from_slice(&s[r * 2 * TILE..][..cols]);
                    }
                }
            }
        }
    }
    // SAFETY: returns the tiles to their initial state, as the configuration found them.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// A's and B's pairs of tiles for one visit to a block of C: `blocks` blocks of the shared
/// dimension from the start of `a` and `b`, the second tile of each `next` lines on.
struct Pair<'p> {
    a: &'p [Line],
    b: &'p [Line],
    next: usize,
    blocks: usize,
}

/// A 32 × 32 block of C, for the edges.
#[repr(C, align(64))]
struct Spare([f32; 4 * TILE * TILE]);

/// The tiles' configuration: palette 1, every tile 16 rows of 64 bytes.
#[repr(C, align(64))]
struct Config {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

const CONFIG: Config = Config {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    bytes_per_row: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// One 32 × 32 block of C (`c`, `c_row` floats a row) ← C (if `add`, else 0) + A's pair
/// of tiles times B's, as `pair` gives them. Tiles 0-3
/// hold C's four 16 × 16 quarters, 4-5 A's two tiles, 6-7 B's two. Each block runs the
/// six part products in an order that changes one operand at a time: 14 tile loads for
/// 24 multiplies (an order with 16 measured 1-4 % slower).
///
/// # Safety
/// The CPU has the tiles ([`available`]) and they are configured with [`CONFIG`];
/// `pair.a` and `pair.b` hold `pair.blocks` blocks
/// from their start and from `pair.next` lines on; `c` holds 32 rows of `c_row` floats
/// (the last only 32).
#[cfg(target_arch = "x86_64")]
unsafe fn block(pair: &Pair, c: &mut [f32], c_row: usize, add: bool) {
    let Pair { a, b, next, blocks } = *pair;
    let needed = next + blocks * PARTS * LINES;
    debug_assert!(a.len() >= needed && b.len() >= needed && blocks > 0);
    debug_assert!(c.len() >= 31 * c_row + 32);
    let (a0, a1) = (a.as_ptr(), a[next..].as_ptr());
    let (b0, b1) = (b.as_ptr(), b[next..].as_ptr());
    let c_bytes = 4 * c_row;
    let c0 = c.as_mut_ptr();
    let c1 = c[16 * c_row..].as_mut_ptr();
    // SAFETY: the caller's contract; every load and store stays inside `a`, `b` and `c`.
    unsafe {
        asm!(
            "test {add:e}, {add:e}",
            "jz 3f",
            "tileloadd tmm0, [{c0} + {cs}*1]",
            "tileloadd tmm1, [{c0} + {cs}*1 + 64]",
            "tileloadd tmm2, [{c1} + {cs}*1]",
            "tileloadd tmm3, [{c1} + {cs}*1 + 64]",
            "jmp 4f",
            "3:",
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            "4:",
            // Each step changes one operand: 14 tile loads for 24 multiplies.
            // a₀b₂
            "tileloadd tmm4, [{a0} + {s}*1]",
            "tileloadd tmm6, [{b0} + {s}*1 + 2048]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tileloadd tmm7, [{b1} + {s}*1 + 2048]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a1} + {s}*1]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            // a₀b₁
            "tileloadd tmm6, [{b0} + {s}*1 + 1024]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tileloadd tmm7, [{b1} + {s}*1 + 1024]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            // a₁b₁
            "tileloadd tmm4, [{a0} + {s}*1 + 1024]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a1} + {s}*1 + 1024]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            // a₁b₀
            "tileloadd tmm6, [{b0} + {s}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tileloadd tmm7, [{b1} + {s}*1]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            // a₂b₀
            "tileloadd tmm4, [{a0} + {s}*1 + 2048]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a1} + {s}*1 + 2048]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            // a₀b₀
            "tileloadd tmm4, [{a0} + {s}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a1} + {s}*1]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a0}, 3072",
            "add {a1}, 3072",
            "add {b0}, 3072",
            "add {b1}, 3072",
            "dec {n}",
            "jnz 4b",
            "tilestored [{c0} + {cs}*1], tmm0",
            "tilestored [{c0} + {cs}*1 + 64], tmm1",
            "tilestored [{c1} + {cs}*1], tmm2",
            "tilestored [{c1} + {cs}*1 + 64], tmm3",
            add = in(reg) u32::from(add),
            a0 = inout(reg) a0 => _,
            a1 = inout(reg) a1 => _,
            b0 = inout(reg) b0 => _,
            b1 = inout(reg) b1 => _,
            n = inout(reg) blocks => _,
            s = in(reg) 64usize,
            c0 = in(reg) c0,
            c1 = in(reg) c1,
            cs = in(reg) c_bytes,
            options(nostack),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_parts_add_up_to_the_f32_exactly() {
        for i in 0..10_000 {
            let x = ((i as f32) * 0.618_034).sin() * 10f32.powi(i % 13 - 6);
            let [p0, p1, p2] = split(x);
            let sum = f64::from(widen(p0)) + f64::from(widen(p1)) + f64::from(widen(p2));
            assert_eq!(sum, f64::from(x), "{x}");
            assert!(widen(p1).abs() <= widen(p0).abs() / 256.0, "{x}");
        }
    }

    #[test]
    fn tile_products_equal_f64_ones_to_f32_precision() {
        if !available() {
            eprintln!("no AMX tiles on this CPU: the tile products are not run here");
            return;
        }
        // Edges in every dimension: m, n not multiples of 32, k not of 32.
        for &(m, k, n) in &[(1, 1, 1), (33, 70, 47), (64, 256, 96), (257, 2049, 40)] {
            let a: Vec<f32> = (0..m * k).map(|i| ((i as f32) * 0.37).sin()).collect();
            let bt: Vec<f32> = (0..n * k)
                .map(|i| ((i as f32) * 0.11).cos() * 3.0)
                .collect();
            // A as stored (row-major) and transposed; B as stored (n×k, so seen with
            // strides 1 and k) and transposed into k×n: every packing path.
            let at: Vec<f32> = (0..k * m).map(|t| a[(t % m) * k + t / m]).collect();
            let b: Vec<f32> = (0..k * n).map(|t| bt[(t % n) * k + t / n]).collect();
            let lefts = [
                View {
                    data: &a,
                    row: k,
                    col: 1,
                },
                View {
                    data: &at,
                    row: 1,
                    col: m,
                },
            ];
            let rights = [
                View {
                    data: &bt,
                    row: 1,
                    col: k,
                },
                View {
                    data: &b,
                    row: n,
                    col: 1,
                },
            ];
            let mut results = Vec::new();
            for left in &lefts {
                for right in &rights {
                    let (mut pa, mut pb) = (Packed::default(), Packed::default());
                    pa.left(left, (m, k));
                    pb.right(right, (k, n));
                    let mut c = vec![0.5f32; m * n];
                    gemm((m, n), &pa, &pb, &mut c, n, true);
                    results.push(c);
                }
            }
            assert!(results.iter().all(|c| c == &results[0]), "packings differ");
            let c = &results[0];
            for i in 0..m {
                for j in 0..n {
                    let terms = (0..k).map(|l| f64::from(a[i * k + l]) * f64::from(bt[j * k + l]));
                    let scale: f64 = terms.clone().map(f64::abs).sum::<f64>() + 0.5;
                    let exact = 0.5 + terms.sum::<f64>();
                    let err = (f64::from(c[i * n + j]) - exact).abs() / scale;
                    assert!(
                        err < 4.0 * f64::from(f32::EPSILON),
                        "({i}, {j}) of {m}×{k}×{n}: {err}"
                    );
                }
            }
        }
    }
}

//! The order rows are read in (in place, or through a list of positions), the per-thread
//! scratch, the held-out bitmap and the prefetch ahead of the rows being read.

use std::ops::Range;

use rayon::prelude::*;

use super::product::Products;
use crate::backend::Split;
use crate::floats::Floats;

/// Most rows per parallel work item.
pub(super) const CHUNK_ROWS: usize = 4096;

/// Rows per parallel work item for a batch of `len` rows: small batches are cut finer so
/// that every core has work. It depends on the batch alone, never on the thread count, so
/// the sums come out the same on any number of cores.
pub(super) fn chunk_rows(len: usize) -> usize {
    (len / 8).clamp(256, CHUNK_ROWS)
}

/// How far ahead of the rows being read the loop asks for memory, in bytes. Measured on
/// the development machine (2 cores): 8 KiB into the second-level cache keeps enough reads
/// in flight; into the first level, the prefetches compete with the loop's own loads.
pub(super) const PREFETCH_BYTES: usize = 8192;

/// Rows of at least this many bytes (1 024 features) are not asked for ahead: each is a
/// long run of lines that the CPU's own prefetcher follows, and a tile's worth of hints at
/// once (thousands) only competes with it. Measured on the development machine (`bench
/// --shapes … --backends cpu --no-numpy`, epochs against the read floor, with the hints →
/// without): 100 000 × 4 096 1.43× → 1.06–1.10× (mini-batches of 1 024 rows 1.76× →
/// 1.52×), 20 000 × 20 000 2.04× → 1.20–1.22×, 200 000 × 2 048 1.31× → 1.08×, 400 000 ×
/// 1 024 1.24× → 1.12×; at 512 features the same either way, and narrower rows need them
/// (2 000 000 × 64: 1.25× with, 1.77× without).
pub(super) const WIDE_ROW_BYTES: usize = 4096;

/// Whether rows of `d` features are wide ([`WIDE_ROW_BYTES`]).
fn wide(d: usize) -> bool {
    4 * d >= WIDE_ROW_BYTES
}

/// The rows of a chunk, in the order the loop visits them.
pub(super) trait RowOrder {
    fn len(&self) -> usize;
    /// The row visited `i`-th.
    fn row(&self, i: usize) -> usize;
    /// The first row when the rows are consecutive (row i visited i-th from it).
    fn consecutive(&self) -> Option<usize>;
    /// Asks for the rows visited `ahead` places after those visited in `visits` to be
    /// brought into cache.
    fn prefetch(&self, x: &[f32], d: usize, visits: Range<usize>);
}

/// Consecutive rows (a full batch in file order).
pub(super) struct InOrder {
    pub(super) start: usize,
    pub(super) len: usize,
    pub(super) ahead: usize,
}

impl RowOrder for InOrder {
    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    fn row(&self, i: usize) -> usize {
        self.start + i
    }

    #[inline(always)]
    fn consecutive(&self) -> Option<usize> {
        Some(self.start)
    }

    #[inline(always)]
    fn prefetch(&self, x: &[f32], d: usize, visits: Range<usize>) {
        if wide(d) {
            return;
        }
        // Rows are contiguous: the floats `ahead` rows on, up to the chunk's end.
        let end = self.start + self.len;
        let from = (self.start + visits.start + self.ahead).min(end);
        let to = (self.start + visits.end + self.ahead).min(end);
        prefetch(&x[from * d..to * d]);
    }
}

/// Rows listed by index (a shuffled batch), and the labels, asked for with their rows.
pub(super) struct Listed<'r> {
    pub(super) rows: &'r [usize],
    pub(super) ahead: usize,
    pub(super) y: &'r [f32],
}

impl RowOrder for Listed<'_> {
    #[inline(always)]
    fn len(&self) -> usize {
        self.rows.len()
    }

    #[inline(always)]
    fn row(&self, i: usize) -> usize {
        self.rows[i]
    }

    #[inline(always)]
    fn consecutive(&self) -> Option<usize> {
        None
    }

    #[inline(always)]
    fn prefetch(&self, x: &[f32], d: usize, visits: Range<usize>) {
        if wide(d) {
            return;
        }
        let ahead = (visits.start + self.ahead).min(self.rows.len())
            ..(visits.end + self.ahead).min(self.rows.len());
        for &row in &self.rows[ahead] {
            prefetch(&x[row * d..(row + 1) * d]);
            prefetch(&self.y[row..row + 1]);
        }
    }
}

/// Per-thread buffers of the fused loop, kept between calls so steps do not allocate.
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) rows: Vec<usize>,
    /// Where each row of the tile begins in X.
    pub(super) starts: Vec<usize>,
    pub(super) z: Vec<f32>,
    pub(super) labels: Vec<f32>,
    pub(super) losses: Vec<f32>,
    pub(super) weights: Vec<f32>,
    /// The rows' weights in the held-out set, when a pass sums its metrics too.
    pub(super) held_weights: Vec<f32>,
    pub(super) predictions: Vec<f32>,
    /// From a cache-line boundary, so that the AMX tiles load and store C's rows whole
    /// (a row across two lines measured 15 % slower).
    pub(super) sums: Floats,
    pub(super) bias_sums: Vec<f32>,
    /// The tile's rows side by side, for the products when they are not in X.
    pub(super) tile_x: Vec<f32>,
    /// The products of many classes, with their packed operands.
    pub(super) products: Products,
}

impl Scratch {
    /// Sizes the buffers for tiles of `tile` rows, d and k; the sums start at zero.
    pub(super) fn sized(&mut self, tile: usize, d: usize, k: usize) {
        self.starts.resize(tile, 0);
        self.z.resize(tile * k, 0.0);
        self.labels.resize(tile, 0.0);
        self.losses.resize(tile, 0.0);
        self.weights.resize(tile, 0.0);
        self.held_weights.resize(tile, 0.0);
        self.predictions.resize(tile, 0.0);
        if self.sums.len() == d * k {
            self.sums.fill(0.0);
        } else {
            self.sums = Floats::from_vec(vec![0.0; d * k]);
        }
        self.bias_sums.clear();
        self.bias_sums.resize(k, 0.0);
    }
}

/// [`CpuSession::held_out`] for local rows `0..rows` of global rows from `offset`.
pub(super) fn held_out_bits(split: &Split, offset: usize, rows: usize) -> Vec<u64> {
    let mut bits = vec![0u64; rows.div_ceil(64)];
    bits.par_iter_mut().enumerate().for_each(|(w, word)| {
        for b in 0..64 {
            let row = 64 * w + b;
            if row < rows && split.holds_out((offset + row) as u32) {
                *word |= 1 << b;
            }
        }
    });
    bits
}

thread_local! {
    pub(super) static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Rows per tile of the CPU loop: about 4 KiB of them, so the second pass over the tile
/// reads from the first-level cache and the loop alternates reading and computing finely;
/// at least eight (wide rows: 16 KiB at d = 512), the dot products' group.
pub(super) fn tile_rows(d: usize) -> usize {
    (4096 / (4 * d.max(1))).clamp(8, 64)
}

/// Asks the CPU to start loading `floats` into the second-level cache. The loop's work
/// between loads otherwise keeps too few of them in flight to use the memory bandwidth.
/// Four hints per turn of the loop: one per turn made the loop's own counting half of the
/// instructions of a tile, and the fewer instructions the core has to get through between
/// reads, the more of the reads it overlaps.
#[inline(always)]
pub(super) fn prefetch(floats: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
        // One hint per 64-byte line (16 floats): X's rows start on a line (`Floats`).
        let lines = floats.len().div_ceil(16);
        // In bounds: 16·line < floats.len() for every line < lines.
        let at = |line: usize| floats.as_ptr().wrapping_add(16 * line).cast::<i8>();
        let mut line = 0;
        while line + 4 <= lines {
            // SAFETY: a prefetch only hints, and every line is within `floats`.
            unsafe {
                _mm_prefetch::<_MM_HINT_T1>(at(line));
                _mm_prefetch::<_MM_HINT_T1>(at(line + 1));
                _mm_prefetch::<_MM_HINT_T1>(at(line + 2));
                _mm_prefetch::<_MM_HINT_T1>(at(line + 3));
            }
            line += 4;
        }
        while line < lines {
            // SAFETY: as above.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(at(line)) };
            line += 1;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = floats;
}

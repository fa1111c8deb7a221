//! The exact Hessian of sparse rows by H's rows: H = Σ w·x̃x̃ᵀ ⊗ ∂²ℓ/∂z∂zᵀ, where the
//! row (j, c) of H gathers, over the rows i holding column j, x_ij · x̃_i ⊗ D_i[c, ·]. A
//! column-major copy of the rows (CSC, made once a session) lists those rows; a thread
//! owns whole columns, so the k rows of H it fills stay in its first-level cache while the
//! rows of X it reads arrive one cache line after another. Scattering each row's outer
//! product into the whole of H instead (the first form) missed the cache on nearly every
//! add. Every row of H adds its terms in row order: the same bits on any number of
//! threads.

use std::ops::Range;

use rayon::prelude::*;

use crate::error::Result;
use crate::loss::RowLoss;
use crate::sparse::SparseDataset;

/// The rows of a window column by column (row indices local to the window, in order).
pub(super) struct Columns {
    offsets: Vec<u64>,
    rows: Vec<u32>,
    values: Option<Vec<f32>>,
}

impl Columns {
    /// The CSC of rows `window` of `data`, by a counting sort.
    pub fn new(data: &SparseDataset, window: Range<usize>) -> Result<Self> {
        let d = data.features();
        let all = data.offsets();
        let (from, to) = (all[window.start] as usize, all[window.end] as usize);
        let bytes = crate::memory::bytes_of::<u64>(d + 1)
            + crate::memory::bytes_of::<u32>(to - from)
            + data
                .values()
                .map_or(0, |_| crate::memory::bytes_of::<f32>(to - from));
        crate::memory::check(bytes, || {
            format!("a column-major copy of {} non-zeros", to - from)
        })?;
        let mut offsets = vec![0u64; d + 1];
        for &j in &data.indices()[from..to] {
            offsets[j as usize + 1] += 1;
        }
        for j in 0..d {
            offsets[j + 1] += offsets[j];
        }
        let mut next: Vec<u64> = offsets[..d].to_vec();
        let mut rows = vec![0u32; to - from];
        let mut values = data.values().map(|_| vec![0.0f32; to - from]);
        for (local, i) in window.enumerate() {
            for e in all[i] as usize..all[i + 1] as usize {
                let j = data.indices()[e] as usize;
                let at = next[j] as usize;
                rows[at] = local as u32;
                if let (Some(out), Some(v)) = (values.as_mut(), data.values()) {
                    out[at] = v[e];
                }
                next[j] += 1;
            }
        }
        Ok(Columns {
            offsets,
            rows,
            values,
        })
    }

    /// The entries of column j: their range in `rows`.
    fn column(&self, j: usize) -> Range<usize> {
        self.offsets[j] as usize..self.offsets[j + 1] as usize
    }

    /// Entry e's value.
    fn value(&self, e: usize) -> f64 {
        self.values.as_ref().map_or(1.0, |v| f64::from(v[e]))
    }
}

/// Entries a column's walk asks the cache for ahead of their rows' visits: each visit is
/// to a row far from the last, which the hardware's prefetchers cannot guess.
const AHEAD: usize = 8;

/// Asks the CPU to bring row `row`'s column indices and values (every line of them).
#[inline(always)]
fn prefetch_row(data: &SparseDataset, row: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let (from, to) = (
            data.offsets()[row] as usize,
            data.offsets()[row + 1] as usize,
        );
        prefetch_lines(data.indices()[from..to].as_ptr().cast(), 4 * (to - from));
        if let Some(v) = data.values() {
            prefetch_lines(v[from..to].as_ptr().cast(), 4 * (to - from));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, row);
}

/// Asks the CPU to bring the lines of `bytes` bytes from `at`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_lines(at: *const i8, bytes: usize) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    let mut line = 0;
    while line < bytes {
        // SAFETY: a prefetch only hints; it never faults.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(at.wrapping_add(line)) };
        line += 64;
    }
}

/// Asks the CPU to bring row `row`'s offsets, which [`prefetch_row`] reads later.
#[inline(always)]
fn prefetch_offsets(data: &SparseDataset, row: usize) {
    #[cfg(target_arch = "x86_64")]
    prefetch_lines(data.offsets()[row..].as_ptr().cast(), 16);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, row);
}

/// What the Hessian needs of each row of the window: its weight in the pass (0: not in
/// it) and its z, k values a row.
pub(super) struct RowCurvatures<'l> {
    pub weights: Vec<f64>,
    pub z: Vec<f64>,
    pub k: usize,
    pub loss: &'l dyn RowLoss,
}

/// H (p × p, row-major over θ's entries, p = (d + 1)·k) of rows `window` of `data`.
pub(super) fn hessian(
    data: &SparseDataset,
    window: Range<usize>,
    columns: &Columns,
    rows: &RowCurvatures<'_>,
) -> Vec<f64> {
    let d = data.features();
    let k = rows.k;
    let p = (d + 1) * k;
    let mut h = vec![0.0; p * p];
    h.par_chunks_mut(k * p).enumerate().for_each(|(j, block)| {
        let (mut curvature, mut term) = (vec![0.0; k * k], vec![0.0; k * k]);
        let mut add = |i: usize, x: f64| {
            let w = rows.weights[i];
            if w == 0.0 {
                return;
            }
            let y = f64::from(data.y()[window.start + i]);
            rows.loss
                .curvature(&rows.z[i * k..(i + 1) * k], y, &mut curvature);
            for (t, c) in term.iter_mut().zip(&curvature) {
                *t = w * x * c;
            }
            let row = data.row(window.start + i);
            let entries = row.entries().map(|(l, v)| (l, f64::from(v)));
            if k == 1 {
                let t = term[0];
                for (l, xl) in entries.chain([(d, 1.0)]) {
                    block[l] += xl * t;
                }
                return;
            }
            for (l, xl) in entries.chain([(d, 1.0)]) {
                for c in 0..k {
                    let out = &mut block[c * p + l * k..c * p + l * k + k];
                    for (o, t) in out.iter_mut().zip(&term[c * k..c * k + k]) {
                        *o += xl * t;
                    }
                }
            }
        };
        if j < d {
            let entries = columns.column(j);
            for e in entries.clone() {
                if e + 2 * AHEAD < entries.end {
                    prefetch_offsets(data, window.start + columns.rows[e + 2 * AHEAD] as usize);
                }
                if e + AHEAD < entries.end {
                    prefetch_row(data, window.start + columns.rows[e + AHEAD] as usize);
                }
                add(columns.rows[e] as usize, columns.value(e));
            }
        } else {
            for i in 0..window.len() {
                add(i, 1.0);
            }
        }
    });
    h
}

//! One pass over a batch's rows: per-chunk partial sums of the gradient and the metrics,
//! with rows weighted by class, by sample and by the split.

use std::ops::Range;

use super::math::{FLUSH_TILES, axpy, dot, flush, lane_sum, rows_loss_and_delta, tile_gradient};
use super::order::{InOrder, Listed, PREFETCH_BYTES, RowOrder, SCRATCH, Scratch, tile_rows};
use super::product::on_tiles;
use super::view::View;
#[cfg(target_arch = "x86_64")]
use super::{avx2, avx512};
use crate::backend::{Batch, RowSet};
use crate::data::Dataset;
use crate::model::Objective;
use crate::simd::{Simd, dispatch};

/// Metric sums after the gradient sums of a partial.
pub(super) const METRICS: usize = 5;

/// Classes from which a pass multiplies tiles ([`Pass::product_tiles`]) instead of
/// accumulating class by class.
pub(super) const PRODUCT_CLASSES: usize = 8;

/// Rows per tile of the products: their m and inner dimension.
const PRODUCT_TILE_ROWS: usize = 256;

/// Tiles whose products are added in f32 before they are moved into f64.
const PRODUCT_FLUSH_TILES: usize = 4;

/// What a pass over the rows is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Wanted {
    /// A descent step: ∇J (and Σw).
    Gradient,
    /// An evaluation: the loss and metrics, no ∇J (the pass skips Σ δ·x).
    Metrics,
    Both,
    /// Both, and the metrics of the held-out rows, which the pass reads anyway.
    BothAndHeldOut,
}

/// What a pass over the rows added up.
pub(super) struct Summed {
    /// The weighted mean ∇J (raw space, W's layout then b; zeros unless wanted).
    pub(super) grad: Vec<f64>,
    /// Σwℓ, Σw, Σw[correct], Σwy, Σwy² (Σw only unless wanted).
    pub(super) metrics: [f64; METRICS],
    /// The same five of the held-out rows ([`Wanted::BothAndHeldOut`]; else zeros).
    pub(super) held_out: [f64; METRICS],
}

/// How rows count in a pass: their sample weight times their class's weight, or nothing
/// when the pass does not use them.
#[derive(Clone, Copy)]
pub(super) struct Weighting<'p> {
    pub(super) sample: Option<&'p [f32]>,
    pub(super) class: Option<&'p [f64]>,
    /// The held-out rows' bits ([`CpuSession::held_out`]), when rows are held out.
    pub(super) held_out: Option<&'p [u64]>,
    pub(super) rows: RowSet,
}

impl Weighting<'_> {
    /// True when every row weighs 1.
    pub(super) fn plain(&self) -> bool {
        self.sample.is_none()
            && self.class.is_none()
            && (self.held_out.is_none() || self.rows == RowSet::All)
    }

    #[inline(always)]
    pub(super) fn of(&self, row: usize, label: f32) -> f32 {
        self.in_set(self.rows, row, label)
    }

    /// The row's weight in the pass's rows and in the held-out rows.
    #[inline(always)]
    pub(super) fn and_held_out(&self, row: usize, label: f32) -> (f32, f32) {
        (
            self.of(row, label),
            self.in_set(RowSet::Validation, row, label),
        )
    }

    #[inline(always)]
    pub(super) fn in_set(&self, rows: RowSet, row: usize, label: f32) -> f32 {
        let held = self
            .held_out
            .map(|bits| bits[row / 64] >> (row % 64) & 1 == 1);
        if !rows.uses(held) {
            return 0.0;
        }
        let sample = self.sample.map_or(1.0, |w| w[row]);
        let class = self
            .class
            .map_or(1.0, |c| c[(label as usize).min(c.len() - 1)] as f32);
        sample * class
    }
}

/// What one chunk needs to compute its partial.
pub(super) struct Pass<'p> {
    /// Global rows `offset..offset + data.rows()`.
    pub(super) data: &'p Dataset,
    pub(super) offset: usize,
    pub(super) objective: Objective,
    pub(super) wt: &'p [f32],
    pub(super) with_gradient: bool,
    pub(super) with_metrics: bool,
    /// Sum the held-out rows' metrics too (after the pass's own, in each partial).
    pub(super) with_held_out: bool,
    pub(super) simd: Simd,
    pub(super) weights: Weighting<'p>,
    /// Distinct for every pass ([`Pass::next_id`]): what a thread derives from W for one
    /// chunk it keeps for the pass's other chunks.
    pub(super) id: u64,
}

impl Pass<'_> {
    /// A new pass's [`Pass::id`].
    pub(super) fn next_id() -> u64 {
        static PASSES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        PASSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Adds the chunk's rows (batch positions `positions`) into `partial`.
    pub(super) fn run(&self, batch: &Batch, positions: Range<u32>, partial: &mut [f64]) {
        SCRATCH.with_borrow_mut(|scratch| {
            dispatch!(
                self.simd,
                // SAFETY: the CPU has AVX-512F, AVX2 and FMA (the level is available).
                avx512 => unsafe { self.run_avx512(batch, positions, partial, scratch) },
                // SAFETY: the CPU has AVX2 and FMA (the level is available).
                avx2 => unsafe { self.run_avx2(batch, positions, partial, scratch) },
                portable => self.run_portable(batch, positions, partial, scratch),
            )
        })
    }

    // Everything the hot loop calls is `#[inline(always)]` and free of closures (a closure
    // is a function of its own, compiled without these target features).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_avx2(
        &self,
        batch: &Batch,
        positions: Range<u32>,
        partial: &mut [f64],
        scratch: &mut Scratch,
    ) {
        self.run_generic::<true, false>(batch, positions, partial, scratch)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn run_avx512(
        &self,
        batch: &Batch,
        positions: Range<u32>,
        partial: &mut [f64],
        scratch: &mut Scratch,
    ) {
        self.run_generic::<true, true>(batch, positions, partial, scratch)
    }

    pub(super) fn run_portable(
        &self,
        batch: &Batch,
        positions: Range<u32>,
        partial: &mut [f64],
        scratch: &mut Scratch,
    ) {
        self.run_generic::<false, false>(batch, positions, partial, scratch)
    }

    /// The fused loop, a tile of rows at a time: (1) z of every row of the tile (k dot
    /// products, eight rows at a time for one output; the rows come from memory once, asked
    /// for a few kilobytes ahead), (2) δ of every row, vectorized across rows, (3) Σ δ·x
    /// from the same rows, now in cache, into f32 sums moved into f64 once per tile.
    /// `FMA`: the CPU has AVX2 and FMA, so fused multiply-adds (one rounding) and the
    /// kernels of `avx2` are used; `WIDE`: it has AVX-512F too, and those of `avx512`.
    #[inline(always)]
    pub(super) fn run_generic<const FMA: bool, const WIDE: bool>(
        &self,
        batch: &Batch,
        positions: Range<u32>,
        partial: &mut [f64],
        scratch: &mut Scratch,
    ) {
        let d = self.data.features();
        let ahead = PREFETCH_BYTES.div_ceil(4 * d);
        let window = self.offset..self.offset + self.data.rows();
        match batch.order {
            None => {
                // In order, position p is row p: the positions within the window.
                let start = (positions.start as usize).max(window.start);
                let end = (positions.end as usize).min(window.end);
                if start >= end {
                    return;
                }
                let rows = InOrder {
                    start: start - self.offset,
                    len: end - start,
                    ahead,
                };
                self.tiles_for::<FMA, WIDE, _>(rows, partial, scratch)
            }
            Some(order) => {
                // Each position's row once (a permutation costs a few dozen integer
                // operations, sixteen positions at a time), kept for the tile passes: the
                // rows of the window, local.
                scratch.rows.clear();
                order.apply_all(positions, &mut scratch.rows);
                scratch.rows.retain(|i| window.contains(i));
                for i in &mut scratch.rows {
                    *i -= self.offset;
                }
                let rows = std::mem::take(&mut scratch.rows);
                let listed = Listed {
                    rows: &rows,
                    ahead,
                    y: self.data.y(),
                };
                self.tiles_for::<FMA, WIDE, _>(listed, partial, scratch);
                scratch.rows = rows;
            }
        }
    }

    /// [`Self::tiles`] with k known at compile time when it is 1 (linear, logistic);
    /// [`Self::product_tiles`] from [`PRODUCT_CLASSES`] classes on.
    #[inline(always)]
    pub(super) fn tiles_for<const FMA: bool, const WIDE: bool, R: RowOrder>(
        &self,
        rows: R,
        partial: &mut [f64],
        s: &mut Scratch,
    ) {
        let k = self.objective.outputs();
        if k == 1 {
            self.tiles::<FMA, WIDE, true, R>(rows, partial, s)
        } else if k >= PRODUCT_CLASSES {
            self.product_tiles::<FMA, R>(rows, partial, s)
        } else {
            self.tiles::<FMA, WIDE, false, R>(rows, partial, s)
        }
    }

    /// Many classes, a tile of rows at a time as two matrix products, so that X is read
    /// once and the arithmetic runs at the machine's multiply-add rate: Z = X_t·W + b,
    /// then δ and ℓ of every row, then G += Δᵀ·X_t and Σ δ into f32 sums moved into f64
    /// every [`PRODUCT_FLUSH_TILES`] tiles. Rows that are not consecutive in X are copied
    /// together first. The products' blocking depends only on the shapes, so reruns give
    /// the same bits.
    #[inline(always)]
    pub(super) fn product_tiles<const FMA: bool, R: RowOrder>(
        &self,
        rows: R,
        partial: &mut [f64],
        s: &mut Scratch,
    ) {
        let d = self.data.features();
        let k = self.objective.outputs();
        let x = self.data.x();
        let (wt, bias) = self.wt.split_at(d * k);
        let tile = PRODUCT_TILE_ROWS;
        s.sized(tile, d, k);
        let consecutive = rows.consecutive().is_some();
        if !consecutive {
            s.tile_x.resize(tile * d, 0.0);
        }
        let Scratch {
            starts,
            z,
            labels,
            losses,
            weights,
            held_weights,
            predictions,
            sums,
            bias_sums,
            tile_x,
            products,
            ..
        } = s;
        let plain = self.weights.plain();
        let mut totals = Totals::default();
        // W is stored a class to a row (k×d): seen as d×k.
        let w = View {
            data: wt,
            row: 1,
            col: d,
        };
        products.start(on_tiles(self.simd, k), self.id, &w, (d, k));
        let len = rows.len();
        for (t, first) in (0..len).step_by(tile).enumerate() {
            let count = tile.min(len - first);
            let starts = &mut starts[..count];
            let labels = self.locate(&rows, first, starts, labels, weights, held_weights);
            let xt: &[f32] = if consecutive {
                &x[starts[0]..starts[0] + count * d]
            } else {
                for (row, &start) in tile_x.chunks_exact_mut(d).zip(starts.iter()) {
                    row.copy_from_slice(&x[start..start + d]);
                }
                &tile_x[..count * d]
            };
            let xv = View {
                data: xt,
                row: d,
                col: 1,
            };
            let zt = &mut z[..count * k];
            products.forward(&xv, &w, (count, d, k), zt);
            for zr in zt.chunks_exact_mut(k) {
                for (v, b) in zr.iter_mut().zip(bias) {
                    *v += b;
                }
            }
            if self.with_metrics {
                for (p, zr) in predictions.iter_mut().zip(zt.chunks_exact(k)) {
                    *p = predicted(zr) as f32;
                }
            }
            rows_loss_and_delta::<FMA>(
                &self.objective,
                zt,
                labels,
                &mut losses[..count],
                self.with_metrics,
            );
            if self.with_gradient {
                if !plain {
                    for (zr, &wr) in zt.chunks_exact_mut(k).zip(weights.iter()) {
                        zr.iter_mut().for_each(|v| *v *= wr);
                    }
                }
                // Δᵀ is k×count: row c of it is column c of Δ.
                let deltas = View {
                    data: zt,
                    row: 1,
                    col: k,
                };
                products.backward(&deltas, &xv, (k, count, d), sums);
                for zr in zt.chunks_exact(k) {
                    for (b, v) in bias_sums.iter_mut().zip(zr) {
                        *b += v;
                    }
                }
            }
            totals.add(self, labels, weights, held_weights, losses, predictions);
            if (t + 1) % PRODUCT_FLUSH_TILES == 0 {
                flush(sums, bias_sums, partial);
            }
        }
        flush(sums, bias_sums, partial);
        totals.add_to(partial, (d + 1) * k);
    }

    /// The three passes over each tile of `rows`. `ONE`: k = 1.
    #[inline(always)]
    pub(super) fn tiles<const FMA: bool, const WIDE: bool, const ONE: bool, R: RowOrder>(
        &self,
        rows: R,
        partial: &mut [f64],
        s: &mut Scratch,
    ) {
        let d = self.data.features();
        let k = if ONE { 1 } else { self.objective.outputs() };
        let x = self.data.x();
        let (wt, bias) = self.wt.split_at(d * k);
        let tile = tile_rows(d);
        s.sized(tile, d, k);
        let (starts, z, labels, losses, weights, held_weights) = (
            &mut s.starts[..tile],
            &mut s.z[..tile * k],
            &mut s.labels[..tile],
            &mut s.losses[..tile],
            &mut s.weights[..tile],
            &mut s.held_weights[..tile],
        );
        let predictions = &mut s.predictions[..tile];
        let (sums, bias_sums) = (&mut s.sums[..d * k], &mut s.bias_sums[..k]);
        let plain = self.weights.plain();
        let mut totals = Totals::default();
        let len = rows.len();
        for (t, first) in (0..len).step_by(tile).enumerate() {
            let count = tile.min(len - first);
            let starts = &mut starts[..count];
            let labels = self.locate(&rows, first, starts, labels, weights, held_weights);
            // (1) z = x·W + b, row-major in `z` (k per row).
            let together = if ONE {
                tile_dots::<FMA, WIDE, R>(&rows, first, starts, x, wt, bias[0], z)
            } else {
                0
            };
            for r in together..count {
                rows.prefetch(x, d, first + r..first + r + 1);
                let xr = &x[starts[r]..starts[r] + d];
                for c in 0..k {
                    z[r * k + c] = bias[c] + dot::<FMA>(xr, &wt[c * d..(c + 1) * d]);
                }
            }
            if self.with_metrics {
                for (r, p) in predictions[..count].iter_mut().enumerate() {
                    *p = predicted(&z[r * k..(r + 1) * k]) as f32;
                }
            }
            // (2) z becomes δ, and the loss of each row.
            rows_loss_and_delta::<FMA>(
                &self.objective,
                &mut z[..count * k],
                labels,
                &mut losses[..count],
                self.with_metrics,
            );
            // (3) Σ w δ·x and Σ w δ, from the rows now in cache, asking for the rows a
            // tile further on meanwhile, so that memory stays busy while this pass computes.
            if ONE {
                rows.prefetch(x, d, first + tile..first + tile + count);
                if self.with_gradient {
                    if !plain {
                        for (zr, w) in z[..count].iter_mut().zip(&weights[..count]) {
                            *zr *= w;
                        }
                    }
                    bias_sums[0] += lane_sum(&z[..count]);
                    tile_gradient::<FMA, WIDE>(x, starts, &z[..count], sums);
                }
            } else if !self.with_gradient {
                rows.prefetch(x, d, first + tile..first + tile + count);
            } else {
                for r in 0..count {
                    rows.prefetch(x, d, first + tile + r..first + tile + r + 1);
                    let xr = &x[starts[r]..starts[r] + d];
                    let w = if plain { 1.0 } else { weights[r] };
                    if w == 0.0 {
                        continue;
                    }
                    for c in 0..k {
                        let delta = if plain {
                            z[r * k + c]
                        } else {
                            w * z[r * k + c]
                        };
                        axpy::<FMA>(delta, xr, &mut sums[c * d..(c + 1) * d]);
                        bias_sums[c] += delta;
                    }
                }
            }
            totals.add(self, labels, weights, held_weights, losses, predictions);
            if (t + 1) % FLUSH_TILES == 0 {
                flush(sums, bias_sums, partial);
            }
        }
        flush(sums, bias_sums, partial);
        totals.add_to(partial, (d + 1) * k);
    }

    /// Where each row of the tile at positions `first..first + starts.len()` begins in X,
    /// its label and its weights; returns the labels (read in place where the rows are
    /// consecutive and weigh 1).
    #[inline(always)]
    pub(super) fn locate<'a, R: RowOrder>(
        &'a self,
        rows: &R,
        first: usize,
        starts: &mut [usize],
        labels: &'a mut [f32],
        weights: &mut [f32],
        held_weights: &mut [f32],
    ) -> &'a [f32] {
        let d = self.data.features();
        let y = self.data.y();
        let count = starts.len();
        match rows.consecutive() {
            Some(row0) if self.weights.plain() => {
                let i = row0 + first;
                for (r, start) in starts.iter_mut().enumerate() {
                    *start = (i + r) * d;
                }
                &y[i..i + count]
            }
            _ => {
                for (r, start) in starts.iter_mut().enumerate() {
                    let i = rows.row(first + r);
                    *start = i * d;
                    labels[r] = y[i];
                    if self.with_held_out {
                        (weights[r], held_weights[r]) = self.weights.and_held_out(i, y[i]);
                    } else if !self.weights.plain() {
                        weights[r] = self.weights.of(i, y[i]);
                    }
                }
                &labels[..count]
            }
        }
    }
}

/// A chunk's metric sums (Σwℓ, Σw, Σw[correct], Σwy, Σwy²) and its held-out rows', as its
/// tiles add to them.
#[derive(Default)]
pub(super) struct Totals {
    metrics: [f64; METRICS],
    held_out: [f64; METRICS],
}

impl Totals {
    /// Adds a tile's rows, as many as `labels` has (from the start of the other slices):
    /// Σw alone unless the pass wants metrics, and the held-out rows' sums when it does.
    #[inline(always)]
    pub(super) fn add(
        &mut self,
        pass: &Pass,
        labels: &[f32],
        weights: &[f32],
        held_weights: &[f32],
        losses: &[f32],
        predictions: &[f32],
    ) {
        let plain = pass.weights.plain();
        let count = labels.len();
        if plain && !pass.with_metrics {
            // Σw of unit weights, without a chain of dependent adds per row.
            self.metrics[1] += count as f64;
        } else if !pass.with_metrics {
            for &w in &weights[..count] {
                self.metrics[1] += f64::from(w);
            }
        } else {
            for r in 0..count {
                let w = if plain { 1.0 } else { weights[r] };
                add_metrics(&mut self.metrics, w, losses[r], predictions[r], labels[r]);
            }
            if pass.with_held_out {
                for r in 0..count {
                    let w = held_weights[r];
                    add_metrics(&mut self.held_out, w, losses[r], predictions[r], labels[r]);
                }
            }
        }
    }

    /// Adds the sums to a chunk's partial, after its `entries` gradient entries.
    #[inline(always)]
    pub(super) fn add_to(&self, partial: &mut [f64], entries: usize) {
        for (p, m) in partial[entries..]
            .iter_mut()
            .zip(self.metrics.iter().chain(&self.held_out))
        {
            *p += m;
        }
    }
}

/// Adds a row of weight `w` to the metric sums Σwℓ, Σw, Σw[correct], Σwy, Σwy².
#[inline(always)]
pub(super) fn add_metrics(
    sums: &mut [f64; METRICS],
    w: f32,
    loss: f32,
    predicted: f32,
    label: f32,
) {
    let (w, label) = (f64::from(w), f64::from(label));
    let correct = f64::from(predicted == label.round() as f32);
    sums[0] += w * f64::from(loss);
    sums[1] += w;
    sums[2] += w * correct;
    sums[3] += w * label;
    sums[4] += w * label * label;
}

/// z of a tile's rows for one output (row r at `x[starts[r]..]`, `w` holding d weights),
/// eight rows at a time where the CPU has AVX2 and FMA; returns how many rows it computed.
#[inline(always)]
pub(super) fn tile_dots<const FMA: bool, const WIDE: bool, R: RowOrder>(
    rows: &R,
    first: usize,
    starts: &[usize],
    x: &[f32],
    w: &[f32],
    b: f32,
    z: &mut [f32],
) -> usize {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        let eights = starts.chunks_exact(8);
        let done = starts.len() - eights.remainder().len();
        for (e, eight) in eights.enumerate() {
            rows.prefetch(x, w.len(), first + 8 * e..first + 8 * e + 8);
            let eight: &[usize; 8] = eight.try_into().expect("eight rows");
            let dots = if WIDE {
                // SAFETY: `WIDE` is set only by `run_avx512`, on CPUs with AVX-512F too.
                unsafe { avx512::dot8(x, eight, w, b) }
            } else {
                // SAFETY: `FMA` is set only by `run_avx2` and `run_avx512`, on CPUs with
                // AVX2 and FMA.
                unsafe { avx2::dot8(x, eight, w, b) }
            };
            z[8 * e..8 * e + 8].copy_from_slice(&dots);
        }
        return done;
    }
    let _ = (rows, first, starts, x, w, b, z);
    0
}

/// The class predicted from z: z > 0 for one output, else the first largest.
#[inline(always)]
pub(super) fn predicted(z: &[f32]) -> usize {
    if z.len() == 1 {
        return usize::from(z[0] > 0.0);
    }
    let mut best = 0;
    for (c, &v) in z.iter().enumerate() {
        if v > z[best] {
            best = c;
        }
    }
    best
}

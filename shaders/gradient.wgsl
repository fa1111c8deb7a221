// The fused one-pass gradient. Each workgroup copies a tile of rows into workgroup memory
// once, computes z = x.W + b, the loss and delta of every row from that copy, and adds
// x^T delta into per-invocation accumulators. Every row counts with its weight w (sample
// weight times class weight, 0 for rows the pass does not use). At the end it writes one
// partial per workgroup (P numbers: the weighted gradient sums, then the sums P_LOSS ..
// P_SUM_Y2 of common.wgsl, then those of the held-out rows, which only a pass over
// ROWS_TRAINING_AND_HELD_OUT adds up); `reduce_partials` adds the partials in a fixed
// order. No float atomics, so the bits repeat run to run.
//
// Rows are DP = D rounded up to a multiple of 4 floats (zero padded), so every row starts
// on a 16-byte boundary and moves as Q = DP / 4 vec4s.
//
// STAGE = 1 copies each tile into workgroup memory, so X is read from device memory exactly
// once however small the caches are (GPUs). STAGE = 0 reads rows in place twice, the second
// time from cache: CPU-type adapters such as lavapipe, where workgroup memory is ordinary
// memory and the copy is pure cost.
//
// Rows wider than a staged tile can hold go in column blocks of QB quads (BLOCKS of them; one
// block, QB = Q, when whole rows fit): z is summed block by block, each block staged in
// turn; then the deltas; then x^T delta block by block, from the last block, which is still
// staged, back to the first, restaged (from cache, where the tile's rows fit in it). Any d
// up to the binding limits works, on every tuning.
//
// A tile goes through three phases, each shared by the whole workgroup: z of every (row,
// block of KB classes) pair, so that no invocation computes more than KB·Q products of a
// row; then each row's loss and delta from its z; then x^T delta. Work per invocation is
// thus bounded by the tile, not by the shape: some drivers (Mesa's llvmpipe) end every
// loop of an invocation after a fixed total of iterations (the device's loop limit, which
// `GpuContext::loop_limit` measures), and the host sizes tiles and slices to stay under it.
//
// With more classes than one class tile (K > KT), every class tile would compute every z
// and softmax again. MODE splits the pass instead, per slice: MODE_DELTAS_OUT (one class
// tile) computes each row's w * delta once, writes it to `row_deltas` and adds the loss and
// metric sums; then MODE_DELTAS_IN (every class tile) reads its classes' deltas back and
// accumulates x^T delta. MODE_FUSED does all of it in one dispatch. Where the products are
// tiled (products.wgsl), MODE_Z_IN takes the place of MODE_DELTAS_OUT: it reads each row's
// z from `row_deltas` (`logits_tiles` wrote it) rather than computing it, and writes
// w * delta over it.
//
// Dispatch: (step.groups, class tiles, 1) per shard and slice. Class tile y accumulates
// x^T delta for classes y*KT .. y*KT + KT - 1; with K <= KT there is one tile and X is read
// once. A slice is a range of the step's tiles (`slice`): the first writes the partials,
// the others add to them, in order, so that each workgroup of a dispatch handles at most
// SLICE_TILES tiles.

@group(0) @binding(0) var<uniform> step: Step;
@group(1) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(1) @binding(1) var<storage, read> y: array<f32>;
@group(1) @binding(2) var<uniform> shard: Shard;
@group(1) @binding(3) var<storage, read> w: array<f32>;  // sample weights, when setup.weighted
@group(2) @binding(0) var<storage, read> params: array<f32>;
@group(2) @binding(1) var<storage, read_write> partials: array<f32>;
@group(2) @binding(2) var<uniform> setup: Setup;
@group(2) @binding(3) var<storage, read> class_w: array<f32>;  // per class (labels 0, 1 for logistic)
// w * delta of the slice's rows, K per row, tile by tile from the slice's first (the split
// modes only).
@group(2) @binding(4) var<storage, read_write> row_deltas: array<f32>;
@group(3) @binding(0) var<uniform> slice: Slice;

var<workgroup> xs: array<vec4<f32>, XS_LEN>;  // TILE_ROWS * QB when STAGE = 1
var<workgroup> deltas: array<f32, TILE_ROWS * K>;  // z, then w * delta
const HELD_ROW: u32 = 0x80000000u;
// Shard-local row; that row | HELD_ROW for a held-out row whose sums the pass adds; NO_ROW.
var<workgroup> tile_rows: array<u32, TILE_ROWS>;
// W as quads, ws[q * K + c] = W[4q .. 4q + 3, c], when W_CACHED = 1 (else length 1).
var<workgroup> ws: array<vec4<f32>, WS_LEN>;

// Quad q of tile row r, whose shard-local row is `local` (q in the staged block when
// STAGE = 1).
fn tile_x(r: u32, q: u32, local: u32) -> vec4<f32> {
    if (STAGE == 1u) {
        return xs[r * QB + q % QB];
    }
    return x[local * Q + q];
}

// Copies quads qa .. qa + QB (the row's end at most) of the tile's `count` rows, which
// start at position p0, into xs. Rows the pass skips are copied too (their deltas are 0,
// and x is finite); a shuffled batch's rows of other shards read as 0.
fn stage_block(t: u32, qa: u32, count: u32, p0: u32, shuffled: bool) {
    let width = min(QB, Q - qa);
    for (var e = t; e < count * width; e += WG) {
        let r = e / width;
        let q = e - r * width;
        var v = vec4<f32>(0.0);
        if (shuffled) {
            let local = tile_rows[r];
            if (local != NO_ROW) {
                v = x[local * Q + qa + q];
            }
        } else {
            v = x[(p0 - shard.row_begin + r) * Q + qa + q];
        }
        xs[r * QB + q] = v;
    }
}

// W[4q .. 4q + 3, c], zero past the last feature (the padding of the rows).
fn w_quad(q: u32, c: u32) -> vec4<f32> {
    if (W_CACHED == 1u) {
        return ws[q * K + c];
    }
    return w_quad_from_params(q, c);
}

fn w_quad_from_params(q: u32, c: u32) -> vec4<f32> {
    var w = vec4<f32>(0.0);
    for (var i = 0u; i < 4u; i++) {
        let j = 4u * q + i;
        if (j < D) {
            w[i] = params[j * K + c];
        }
    }
    return w;
}

// What one row adds besides w * delta: w * loss, w, w * [correct], w * y, w * y^2.
struct RowSums {
    loss: f32,
    loss_comp: f32,  // Kahan's compensation of `loss`: the sum is loss − loss_comp
    weight: f32,
    correct: f32,
    y: f32,
    y2: f32,
}

// The start of z for tile row r and class c before column quad qa: b, then the sum of the
// blocks before.
fn z_start(r: u32, c: u32, qa: u32) -> f32 {
    if (qa == 0u) {
        return params[D * K + c];
    }
    return deltas[r * K + c];
}

// z = x.W + b of tile row r (shard-local row `local`) for classes c0 .. c0 + KB - 1, over
// the column quads of the block from qa, added to what the blocks before left in `deltas`
// (classes past K are computed for the last one and not stored). Blocks of four or more
// classes (KB a multiple of 4) go four to a vec4, so that the inner loop turns a quarter as
// often; each class's sum is added in the same order either way.
fn logits(r: u32, local: u32, c0: u32, qa: u32) {
    let qe = min(qa + QB, Q);
    if (KB < 4u) {
        var z: array<f32, KB>;
        for (var c = 0u; c < KB; c++) {
            z[c] = z_start(r, min(c0 + c, K - 1u), qa);
        }
        for (var q = qa; q < qe; q++) {
            let xv = tile_x(r, q, local);
            for (var c = 0u; c < KB; c++) {
                z[c] += dot(xv, w_quad(q, min(c0 + c, K - 1u)));
            }
        }
        for (var c = 0u; c < KB; c++) {
            if (c0 + c < K) {
                deltas[r * K + c0 + c] = z[c];
            }
        }
        return;
    }
    var z: array<vec4<f32>, KB4>;
    for (var b = 0u; b < KB4; b++) {
        let c = c0 + 4u * b;
        z[b] = vec4<f32>(
            z_start(r, min(c, K - 1u), qa),
            z_start(r, min(c + 1u, K - 1u), qa),
            z_start(r, min(c + 2u, K - 1u), qa),
            z_start(r, min(c + 3u, K - 1u), qa),
        );
    }
    for (var q = qa; q < qe; q++) {
        let xv = tile_x(r, q, local);
        for (var b = 0u; b < KB4; b++) {
            let c = c0 + 4u * b;
            z[b] += vec4<f32>(
                dot(xv, w_quad(q, min(c, K - 1u))),
                dot(xv, w_quad(q, min(c + 1u, K - 1u))),
                dot(xv, w_quad(q, min(c + 2u, K - 1u))),
                dot(xv, w_quad(q, min(c + 3u, K - 1u))),
            );
        }
    }
    for (var c = 0u; c < KB; c++) {
        if (c0 + c < K) {
            deltas[r * K + c0 + c] = z[c / 4u][c % 4u];
        }
    }
}

// Loss and delta of tile row r (shard-local row `local`) from its z in `deltas`, all
// times the row's weight. A `training` row's w * delta replaces its z; any other row's
// delta is 0. The row's sums are added to `sums`.
fn row_delta(r: u32, local: u32, training: bool, sums: ptr<function, RowSums>) {
    let label = y[local];
    var weight = 1.0;
    if (setup.weighted == 1u) {
        weight = w[local];
    }
    if (MODEL != MODEL_LINEAR) {
        weight *= class_w[min(u32(label), CLASS_SLOTS - 1u)];
    }
    let zr = r * K;
    var loss = 0.0;
    var correct = 0.0;
    if (MODEL == MODEL_SOFTMAX) {
        var m = deltas[zr];
        var best = 0u;
        for (var c = 1u; c < K; c++) {
            if (deltas[zr + c] > m) {
                m = deltas[zr + c];
                best = c;
            }
        }
        var rest = 0.0;
        for (var c = 0u; c < K; c++) {
            if (c != best) {
                rest += exp(deltas[zr + c] - m);
            }
        }
        let s = 1.0 + rest;
        let yc = u32(label);
        if (LOSS == LOSS_CUSTOM) {
            // Sum of the class terms; the softmax Jacobian turns their dl/dp into delta.
            var gp = 0.0;
            for (var c = 0u; c < K; c++) {
                let p = exp(deltas[zr + c] - m) / s;
                let lg = custom_loss(p, select(0.0, 1.0, c == yc));
                loss += lg.x;
                gp += lg.y * p;
            }
            for (var c = 0u; c < K; c++) {
                // dl/dp again rather than kept in a K-long private array.
                let g = custom_loss(exp(deltas[zr + c] - m) / s, select(0.0, 1.0, c == yc)).y;
                let d = weight * exp(deltas[zr + c] - m) / s * (g - gp);
                deltas[zr + c] = select(0.0, d, training);
            }
        } else {
            loss = softmax_loss(m, rest, deltas[zr + min(yc, K - 1u)]);
            for (var c = 0u; c < K; c++) {
                let d = weight * softmax_delta(deltas[zr + c], m, rest, c == yc, c == best);
                deltas[zr + c] = select(0.0, d, training);
            }
        }
        correct = select(0.0, 1.0, best == yc);
    } else {
        let z = deltas[zr];
        let ld = loss_delta_1(z, label);
        deltas[zr] = select(0.0, weight * ld.y, training);
        loss = ld.x;
        // Logistic: predict 1 when z > 0 (sigma > 1/2), against the label rounded.
        correct = select(0.0, 1.0, (z > 0.0) == (label >= 0.5));
    }
    let v = weight * loss - (*sums).loss_comp;
    let sum = (*sums).loss + v;
    (*sums).loss_comp = (sum - (*sums).loss) - v;
    (*sums).loss = sum;
    (*sums).weight += weight;
    (*sums).correct += weight * correct;
    (*sums).y += weight * label;
    (*sums).y2 += weight * label * label;
}

// What partial entry e becomes: the slice's sum, plus what the slices before added.
fn added(e: u32, sum: f32) -> f32 {
    if (slice.accumulate == 1u) {
        return partials[e] + sum;
    }
    return sum;
}

@compute @workgroup_size(WG)
fn gradient_partials(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let group = wid.x;
    let class0 = wid.y * KT;
    let shuffled = step.shuffled != 0u;
    let span = shard_positions(step, shard);
    let first = span.x;
    let last = span.y;
    let tiles = (last - first + TILE_ROWS - 1u) / TILE_ROWS;
    if (W_CACHED == 1u) {
        for (var i = t; i < Q * K; i += WG) {
            ws[i] = w_quad_from_params(i / K, i % K);
        }
        workgroupBarrier();
    }

    // Invocation t accumulates the quads of columns q0, q0 + COL_STRIDE, ... over tile
    // rows g, g + ROW_GROUPS, ...
    let q0 = t % COL_STRIDE;
    let g = t / COL_STRIDE;
    // Kahan's compensated sums: acc − comp is the sum to about an ulp of it, however many
    // rows the invocation adds (a plain f32 sum over thousands of rows loses ~1e-4 of the
    // gradient to rounding near the optimum, where it is a difference of large terms).
    var acc: array<vec4<f32>, COLS * KT>;
    var comp: array<vec4<f32>, COLS * KT>;
    // The bias gradient is the sum of the deltas: invocations of column quad 0 add them
    // up for the class tile's classes beside their x^T delta.
    var bias: array<f32, KT>;
    var bias_comp: array<f32, KT>;
    var sums = RowSums(0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    var held = RowSums(0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    // A full batch in file order is all that asks for the held-out rows' sums.
    let held_sums = step.rows == ROWS_TRAINING_AND_HELD_OUT && !shuffled;

    for (var tile = slice.first_tile + group; tile < min(tiles, slice.end_tile); tile += step.groups) {
        let p0 = first + tile * TILE_ROWS;
        let count = min(TILE_ROWS, last - p0);
        for (var r = t; r < TILE_ROWS; r += WG) {
            var local = NO_ROW;
            if (r < count) {
                if (shuffled) {
                    let row = batch_row(step, p0 + r);
                    if (row >= shard.row_begin && row < shard.row_end && uses_row(step, setup, row)) {
                        local = row - shard.row_begin;
                    }
                } else if (uses_row(step, setup, p0 + r)) {
                    local = p0 + r - shard.row_begin;
                } else if (held_sums) {
                    local = (p0 + r - shard.row_begin) | HELD_ROW;
                }
            }
            tile_rows[r] = local;
        }
        workgroupBarrier();
        // Where the tile's deltas sit in `row_deltas` (the split modes).
        let kept = (tile - slice.first_tile) * TILE_ROWS * K;
        if (MODE == MODE_Z_IN) {
            for (var e = t; e < count * K; e += WG) {
                deltas[e] = row_deltas[kept + e];
            }
            workgroupBarrier();
        }
        if (MODE == MODE_DELTAS_IN) {
            for (var e = t; e < count * KT; e += WG) {
                let r = e / KT;
                let cls = class0 + (e - r * KT);
                if (cls < K) {
                    deltas[r * K + cls] = row_deltas[kept + r * K + cls];
                }
            }
            workgroupBarrier();
        }
        for (var qa = 0u; qa < Q && MODE != MODE_DELTAS_IN && MODE != MODE_Z_IN; qa += QB) {
            if (STAGE == 1u) {
                stage_block(t, qa, count, p0, shuffled);
                workgroupBarrier();
            }
            for (var e = t; e < count * CLASS_BLOCKS; e += WG) {
                let r = e / CLASS_BLOCKS;
                let local = tile_rows[r];
                if (local != NO_ROW) {
                    logits(r, local & ~HELD_ROW, (e - r * CLASS_BLOCKS) * KB, qa);
                }
            }
            workgroupBarrier();
        }

        for (var r = t; r < count && MODE != MODE_DELTAS_IN; r += WG) {
            let local = tile_rows[r];
            if (local == NO_ROW) {
                for (var c = 0u; c < K; c++) {
                    deltas[r * K + c] = 0.0;
                }
            } else if ((local & HELD_ROW) != 0u) {
                // A held-out row: its sums, as a pass over the held-out rows adds them,
                // and no gradient.
                row_delta(r, local & ~HELD_ROW, false, &held);
            } else {
                row_delta(r, local, true, &sums);
            }
        }
        workgroupBarrier();
        if (MODE == MODE_DELTAS_OUT || MODE == MODE_Z_IN) {
            for (var e = t; e < count * K; e += WG) {
                row_deltas[kept + e] = deltas[e];
            }
            // The next tile overwrites deltas.
            workgroupBarrier();
            continue;
        }

        // The last block is still staged (unless the deltas were read back); the others
        // are staged again, back to the first.
        for (var b = BLOCKS; b > 0u; b--) {
            let qa = (b - 1u) * QB;
            if (STAGE == 1u && (b < BLOCKS || MODE == MODE_DELTAS_IN)) {
                workgroupBarrier();
                stage_block(t, qa, count, p0, shuffled);
                workgroupBarrier();
            }
            if (g < ROW_GROUPS) {
                // The invocation's column quads in this block: q0 + m·COL_STRIDE in qa .. qe.
                // With one block (BLOCKS a constant 1) this is every m below COLS.
                let qe = min(qa + QB, Q);
                var m0 = 0u;
                var m1 = COLS;
                if (BLOCKS > 1u) {
                    if (qa > q0) {
                        m0 = (qa - q0 + COL_STRIDE - 1u) / COL_STRIDE;
                    }
                    m1 = min(COLS, (qe - min(q0, qe) + COL_STRIDE - 1u) / COL_STRIDE);
                }
                for (var m = m0; m < m1; m++) {
                    let q = q0 + m * COL_STRIDE;
                    if (q >= qe) {
                        continue;
                    }
                    for (var r = g; r < count; r += ROW_GROUPS) {
                        var local = p0 + r - shard.row_begin;
                        if (shuffled) {
                            local = tile_rows[r];
                            if (local == NO_ROW) {
                                continue;
                            }
                        }
                        // Rows the pass skips have zero deltas: x must still be finite.
                        let xv = tile_x(r, q, local);
                        for (var c = 0u; c < KT; c++) {
                            let cls = min(class0 + c, K - 1u);
                            let a = m * KT + c;
                            let v = deltas[r * K + cls] * xv - comp[a];
                            let sum = acc[a] + v;
                            comp[a] = (sum - acc[a]) - v;
                            acc[a] = sum;
                        }
                        if (q == 0u) {
                            for (var c = 0u; c < KT; c++) {
                                let v = deltas[r * K + min(class0 + c, K - 1u)] - bias_comp[c];
                                let sum = bias[c] + v;
                                bias_comp[c] = (sum - bias[c]) - v;
                                bias[c] = sum;
                            }
                        }
                    }
                }
            }
        }
        // The next tile overwrites xs and deltas.
        workgroupBarrier();
    }

    let out = (shard.index * step.groups + group) * P;
    // Row groups hold sums over different rows of the same columns: add them in order.
    let writes_gradient = MODE == MODE_FUSED || MODE == MODE_DELTAS_IN;
    for (var m = 0u; m < COLS && writes_gradient; m++) {
        for (var c = 0u; c < KT; c++) {
            for (var i = 0u; i < 4u; i++) {
                red[t] = acc[m * KT + c][i] - comp[m * KT + c][i];
                workgroupBarrier();
                let j = 4u * (q0 + m * COL_STRIDE) + i;
                let cls = class0 + c;
                if (g == 0u && j < D && cls < K) {
                    var sum = red[t];
                    for (var h = 1u; h < ROW_GROUPS; h++) {
                        sum += red[t + h * COL_STRIDE];
                    }
                    partials[out + j * K + cls] = added(out + j * K + cls, sum);
                }
                workgroupBarrier();
            }
        }
    }
    // The bias sums of column quad 0's row groups (invocations 0, COL_STRIDE, ...).
    for (var c = 0u; c < KT && writes_gradient; c++) {
        red[t] = bias[c] - bias_comp[c];
        workgroupBarrier();
        let cls = class0 + c;
        if (t == 0u && cls < K) {
            var sum = red[0];
            for (var h = 1u; h < ROW_GROUPS; h++) {
                sum += red[h * COL_STRIDE];
            }
            partials[out + D * K + cls] = added(out + D * K + cls, sum);
        }
        workgroupBarrier();
    }
    // Class tile 0 also writes the loss and the metric sums.
    if (wid.y == 0u && MODE != MODE_DELTAS_IN) {
        var extra = array<f32, 10>(
            sums.loss - sums.loss_comp, sums.weight, sums.correct, sums.y, sums.y2,
            held.loss - held.loss_comp, held.weight, held.correct, held.y, held.y2,
        );
        for (var i = 0u; i < 10u; i++) {
            let sum = workgroup_sum(t, extra[i]);
            if (t == 0u) {
                partials[out + P_LOSS + i] = added(out + P_LOSS + i, sum);
            }
        }
    }
}

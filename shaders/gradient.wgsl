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
// Dispatch: (step.groups, class tiles, 1) per shard. Class tile y accumulates x^T delta for
// classes y*KT .. y*KT + KT - 1; with K <= KT there is one tile and X is read once.

@group(0) @binding(0) var<uniform> step: Step;
@group(1) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(1) @binding(1) var<storage, read> y: array<f32>;
@group(1) @binding(2) var<uniform> shard: Shard;
@group(1) @binding(3) var<storage, read> w: array<f32>;  // sample weights, when setup.weighted
@group(2) @binding(0) var<storage, read> params: array<f32>;
@group(2) @binding(1) var<storage, read_write> partials: array<f32>;
@group(2) @binding(2) var<uniform> setup: Setup;
@group(2) @binding(3) var<storage, read> class_w: array<f32>;  // per class (labels 0, 1 for logistic)

var<workgroup> xs: array<vec4<f32>, XS_LEN>;  // TILE_ROWS * Q when STAGE = 1
var<workgroup> deltas: array<f32, TILE_ROWS * K>;  // w * delta
var<workgroup> tile_rows: array<u32, TILE_ROWS>;  // shard-local row, or NO_ROW
var<workgroup> red: array<f32, WG>;
// W as quads, ws[q * K + c] = W[4q .. 4q + 3, c], when W_CACHED = 1 (else length 1).
var<workgroup> ws: array<vec4<f32>, WS_LEN>;

// Quad q of tile row r, whose shard-local row is `local`.
fn tile_x(r: u32, q: u32, local: u32) -> vec4<f32> {
    if (STAGE == 1u) {
        return xs[r * Q + q];
    }
    return x[local * Q + q];
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
    weight: f32,
    correct: f32,
    y: f32,
    y2: f32,
}

// z, loss and delta of tile row r (shard-local row `local`), all times the row's weight:
// w * delta goes to `deltas` and into `bias` (the bias gradient is the sum of the deltas);
// the row's sums are added to `sums`.
fn row_delta(r: u32, local: u32, bias: ptr<function, array<f32, K>>, sums: ptr<function, RowSums>) {
    var z: array<f32, K>;
    for (var c = 0u; c < K; c++) {
        z[c] = params[D * K + c];
    }
    for (var q = 0u; q < Q; q++) {
        let xv = tile_x(r, q, local);
        for (var c = 0u; c < K; c++) {
            z[c] += dot(xv, w_quad(q, c));
        }
    }
    let label = y[local];
    var weight = 1.0;
    if (setup.weighted == 1u) {
        weight = w[local];
    }
    if (MODEL != MODEL_LINEAR) {
        weight *= class_w[min(u32(label), CLASS_SLOTS - 1u)];
    }
    var loss = 0.0;
    var correct = 0.0;
    if (MODEL == MODEL_SOFTMAX) {
        var m = z[0];
        var best = 0u;
        for (var c = 1u; c < K; c++) {
            if (z[c] > m) {
                m = z[c];
                best = c;
            }
        }
        var s = 0.0;
        for (var c = 0u; c < K; c++) {
            s += exp(z[c] - m);
        }
        let yc = u32(label);
        if (LOSS == LOSS_CUSTOM) {
            // Sum of the class terms; the softmax Jacobian turns their dl/dp into delta.
            var g: array<f32, K>;
            var gp = 0.0;
            for (var c = 0u; c < K; c++) {
                let p = exp(z[c] - m) / s;
                let lg = custom_loss(p, select(0.0, 1.0, c == yc));
                loss += lg.x;
                g[c] = lg.y;
                gp += lg.y * p;
            }
            for (var c = 0u; c < K; c++) {
                let d = weight * exp(z[c] - m) / s * (g[c] - gp);
                deltas[r * K + c] = d;
                (*bias)[c] += d;
            }
        } else {
            for (var c = 0u; c < K; c++) {
                let d = weight * softmax_delta(z[c], m, s, c == yc);
                deltas[r * K + c] = d;
                (*bias)[c] += d;
            }
            loss = softmax_loss(m, s, z[min(yc, K - 1u)]);
        }
        correct = select(0.0, 1.0, best == yc);
    } else {
        let ld = loss_delta_1(z[0], label);
        deltas[r] = weight * ld.y;
        (*bias)[0] += weight * ld.y;
        loss = ld.x;
        // Logistic: predict 1 when z > 0 (sigma > 1/2), against the label rounded.
        correct = select(0.0, 1.0, (z[0] > 0.0) == (label >= 0.5));
    }
    (*sums).loss += weight * loss;
    (*sums).weight += weight;
    (*sums).correct += weight * correct;
    (*sums).y += weight * label;
    (*sums).y2 += weight * label * label;
}

// Adds `value` over the workgroup (a tree in a fixed order); invocation 0 gets the sum.
fn workgroup_sum(t: u32, value: f32) -> f32 {
    red[t] = value;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if (t < half) {
            red[t] += red[t + half];
        }
        workgroupBarrier();
    }
    let sum = red[0];
    workgroupBarrier();
    return sum;
}

@compute @workgroup_size(WG)
fn gradient_partials(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let group = wid.x;
    let class0 = wid.y * KT;
    // A batch in file order visits only this shard's rows; a shuffled batch visits every
    // position and keeps the rows that live in this shard.
    let shuffled = step.shuffled != 0u;
    var first = step.pos_begin;
    var last = step.pos_begin + step.pos_count;
    if (!shuffled) {
        first = max(first, shard.row_begin);
        last = max(first, min(last, shard.row_end));
    }
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
    var acc: array<vec4<f32>, COLS * KT>;
    var bias: array<f32, K>;
    var sums = RowSums(0.0, 0.0, 0.0, 0.0, 0.0);
    var held = RowSums(0.0, 0.0, 0.0, 0.0, 0.0);
    // A full batch in file order is all that asks for the held-out rows' sums.
    let held_sums = step.rows == ROWS_TRAINING_AND_HELD_OUT && !shuffled;

    for (var tile = group; tile < tiles; tile += step.groups) {
        let p0 = first + tile * TILE_ROWS;
        let count = min(TILE_ROWS, last - p0);
        if (shuffled) {
            for (var r = t; r < TILE_ROWS; r += WG) {
                var local = NO_ROW;
                if (r < count) {
                    let row = batch_row(step, p0 + r);
                    if (row >= shard.row_begin && row < shard.row_end && uses_row(step, setup, row)) {
                        local = row - shard.row_begin;
                    }
                }
                tile_rows[r] = local;
            }
            workgroupBarrier();
            if (STAGE == 1u) {
                for (var e = t; e < count * Q; e += WG) {
                    let r = e / Q;
                    let local = tile_rows[r];
                    var v = vec4<f32>(0.0);
                    if (local != NO_ROW) {
                        v = x[local * Q + (e - r * Q)];
                    }
                    xs[e] = v;
                }
            }
        } else if (STAGE == 1u) {
            // `count` whole rows, contiguous in memory: a coalesced copy.
            let base = (p0 - shard.row_begin) * Q;
            for (var e = t; e < count * Q; e += WG) {
                xs[e] = x[base + e];
            }
        }
        workgroupBarrier();

        for (var r = t; r < count; r += WG) {
            var local = p0 + r - shard.row_begin;
            if (shuffled) {
                local = tile_rows[r];
            } else if (!uses_row(step, setup, p0 + r)) {
                local = NO_ROW;
            }
            if (local == NO_ROW) {
                if (held_sums) {
                    // A held-out row: its sums, as a pass over the held-out rows adds
                    // them, and no gradient.
                    var unused: array<f32, K>;
                    row_delta(r, p0 + r - shard.row_begin, &unused, &held);
                }
                for (var c = 0u; c < K; c++) {
                    deltas[r * K + c] = 0.0;
                }
            } else {
                row_delta(r, local, &bias, &sums);
            }
        }
        workgroupBarrier();

        if (g < ROW_GROUPS) {
            for (var m = 0u; m < COLS; m++) {
                let q = q0 + m * COL_STRIDE;
                if (q < Q) {
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
                            acc[m * KT + c] += deltas[r * K + cls] * xv;
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
    for (var m = 0u; m < COLS; m++) {
        for (var c = 0u; c < KT; c++) {
            for (var i = 0u; i < 4u; i++) {
                red[t] = acc[m * KT + c][i];
                workgroupBarrier();
                let j = 4u * (q0 + m * COL_STRIDE) + i;
                let cls = class0 + c;
                if (g == 0u && j < D && cls < K) {
                    var sum = red[t];
                    for (var h = 1u; h < ROW_GROUPS; h++) {
                        sum += red[t + h * COL_STRIDE];
                    }
                    partials[out + j * K + cls] = sum;
                }
                workgroupBarrier();
            }
        }
    }
    // Class tile 0 also writes the bias sums, then the loss and the metric sums.
    if (wid.y == 0u) {
        for (var c = 0u; c < K; c++) {
            let sum = workgroup_sum(t, bias[c]);
            if (t == 0u) {
                partials[out + D * K + c] = sum;
            }
        }
        var extra = array<f32, 10>(
            sums.loss, sums.weight, sums.correct, sums.y, sums.y2,
            held.loss, held.weight, held.correct, held.y, held.y2,
        );
        for (var i = 0u; i < 10u; i++) {
            let sum = workgroup_sum(t, extra[i]);
            if (t == 0u) {
                partials[out + P_LOSS + i] = sum;
            }
        }
    }
}

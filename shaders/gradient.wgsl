// The fused one-pass gradient: each workgroup loads a tile of rows into workgroup memory
// once, computes z = x.W + b, the loss and delta of every row from that tile, and adds
// x^T delta into per-invocation accumulators. At the end it writes one partial
// (P numbers: the gradient sums, then the loss sum) per workgroup; `reduce_partials`
// adds the partials in a fixed order. No float atomics, so the bits repeat run to run.
//
// Dispatch: (step.groups, class tiles, 1) per shard. Class tile y accumulates classes
// y*KT .. y*KT + KT - 1; with K <= KT there is one tile and X is read once.

@group(0) @binding(0) var<uniform> step: Step;
@group(1) @binding(0) var<storage, read> x: array<f32>;
@group(1) @binding(1) var<storage, read> y: array<f32>;
@group(1) @binding(2) var<uniform> shard: Shard;
@group(2) @binding(0) var<storage, read> params: array<f32>;
@group(2) @binding(1) var<storage, read_write> partials: array<f32>;

var<workgroup> xs: array<f32, TILE_ROWS * D>;
var<workgroup> zd: array<f32, TILE_ROWS * K>;  // z of each tile row, then its delta
var<workgroup> tile_rows: array<u32, TILE_ROWS>;  // shard-local row, or NO_ROW
var<workgroup> red: array<f32, WG>;

// z, loss and delta of tile row r (whose shard-local row is `local`); returns the loss.
fn row_delta(r: u32, local: u32) -> f32 {
    let zb = r * K;
    for (var c = 0u; c < K; c++) {
        zd[zb + c] = params[D * K + c];
    }
    let xb = r * D;
    for (var j = 0u; j < D; j++) {
        let xv = xs[xb + j];
        for (var c = 0u; c < K; c++) {
            zd[zb + c] += xv * params[j * K + c];
        }
    }
    let label = y[local];
    if (MODEL == MODEL_SOFTMAX) {
        var m = zd[zb];
        for (var c = 1u; c < K; c++) {
            m = max(m, zd[zb + c]);
        }
        var s = 0.0;
        for (var c = 0u; c < K; c++) {
            s += exp(zd[zb + c] - m);
        }
        let yc = u32(label);
        let loss = softmax_loss(m, s, zd[zb + yc]);
        for (var c = 0u; c < K; c++) {
            zd[zb + c] = softmax_delta(zd[zb + c], m, s, c == yc);
        }
        return loss;
    }
    let ld = loss_delta_1(zd[zb], label);
    zd[zb] = ld.y;
    return ld.x;
}

@compute @workgroup_size(WG)
fn gradient_partials(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let group = wid.x;
    let class0 = wid.y * KT;
    // A full batch in file order visits only this shard's rows; a shuffled batch visits
    // every position and keeps the rows that live in this shard.
    var first = step.pos_begin;
    var last = step.pos_begin + step.pos_count;
    if (step.shuffled == 0u) {
        first = max(first, shard.row_begin);
        last = max(first, min(last, shard.row_end));
    }
    let tiles = (last - first + TILE_ROWS - 1u) / TILE_ROWS;

    // Invocation t owns columns col0, col0 + COL_STRIDE, ... (column D is the bias, whose
    // "feature" is 1) and tile rows g, g + ROW_GROUPS, ...
    let col0 = t % COL_STRIDE;
    let g = t / COL_STRIDE;
    var acc: array<f32, COLS * KT>;
    var loss = 0.0;

    for (var tile = group; tile < tiles; tile += step.groups) {
        let p0 = first + tile * TILE_ROWS;
        let count = min(TILE_ROWS, last - p0);
        if (t < TILE_ROWS) {
            var local = NO_ROW;
            if (t < count) {
                let row = batch_row(step, p0 + t);
                if (row >= shard.row_begin && row < shard.row_end) {
                    local = row - shard.row_begin;
                }
            }
            tile_rows[t] = local;
        }
        workgroupBarrier();

        if (step.shuffled == 0u) {
            // The tile is `count` whole rows, contiguous in memory: a coalesced copy.
            let base = (p0 - shard.row_begin) * D;
            let n = count * D;
            for (var e = t; e < TILE_ROWS * D; e += WG) {
                var v = 0.0;
                if (e < n) {
                    v = x[base + e];
                }
                xs[e] = v;
            }
        } else {
            for (var e = t; e < TILE_ROWS * D; e += WG) {
                let r = e / D;
                let local = tile_rows[r];
                var v = 0.0;
                if (local != NO_ROW) {
                    v = x[local * D + (e - r * D)];
                }
                xs[e] = v;
            }
        }
        workgroupBarrier();

        if (t < TILE_ROWS) {
            let local = tile_rows[t];
            if (local == NO_ROW) {
                for (var c = 0u; c < K; c++) {
                    zd[t * K + c] = 0.0;
                }
            } else {
                loss += row_delta(t, local);
            }
        }
        workgroupBarrier();

        if (g < ROW_GROUPS) {
            for (var m = 0u; m < COLS; m++) {
                let col = col0 + m * COL_STRIDE;
                if (col <= D) {
                    for (var r = g; r < count; r += ROW_GROUPS) {
                        var xv = 1.0;
                        if (col < D) {
                            xv = xs[r * D + col];
                        }
                        for (var c = 0u; c < KT; c++) {
                            let cls = class0 + c;
                            if (cls < K) {
                                acc[m * KT + c] += zd[r * K + cls] * xv;
                            }
                        }
                    }
                }
            }
        }
        // The next tile overwrites xs and zd.
        workgroupBarrier();
    }

    let out = (shard.index * step.groups + group) * P;
    // Row groups hold sums over different rows of the same columns: add them in order.
    for (var m = 0u; m < COLS; m++) {
        for (var c = 0u; c < KT; c++) {
            red[t] = acc[m * KT + c];
            workgroupBarrier();
            let col = col0 + m * COL_STRIDE;
            let cls = class0 + c;
            if (g == 0u && col <= D && cls < K) {
                var sum = red[t];
                for (var h = 1u; h < ROW_GROUPS; h++) {
                    sum += red[t + h * COL_STRIDE];
                }
                partials[out + col * K + cls] = sum;
            }
            workgroupBarrier();
        }
    }
    red[t] = loss;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if (t < half) {
            red[t] += red[t + half];
        }
        workgroupBarrier();
    }
    if (t == 0u && wid.y == 0u) {
        partials[out + P - 1u] = red[0];
    }
}

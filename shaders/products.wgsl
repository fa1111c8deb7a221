// The fused gradient's two matrix products for many classes, tiled. Where the fused
// gradient splits its classes, a slice s of a step's rows goes through three dispatches:
// `logits_tiles` writes Z_s = X_s W + b to `row_deltas`; gradient.wgsl in MODE_Z_IN reads
// each row's z back, computes its loss and w * delta and writes that over z (MODE_DELTAS_OUT
// computes z itself where one row block of `logits_tiles` would run past the device's loop
// limit); `xt_delta_tiles` adds G = X_s^T Δ_s into the partials, in place of one pass over
// X per class tile.
//
// Both are products in the style of a tiled SGEMM: a workgroup of 256 invocations owns an
// output tile of PT by PT numbers, stages the slabs of the two factors it multiplies in
// workgroup memory, and each invocation adds a register block of 4 by 4 outputs (rows or
// features ty + 16i, classes tx + 16j): 16 products per 8 numbers read from workgroup
// memory.
//
// xt_delta_tiles:
// Each workgroup owns an output tile of PT features (the bias as feature D, whose x is 1)
// by PT classes, and a share of the slice's rows: blocks of RB rows, b = group,
// group + groups, ... Per block it stages RB rows of X (the tile's PT columns) and of Δ
// (its PT classes) in workgroup memory, and each of its 256 invocations adds a register
// block of 4 features by 4 classes (features ty + 16i, classes tx + 16j) over the block's
// rows: 16 products per 8 numbers read from workgroup memory. The block's sums go into
// Kahan-compensated accumulators, so that thousands of rows lose no more than the fused
// kernel does.
//
// Dispatch: (step.groups, feature tiles ⌈(D + 1) / PT⌉, class tiles ⌈K / PT⌉) per shard
// and slice. Workgroup (group, ft, ct) writes entries j * K + c of its group's partial for
// the tile's j ≤ D and c < K, as gradient.wgsl's class tiles do: the first slice writes
// them, the others add to them, and `reduce_partials` adds the groups in a fixed order.
// No float atomics: the bits repeat run to run.

@group(0) @binding(0) var<uniform> step: Step;
@group(1) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(1) @binding(2) var<uniform> shard: Shard;
@group(2) @binding(0) var<storage, read> params: array<f32>;
@group(2) @binding(1) var<storage, read_write> partials: array<f32>;
@group(2) @binding(4) var<storage, read_write> row_deltas: array<f32>;
@group(3) @binding(0) var<uniform> slice: Slice;

// The output tile's side, and the rows staged at a time.
const PT: u32 = 64u;
const RB: u32 = 16u;
const PQ: u32 = PT / 4u;  // the tile's column quads

// xt_delta_tiles: xt[r * PT + f], feature f of the tile in row r; dt[r * PT + c], class c.
// logits_tiles: xt[r * RB + f], feature f of the slab in row r; dt[f * PT + c], W's.
var<workgroup> xt: array<f32, RB * PT>;
var<workgroup> dt: array<f32, RB * PT>;

// The positions of the slice's rows, [begin, end), as gradient.wgsl counts its tiles.
fn slice_positions() -> vec2<u32> {
    let span = shard_positions(step, shard);
    let first = span.x;
    let last = span.y;
    let tiles = (last - first + TILE_ROWS - 1u) / TILE_ROWS;
    let begin = min(first + slice.first_tile * TILE_ROWS, last);
    return vec2<u32>(begin, max(begin, min(last, first + min(tiles, slice.end_tile) * TILE_ROWS)));
}

// Column quad q of the row at position `pos` (the bias column D reads 1), zero for a
// position past `end` or whose row lives in another shard (a shuffled batch).
fn x_quad(pos: u32, end: u32, q: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    if (pos >= end) {
        return v;
    }
    let row = batch_row(step, pos);
    if (row < shard.row_begin || row >= shard.row_end) {
        return v;
    }
    if (q < Q) {
        v = x[(row - shard.row_begin) * Q + q];
    }
    // Columns D .. DP - 1 are the rows' zero padding, D itself may be past them.
    if (D >= 4u * q && D < 4u * q + 4u) {
        v[D - 4u * q] = 1.0;
    }
    return v;
}

@compute @workgroup_size(256)
fn xt_delta_tiles(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let group = wid.x;
    let f0 = wid.y * PT;
    let c0 = wid.z * PT;
    let span = slice_positions();
    let begin = span.x;
    let end = span.y;
    let blocks = (end - begin + RB - 1u) / RB;

    let tx = t % 16u;
    let ty = t / 16u;
    var acc: array<vec4<f32>, 4>;
    var comp: array<vec4<f32>, 4>;
    for (var b = group; b < blocks; b += step.groups) {
        let p0 = begin + b * RB;
        // RB rows × PQ quads of X: one quad an invocation.
        let xr = t / PQ;
        let xq = t % PQ;
        let v = x_quad(p0 + xr, end, f0 / 4u + xq);
        for (var i = 0u; i < 4u; i++) {
            xt[xr * PT + 4u * xq + i] = v[i];
        }
        // RB rows × PT classes of w * delta, kept from the slice's first position on.
        for (var e = t; e < RB * PT; e += 256u) {
            let r = e / PT;
            let c = c0 + e % PT;
            var d = 0.0;
            if (p0 + r < end && c < K) {
                d = row_deltas[(p0 + r - begin) * K + c];
            }
            dt[e] = d;
        }
        workgroupBarrier();
        var block: array<vec4<f32>, 4>;
        for (var r = 0u; r < RB; r++) {
            let xs = r * PT + ty;
            let ds = r * PT + tx;
            let dv = vec4<f32>(dt[ds], dt[ds + 16u], dt[ds + 32u], dt[ds + 48u]);
            for (var i = 0u; i < 4u; i++) {
                block[i] += xt[xs + 16u * i] * dv;
            }
        }
        for (var i = 0u; i < 4u; i++) {
            let v = block[i] - comp[i];
            let sum = acc[i] + v;
            comp[i] = (sum - acc[i]) - v;
            acc[i] = sum;
        }
        // The next block overwrites xt and dt.
        workgroupBarrier();
    }

    let out = (shard.index * step.groups + group) * P;
    for (var i = 0u; i < 4u; i++) {
        let j = f0 + ty + 16u * i;
        for (var m = 0u; m < 4u; m++) {
            let c = c0 + tx + 16u * m;
            if (j <= D && c < K) {
                let e = out + j * K + c;
                var sum = acc[i][m] - comp[i][m];
                if (slice.accumulate == 1u) {
                    sum += partials[e];
                }
                partials[e] = sum;
            }
        }
    }
}

// logits_tiles: Z = X W + b of the slice's rows, written to `row_deltas` (row p of the
// slice at (p - begin) * K). Workgroup (group, ct) owns blocks of PT rows, b = group,
// group + groups, ..., by the PT classes of class tile ct; it walks the features in slabs
// of RB, staging PT rows × RB features of X and RB features × PT classes of W. Each z
// adds its features in order, one slab at a time, then b.
//
// Dispatch: (step.groups, class tiles ⌈K / PT⌉, 1) per shard and slice.
@compute @workgroup_size(256)
fn logits_tiles(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let group = wid.x;
    let c0 = wid.y * PT;
    let span = slice_positions();
    let begin = span.x;
    let end = span.y;
    let blocks = (end - begin + PT - 1u) / PT;
    let tx = t % 16u;
    let ty = t / 16u;
    // RB features are RB / 4 quads of PT rows: one quad an invocation.
    let xr = t / (RB / 4u);
    let xq = t % (RB / 4u);
    for (var b = group; b < blocks; b += step.groups) {
        let p0 = begin + b * PT;
        var z: array<vec4<f32>, 4>;
        for (var j0 = 0u; j0 < DP; j0 += RB) {
            let v = x_quad(p0 + xr, end, j0 / 4u + xq);
            for (var i = 0u; i < 4u; i++) {
                // The bias column (1) is not W's: drop it.
                xt[xr * RB + 4u * xq + i] = select(0.0, v[i], j0 + 4u * xq + i < D);
            }
            for (var e = t; e < RB * PT; e += 256u) {
                let j = j0 + e / PT;
                let c = c0 + e % PT;
                var wv = 0.0;
                if (j < D && c < K) {
                    wv = params[j * K + c];
                }
                dt[e] = wv;
            }
            workgroupBarrier();
            for (var f = 0u; f < RB; f++) {
                let ws = f * PT + tx;
                let wv = vec4<f32>(dt[ws], dt[ws + 16u], dt[ws + 32u], dt[ws + 48u]);
                for (var i = 0u; i < 4u; i++) {
                    z[i] += xt[(ty + 16u * i) * RB + f] * wv;
                }
            }
            // The next slab overwrites xt and dt.
            workgroupBarrier();
        }
        for (var i = 0u; i < 4u; i++) {
            let p = p0 + ty + 16u * i;
            for (var m = 0u; m < 4u; m++) {
                let c = c0 + tx + 16u * m;
                if (p < end && c < K) {
                    row_deltas[(p - begin) * K + c] = z[i][m] + params[D * K + c];
                }
            }
        }
    }
}

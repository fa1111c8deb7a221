// Sparse rows (CSR) on the GPU: three kernels, each deterministic (every sum in a fixed
// order, no atomics).
//
//   rows_*      one invocation per row: z = x·W + b gathered from the row's non-zeros,
//               then (gradient) the loss and w·δ, or (direction) w·∂²ℓ/∂z∂zᵀ·(x·V + v_b),
//               written per row; or (predict) z alone.
//   columns     one invocation per (segment s, class c): Σ over the segment's non-zeros
//               (at most SEGMENT of one column, in row order) of x_ij · out_i,c, from a
//               column-major copy of X (CSC): the gradient's W part, Xᵀ(w·δ), without
//               scattering; the host adds a column's segments in f64. Segments keep every
//               loop short, under a driver's loop limit (llvmpipe's 65 535 iterations) and
//               spread a popular column over many invocations.
//   blocks      one invocation per (block of ROWS_PER_BLOCK rows, value): the block's sum
//               of out_i,c (the bias part) or of a row metric, in row order; the host adds
//               the blocks in order, in f64.
// Both sums are Kahan-compensated, in f32.
//
// Buffers: `params` holds θ = (W row-major d×K, then b) and after it a direction of the
// same layout; `yw` the labels then the pass's row weights (0 for rows the pass skips);
// `out` z (n×K), then w·δ or the direction's products (n×K), then 5 metrics a row:
// w·ℓ, w, w·[correct], w·y, w·y².

const ROWS_PER_BLOCK: u32 = 256u;
const PK: u32 = (D + 1u) * K;

@group(0) @binding(0) var<uniform> shape: SparseShape;
@group(1) @binding(0) var<storage, read> offsets: array<u32>;
@group(1) @binding(1) var<storage, read> indices: array<u32>;
@group(1) @binding(2) var<storage, read> values: array<f32>;
@group(1) @binding(3) var<storage, read> yw: array<f32>;
@group(1) @binding(4) var<storage, read> params: array<f32>;
@group(1) @binding(5) var<storage, read_write> out: array<f32>;
@group(2) @binding(0) var<storage, read> segment_offsets: array<u32>;
@group(2) @binding(1) var<storage, read> column_rows: array<u32>;
@group(2) @binding(2) var<storage, read> column_values: array<f32>;
@group(2) @binding(3) var<storage, read> products: array<f32>;
@group(2) @binding(4) var<storage, read_write> sums: array<f32>;

// Mirrors `SparseShape` in src/backend/gpu/sparse.rs.
struct SparseShape {
    rows: u32,      // n, the rows of the session
    binary: u32,    // 1: every stored value is 1 (`values` unused)
    blocks: u32,    // ⌈n / ROWS_PER_BLOCK⌉
    width: u32,     // invocations per row of a 2-D dispatch
    segments: u32,  // the CSC's segments
    pad0: u32,
    pad1: u32,
    pad2: u32,
}

fn invocation(gid: vec3<u32>) -> u32 {
    return gid.y * shape.width + gid.x;
}

fn value_at(e: u32) -> f32 {
    if (shape.binary == 1u) {
        return 1.0;
    }
    return values[e];
}

fn column_value_at(e: u32) -> f32 {
    if (shape.binary == 1u) {
        return 1.0;
    }
    return column_values[e];
}

// z of row i (into out[i·K ..]) at the parameters starting at `base` of `params`.
fn gather(i: u32, base: u32, into: u32) {
    for (var c = 0u; c < K; c++) {
        out[into + c] = params[base + D * K + c];
    }
    for (var e = offsets[i]; e < offsets[i + 1u]; e++) {
        let v = value_at(e);
        let at = base + indices[e] * K;
        for (var c = 0u; c < K; c++) {
            out[into + c] += v * params[at + c];
        }
    }
}

// Zeros out[at .. at + count]: a row the pass skips adds nothing.
fn clear(at: u32, count: u32) {
    for (var e = 0u; e < count; e++) {
        out[at + e] = 0.0;
    }
}

// The first class with the largest z of row i, and that z.
fn best_class(zb: u32) -> vec2<f32> {
    var m = out[zb];
    var best = 0u;
    for (var c = 1u; c < K; c++) {
        if (out[zb + c] > m) {
            m = out[zb + c];
            best = c;
        }
    }
    return vec2<f32>(f32(best), m);
}

// Σ over c ≠ best of exp(z_c − m).
fn rest_of(zb: u32, best: u32, m: f32) -> f32 {
    var rest = 0.0;
    for (var c = 0u; c < K; c++) {
        if (c != best) {
            rest += exp(out[zb + c] - m);
        }
    }
    return rest;
}

@compute @workgroup_size(WG)
fn rows_gradient(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = invocation(gid);
    let n = shape.rows;
    if (i >= n) {
        return;
    }
    let zb = i * K;
    let db = n * K + i * K;
    let mb = 2u * n * K + i * 5u;
    let w = yw[n + i];
    let label = yw[i];
    if (w == 0.0) {
        clear(db, K);
        clear(mb, 5u);
        return;
    }
    gather(i, 0u, zb);
    var loss = 0.0;
    var correct = 0.0;
    if (MODEL == MODEL_SOFTMAX) {
        let top = best_class(zb);
        let best = u32(top.x);
        let m = top.y;
        let rest = rest_of(zb, best, m);
        let yc = u32(label);
        loss = softmax_loss(m, rest, out[zb + yc]);
        for (var c = 0u; c < K; c++) {
            out[db + c] = w * softmax_delta(out[zb + c], m, rest, c == yc, c == best);
        }
        correct = select(0.0, 1.0, best == yc);
    } else {
        let ld = loss_delta_1(out[zb], label);
        loss = ld.x;
        out[db] = w * ld.y;
        correct = select(0.0, 1.0, f32(select(0u, 1u, out[zb] > 0.0)) == round(label));
    }
    out[mb] = w * loss;
    out[mb + 1u] = w;
    out[mb + 2u] = w * correct;
    out[mb + 3u] = w * label;
    out[mb + 4u] = w * label * label;
}

// w·∂²ℓ/∂z∂zᵀ·u per row, u = x·V + v_b the direction's logits (V after θ in `params`).
@compute @workgroup_size(WG)
fn rows_direction(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = invocation(gid);
    let n = shape.rows;
    if (i >= n) {
        return;
    }
    let zb = i * K;
    let db = n * K + i * K;
    let w = yw[n + i];
    if (w == 0.0) {
        clear(db, K);
        return;
    }
    gather(i, 0u, zb);
    gather(i, PK, db);
    let label = yw[i];
    if (MODEL == MODEL_SOFTMAX) {
        // (diag(p) − ppᵀ)·u: p ⊙ (u − p·u), p = softmax(z).
        let top = best_class(zb);
        let m = top.y;
        var s = 0.0;
        for (var c = 0u; c < K; c++) {
            s += exp(out[zb + c] - m);
        }
        var pu = 0.0;
        for (var c = 0u; c < K; c++) {
            pu += exp(out[zb + c] - m) / s * out[db + c];
        }
        for (var c = 0u; c < K; c++) {
            let p = exp(out[zb + c] - m) / s;
            out[db + c] = w * p * (out[db + c] - pu);
        }
    } else {
        out[db] = w * curvature_1(out[zb], label) * out[db];
    }
}

@compute @workgroup_size(WG)
fn rows_predict(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = invocation(gid);
    if (i >= shape.rows) {
        return;
    }
    gather(i, 0u, i * K);
}

// The last two kernels read `out` as `products` (bound in their own group, so that no
// pipeline binds more than six storage buffers).

// sums[s·K + c] = Σ over segment s's non-zeros (row order) of x_ij · out[n·K + i·K + c].
@compute @workgroup_size(WG)
fn columns(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = invocation(gid);
    if (t >= shape.segments * K) {
        return;
    }
    let segment = t / K;
    let c = t % K;
    let db = shape.rows * K;
    // Kahan's compensated sum: a popular column's hundreds of thousands of terms nearly
    // cancel at the optimum, which a plain f32 sum would bury in its rounding.
    var s = 0.0;
    var comp = 0.0;
    for (var e = segment_offsets[segment]; e < segment_offsets[segment + 1u]; e++) {
        let v = column_value_at(e) * products[db + column_rows[e] * K + c] - comp;
        let next = s + v;
        comp = (next - s) - v;
        s = next;
    }
    sums[t] = s - comp;
}

// sums[segments·K + b·(K + 5) + v]: block b's sum of out[n·K + i·K + v] (v < K, the bias part) or
// of metric v − K of its rows, in row order.
@compute @workgroup_size(WG)
fn blocks(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = invocation(gid);
    let per = K + 5u;
    if (t >= shape.blocks * per) {
        return;
    }
    let b = t / per;
    let v = t % per;
    let n = shape.rows;
    let end = min(n, (b + 1u) * ROWS_PER_BLOCK);
    var s = 0.0;
    var comp = 0.0;
    for (var i = b * ROWS_PER_BLOCK; i < end; i++) {
        var term = products[2u * n * K + i * 5u + (v - K)];
        if (v < K) {
            term = products[n * K + i * K + v];
        }
        let next = s + (term - comp);
        comp = (next - s) - (term - comp);
        s = next;
    }
    sums[shape.segments * K + t] = s - comp;
}

// The exact Hessian (`newton`), Σ w·x̃x̃ᵀ ⊗ ∂²ℓ/∂z∂zᵀ, row by row of H:
//   rows_curvature  one invocation per row: z, then (one output) w·∂²ℓ/∂z² in the place
//                   of its deltas, or (softmax) p = softmax(z) there and w in its first
//                   metric, so D_i = w·(diag(p) − ppᵀ).
//   hessian         one invocation per (work segment s of a batch, class c): the
//                   segment's share of H's row (j, c), Σ over its entries' rows i (in row
//                   order) of x_ij · x̃_i ⊗ D_i[c, ·], into its own PK values of `parts`.
//                   Column j = D is the bias: its entries are the rows themselves, x = 1.
//                   The host cuts segments so that each one's loops stay within the loop
//                   budget, and adds them to H's rows in f64, in segment order.

@group(3) @binding(0) var<uniform> batch: HessianBatch;
// (first entry, end, column) of each work segment.
@group(3) @binding(1) var<storage, read> work: array<u32>;
@group(3) @binding(2) var<storage, read> h_column_rows: array<u32>;
@group(3) @binding(3) var<storage, read> h_column_values: array<f32>;
@group(3) @binding(4) var<storage, read> h_offsets: array<u32>;
@group(3) @binding(5) var<storage, read> h_indices: array<u32>;
@group(3) @binding(6) var<storage, read> h_values: array<f32>;
// `out` as rows_curvature left it.
@group(3) @binding(7) var<storage, read> curvatures: array<f32>;
@group(3) @binding(8) var<storage, read_write> parts: array<f32>;

// Mirrors `HessianBatch` in src/backend/gpu/sparse/hessian.rs.
struct HessianBatch {
    first: u32,  // the batch's first work segment
    count: u32,  // its work segments
    pad0: u32,
    pad1: u32,
}

@compute @workgroup_size(WG)
fn rows_curvature(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = invocation(gid);
    let n = shape.rows;
    if (i >= n) {
        return;
    }
    let zb = i * K;
    let db = n * K + i * K;
    let mb = 2u * n * K + i * 5u;
    let w = yw[n + i];
    if (w == 0.0) {
        clear(db, K);
        out[mb] = 0.0;
        return;
    }
    gather(i, 0u, zb);
    if (MODEL == MODEL_SOFTMAX) {
        let m = best_class(zb).y;
        var s = 0.0;
        for (var c = 0u; c < K; c++) {
            s += exp(out[zb + c] - m);
        }
        for (var c = 0u; c < K; c++) {
            out[db + c] = exp(out[zb + c] - m) / s;
        }
        out[mb] = w;
    } else {
        out[db] = w * curvature_1(out[zb], yw[i]);
    }
}

// D_i[c, c2], from what rows_curvature wrote.
fn curvature_at(i: u32, c: u32, c2: u32) -> f32 {
    let n = shape.rows;
    let db = n * K + i * K;
    if (MODEL == MODEL_SOFTMAX) {
        let w = curvatures[2u * n * K + i * 5u];
        let p = curvatures[db + c];
        return w * p * (select(0.0, 1.0, c == c2) - curvatures[db + c2]);
    }
    return curvatures[db];
}

@compute @workgroup_size(WG)
fn hessian(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = invocation(gid);
    if (t >= batch.count * K) {
        return;
    }
    let c = t % K;
    let s = batch.first + t / K;
    let base = t * PK;
    for (var e = 0u; e < PK; e++) {
        parts[base + e] = 0.0;
    }
    let j = work[3u * s + 2u];
    for (var e = work[3u * s]; e < work[3u * s + 1u]; e++) {
        var i = e;
        var x = 1.0;
        if (j < D) {
            i = h_column_rows[e];
            if (shape.binary == 0u) {
                x = h_column_values[e];
            }
        }
        for (var c2 = 0u; c2 < K; c2++) {
            let term = x * curvature_at(i, c, c2);
            for (var f = h_offsets[i]; f < h_offsets[i + 1u]; f++) {
                var v = 1.0;
                if (shape.binary == 0u) {
                    v = h_values[f];
                }
                parts[base + h_indices[f] * K + c2] += term * v;
            }
            parts[base + D * K + c2] += term;
        }
    }
}

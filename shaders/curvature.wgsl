// The curvature passes of the Newton solvers (src/backend/gpu/curvature.rs): the Hessian
// sums H = Σ w·(x̃x̃ᵀ ⊗ C) and Hessian-vector sums Hv = Σ w·x̃ ⊗ (C·(x̃·V)), x̃ = (x, 1),
// C = ∂²ℓ/∂z∂zᵀ of the row's loss (closed forms of the built-in losses: a number for one
// output, diag(p) − ppᵀ for softmax; for a custom softmax loss Σ_c f(p_c, t_c),
// C = diag(r) − rpᵀ − prᵀ + Q·ppᵀ, below). Entry e = f·K + a of θ's order pairs feature f
// (f = D: the bias) with class a.
//
// A segment of a shard's rows is done in two dispatches. The first, one row per
// invocation, writes each row's coefficients: for the Hessian (`curvature_rows`) the
// weight and C's factors, CW floats; for Hv (`direction_rows`) the row's w·C·(x̃·V), K
// floats. The second sums over blocks of rows, one workgroup per block and
// output tile, each in a fixed order: `hessian_tiles` a 64×64 tile of the upper triangle
// of H, `product_columns` WG entries of Hv. The host adds the blocks' partials in f64.

@group(0) @binding(0) var<uniform> step: Step;
@group(1) @binding(0) var<storage, read> x: array<f32>;
@group(1) @binding(1) var<storage, read> y: array<f32>;
@group(1) @binding(2) var<uniform> shard: Shard;
@group(1) @binding(3) var<storage, read> w: array<f32>;  // sample weights, when setup.weighted
@group(2) @binding(0) var<storage, read> params: array<f32>;
@group(2) @binding(1) var<uniform> setup: Setup;
@group(2) @binding(2) var<storage, read> class_w: array<f32>;
@group(2) @binding(3) var<storage, read> direction: array<f32>;  // V, θ's layout (Hv only)
@group(2) @binding(4) var<storage, read_write> coef: array<f32>;
@group(2) @binding(5) var<storage, read_write> partials: array<f32>;
@group(2) @binding(6) var<uniform> segment: Segment;

// One segment of a shard's rows. Mirrors `SegmentUniform` in src/backend/gpu/curvature.rs.
struct Segment {
    first: u32,       // the segment's first row, local to the shard
    rows: u32,        // rows in the segment
    block_rows: u32,  // rows per block of the second dispatch (a multiple of 16)
    blocks: u32,
}

// Entries of θ (and of a row of H).
const PE: u32 = (D + 1u) * K;
// A custom softmax loss: its C has the general form, from the graph's WGSL.
const GENERAL_SOFTMAX: bool = MODEL == MODEL_SOFTMAX && LOSS == LOSS_CUSTOM;
// Coefficients per row of the Hessian's first dispatch: w, then C's factors (p, or p, r
// and Q). Mirrors `Shape::coefficients` in src/backend/gpu/curvature.rs.
const CW: u32 = select(K + 1u, 2u * K + 2u, GENERAL_SOFTMAX);
// Side of a tile of H (64: each of a workgroup's 256 invocations sums 4×4 entries), and
// the block's rows staged at a time (fewer where a custom softmax loss stages five
// factors, so that they take 20 KiB of workgroup memory at most).
const HT: u32 = 64u;
const HR: u32 = select(16u, 8u, GENERAL_SOFTMAX);

// The row's weight in the pass (0 where the pass does not use it): the sample weight
// times the class weight, as the gradient kernel weighs it.
fn row_weight(local: u32) -> f32 {
    if (!uses_row(step, setup, shard.row_begin + local)) {
        return 0.0;
    }
    var weight = 1.0;
    if (setup.weighted == 1u) {
        weight = w[local];
    }
    if (MODEL != MODEL_LINEAR) {
        weight *= class_w[min(u32(y[local]), CLASS_SLOTS - 1u)];
    }
    return weight;
}

// x̃_f of a local row: the feature, or 1 for the bias.
fn feature(local: u32, f: u32) -> f32 {
    if (f == D) {
        return 1.0;
    }
    return x[local * DP + f];
}

// z_c = x̃·θ_c of a local row (θ's layout: f·K + c), of the parameters and of V.
fn logit_params(local: u32, c: u32) -> f32 {
    var acc = params[D * K + c];
    for (var j = 0u; j < D; j++) {
        acc += x[local * DP + j] * params[j * K + c];
    }
    return acc;
}

fn logit_direction(local: u32, c: u32) -> f32 {
    var acc = direction[D * K + c];
    for (var j = 0u; j < D; j++) {
        acc += x[local * DP + j] * direction[j * K + c];
    }
    return acc;
}

// The softmax of a local row into `p` (the row max subtracted).
fn softmax_row(local: u32, p: ptr<function, array<f32, K>>) {
    var m = -3.4e38;
    for (var c = 0u; c < K; c++) {
        (*p)[c] = logit_params(local, c);
        m = max(m, (*p)[c]);
    }
    var s = 0.0;
    for (var c = 0u; c < K; c++) {
        (*p)[c] = exp((*p)[c] - m);
        s += (*p)[c];
    }
    for (var c = 0u; c < K; c++) {
        (*p)[c] /= s;
    }
}

// The factors of a custom softmax loss's C, with p = softmax(z) in `p`. With g_c and h_c
// the loss's first and second derivatives in p_c, δ = p ⊙ (g − g·p) (the row's ∂ℓ/∂z),
// q_c = h_c·p_c² and J = diag(p) − ppᵀ, C = J·diag(h)·J + diag(δ) − δpᵀ − pδᵀ
// = diag(r) − rpᵀ − prᵀ + Q·ppᵀ with r = q + δ and Q = Σ q_c (the built-in loss is
// r = p, Q = 1). Writes r; returns Q.
fn general_factors(local: u32, p: ptr<function, array<f32, K>>, r: ptr<function, array<f32, K>>) -> f32 {
    let label = u32(y[local]);
    var gp = 0.0;
    var big_q = 0.0;
    for (var c = 0u; c < K; c++) {
        let pc = (*p)[c];
        let t = select(0.0, 1.0, c == label);
        let g = custom_loss(pc, t).y;
        let q = custom_curvature(pc, t) * pc * pc;
        gp += g * pc;
        big_q += q;
        // g and q for now; δ needs g·p, known after the loop.
        (*r)[c] = g;
    }
    for (var c = 0u; c < K; c++) {
        let pc = (*p)[c];
        let t = select(0.0, 1.0, c == label);
        let q = custom_curvature(pc, t) * pc * pc;
        (*r)[c] = q + pc * ((*r)[c] - gp);
    }
    return big_q;
}

// Row i of the segment: coef[i·CW] = w, then C's factors: ∂²ℓ/∂z² of one output, or
// softmax's p (C = diag(p) − ppᵀ), or for a custom softmax loss p, r and Q.
@compute @workgroup_size(WG)
fn curvature_rows(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) count: vec3<u32>,
) {
    let stride = count.x * WG;
    for (var i = gid.x; i < segment.rows; i += stride) {
        let local = segment.first + i;
        let weight = row_weight(local);
        coef[i * CW] = weight;
        if (weight == 0.0) {
            for (var c = 1u; c < CW; c++) {
                coef[i * CW + c] = 0.0;
            }
            continue;
        }
        if (MODEL == MODEL_SOFTMAX) {
            var p: array<f32, K>;
            softmax_row(local, &p);
            for (var c = 0u; c < K; c++) {
                coef[i * CW + 1u + c] = p[c];
            }
            if (GENERAL_SOFTMAX) {
                var r: array<f32, K>;
                let big_q = general_factors(local, &p, &r);
                for (var c = 0u; c < K; c++) {
                    coef[i * CW + 1u + K + c] = r[c];
                }
                coef[i * CW + 1u + 2u * K] = big_q;
            }
        } else {
            coef[i * CW + 1u] = curvature_1(logit_params(local, 0u), y[local]);
        }
    }
}

// Row i of the segment: coef[i·K + a] = w·(C·u)_a with u = x̃·V; for softmax
// (C·u)_a = p_a (u_a − p·u), for a custom one r_a (u_a − p·u) − p_a (r·u − Q·p·u).
@compute @workgroup_size(WG)
fn direction_rows(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) count: vec3<u32>,
) {
    let stride = count.x * WG;
    for (var i = gid.x; i < segment.rows; i += stride) {
        let local = segment.first + i;
        let weight = row_weight(local);
        if (weight == 0.0) {
            for (var c = 0u; c < K; c++) {
                coef[i * K + c] = 0.0;
            }
            continue;
        }
        if (MODEL == MODEL_SOFTMAX) {
            var p: array<f32, K>;
            softmax_row(local, &p);
            var u: array<f32, K>;
            var pu = 0.0;
            for (var c = 0u; c < K; c++) {
                u[c] = logit_direction(local, c);
                pu += p[c] * u[c];
            }
            if (GENERAL_SOFTMAX) {
                var r: array<f32, K>;
                let big_q = general_factors(local, &p, &r);
                var ru = 0.0;
                for (var c = 0u; c < K; c++) {
                    ru += r[c] * u[c];
                }
                for (var c = 0u; c < K; c++) {
                    coef[i * K + c] = weight * (r[c] * (u[c] - pu) - p[c] * (ru - big_q * pu));
                }
                continue;
            }
            for (var c = 0u; c < K; c++) {
                coef[i * K + c] = weight * p[c] * (u[c] - pu);
            }
        } else {
            let u = logit_direction(local, 0u);
            coef[i * K] = weight * curvature_1(logit_params(local, 0u), y[local]) * u;
        }
    }
}

// HR rows of the block at a time: the left factor of each row's entries of the tile's
// rows of H, and the right factor and x̃ of its columns, [row * HT + entry].
var<workgroup> left: array<f32, HR * HT>;
var<workgroup> right: array<f32, HR * HT>;
var<workgroup> column: array<f32, HR * HT>;
// A custom softmax loss's second pair of factors (length 1 otherwise).
const GENERAL_TILE: u32 = select(1u, HR * HT, GENERAL_SOFTMAX);
var<workgroup> left_p: array<f32, GENERAL_TILE>;
var<workgroup> right_r: array<f32, GENERAL_TILE>;

// Tile pair q of the upper triangle, q = tj·(tj + 1)/2 + ti with ti ≤ tj.
fn tile_pair(q: u32) -> vec2<u32> {
    var tj = u32((sqrt(8.0 * f32(q) + 1.0) - 1.0) * 0.5);
    while (tj * (tj + 1u) / 2u > q) {
        tj -= 1u;
    }
    while ((tj + 1u) * (tj + 2u) / 2u <= q) {
        tj += 1u;
    }
    return vec2<u32>(q - tj * (tj + 1u) / 2u, tj);
}

// Stages entry `e` of row i of the block (position `at` of the staged rows): the factors
// of tile rows' entry ti·HT + e and tile columns' entry tj·HT + e.
fn stage_entry(pair: vec2<u32>, i: u32, last: u32, at: u32, e: u32) {
    let load_i = pair.x * HT + e;
    let load_j = pair.y * HT + e;
    var l = 0.0;
    var rv = 0.0;
    var xv = 0.0;
    var lp = 0.0;
    var rr = 0.0;
    if (i < last) {
        let local = segment.first + i;
        let weight = coef[i * CW];
        if (load_i < PE) {
            // w·x_f times p_a, or for a custom softmax loss r_a (and p_a beside it).
            let factor = coef[i * CW + 1u + select(0u, K, GENERAL_SOFTMAX) + load_i % K];
            l = weight * feature(local, load_i / K) * factor;
            lp = weight * feature(local, load_i / K) * coef[i * CW + 1u + load_i % K];
        }
        if (load_j < PE) {
            xv = feature(local, load_j / K);
            if (MODEL == MODEL_SOFTMAX) {
                let pb = coef[i * CW + 1u + load_j % K];
                rv = xv * pb;
                if (GENERAL_SOFTMAX) {
                    let big_q = coef[i * CW + 1u + 2u * K];
                    rr = xv * (big_q * pb - coef[i * CW + 1u + K + load_j % K]);
                }
            } else {
                rv = xv;
            }
        }
    }
    left[at] = l;
    right[at] = rv;
    column[at] = xv;
    if (GENERAL_SOFTMAX) {
        left_p[at] = lp;
        right_r[at] = rr;
    }
}

// Block wid.y of the segment, tile pair wid.x: invocation (lr, lc) of the 16×16 workgroup
// sums the 4×4 entries H[ti·HT + lr + 16i][tj·HT + lc + 16j] over the block's rows, in
// row order (a register block: 16 sums per 8 numbers read from workgroup memory); written
// to partials[(block·pairs + pair)·HT² + (lr + 16i)·HT + lc + 16j].
@compute @workgroup_size(16, 16)
fn hessian_tiles(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) count: vec3<u32>,
) {
    let pair = tile_pair(wid.x);
    let lr = t / 16u;
    let lc = t % 16u;
    // Whether entry (lr + 16i, lc + 16j) pairs one class with itself: the same residue
    // of the entries mod K.
    var same: array<vec4<bool>, 4>;
    for (var i = 0u; i < 4u; i++) {
        let a = (pair.x * HT + lr + 16u * i) % K;
        for (var j = 0u; j < 4u; j++) {
            same[i][j] = a == (pair.y * HT + lc + 16u * j) % K;
        }
    }
    let first = wid.y * segment.block_rows;
    let last = min(segment.rows, first + segment.block_rows);
    var acc: array<vec4<f32>, 4>;
    for (var tile = first; tile < last; tile += HR) {
        for (var e = t; e < HR * HT; e += 256u) {
            stage_entry(pair, tile + e / HT, last, e, e % HT);
        }
        workgroupBarrier();
        let rows_here = min(HR, last - tile);
        for (var r = 0u; r < rows_here; r++) {
            let at = r * HT + lc;
            let rv = vec4<f32>(right[at], right[at + 16u], right[at + 32u], right[at + 48u]);
            var cv = vec4<f32>(0.0);
            var rr = vec4<f32>(0.0);
            if (MODEL == MODEL_SOFTMAX) {
                cv = vec4<f32>(column[at], column[at + 16u], column[at + 32u], column[at + 48u]);
            }
            if (GENERAL_SOFTMAX) {
                rr = vec4<f32>(right_r[at], right_r[at + 16u], right_r[at + 32u], right_r[at + 48u]);
            }
            for (var i = 0u; i < 4u; i++) {
                let l = left[r * HT + lr + 16u * i];
                if (GENERAL_SOFTMAX) {
                    // w·x_f·x_g·(δ_ab·r_a − r_a·p_b + p_a·(Q·p_b − r_b))
                    let own = select(vec4<f32>(0.0), cv, same[i]);
                    acc[i] += l * (own - rv) + left_p[r * HT + lr + 16u * i] * rr;
                } else if (MODEL == MODEL_SOFTMAX) {
                    // w·x_f·x_g·p_a(δ_ab − p_b)
                    acc[i] += l * (select(vec4<f32>(0.0), cv, same[i]) - rv);
                } else {
                    acc[i] += l * rv;
                }
            }
        }
        workgroupBarrier();
    }
    let out = (wid.y * count.x + wid.x) * HT * HT;
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            partials[out + (lr + 16u * i) * HT + lc + 16u * j] = acc[i][j];
        }
    }
}

// Block wid.y of the segment: invocation t of workgroup wid.x sums entry
// e = wid.x·WG + t of Hv, x̃_f·coef_a over the block's rows in row order; written to
// partials[block·PE + e].
@compute @workgroup_size(WG)
fn product_columns(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let e = wid.x * WG + t;
    if (e >= PE) {
        return;
    }
    let f = e / K;
    let a = e % K;
    let first = wid.y * segment.block_rows;
    let last = min(segment.rows, first + segment.block_rows);
    var acc = 0.0;
    for (var i = first; i < last; i++) {
        acc += feature(segment.first + i, f) * coef[i * K + a];
    }
    partials[wid.y * PE + e] = acc;
}

// Shared by every downhill kernel. The host prepends the constants of one problem
// (src/backend/gpu/constants.rs, `ShaderConstants`):
//   D features; DP = D rounded up to a multiple of 4, the stride of rows in device memory
//   (zero padded); Q = DP / 4; K outputs; P = (D + 1) * K + 10 entries of a partial or of
//   `grad` (W, then b as a last row, then the sums below); MODEL and LOSS (codes below);
//   SHARDS; WG invocations per workgroup; the fused kernel's tile shape TILE_ROWS,
//   COL_STRIDE, ROW_GROUPS, COLS, KT (see gradient.wgsl); the codes of `Step.rows`,
//   ROWS_ALL, ROWS_TRAINING, ROWS_HELD_OUT and ROWS_TRAINING_AND_HELD_OUT (the training
//   rows, and the held-out rows' sums from P_HELD_OUT: full batches in file order).

//   The codes Rust and WGSL share come from Rust too: MODEL_LINEAR, MODEL_LOGISTIC,
//   MODEL_SOFTMAX; LOSS_MSE, LOSS_BCE, LOSS_CE, LOSS_CUSTOM; OPT_SGD, OPT_MOMENTUM,
//   OPT_NESTEROV, OPT_ADAM; and STREAM_SPLIT, the hash stream of the held-out split.
// After the kernel, the host appends the problem's row loss (src/loss.rs, `RowLoss::wgsl`):
//   `loss_delta_1(z, y)`, (loss, delta) of one output, and `custom_loss(a, b)` and
//   `custom_curvature(a, b)`, generated from a custom loss's graph (stubs where they do
//   not apply).

const NO_ROW: u32 = 0xffffffffu;

// One descent step (or one evaluation): which rows, in which order, and the learning rate.
// Mirrors `StepUniform` in src/backend/gpu/uniforms.rs field by field.
struct Step {
    pos_begin: u32,   // first position of the batch in the epoch's order
    pos_count: u32,   // rows in the batch
    shuffled: u32,    // 0: position p is row p; 1: row = permutation(p)
    perm_mask: u32,   // 2^m - 1, m = ceil(log2 n)
    perm_shift: u32,
    perm_n: u32,
    lr: f32,
    rows: u32,        // ROWS_ALL, ROWS_TRAINING, ROWS_HELD_OUT, ROWS_TRAINING_AND_HELD_OUT
    key: vec4<u32>,   // permutation round keys
    index: u32,       // step number within one run, reported on divergence
    groups: u32,      // workgroups per shard in the fused gradient dispatch
    adam_step: f32,   // lr / (1 - beta1^t)
    adam_root: f32,   // sqrt(1 - beta2^t)
}

// What stays fixed for a fit. Mirrors `SetupUniform` in src/backend/gpu/uniforms.rs.
struct Setup {
    optimizer: u32,   // 0 sgd, 1 momentum, 2 nesterov, 3 adam
    momentum: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    l2: f32,
    l1: f32,
    standardize: u32, // 1: the optimizer's parameters live in standardized space
    split_seed: vec2<u32>,
    split_threshold: u32, // a row is held out when its split hash is below this
    weighted: u32,    // 1: rows carry sample weights (the shard's w buffer)
    fixed_bias: u32,  // 1: the bias is not learned (no intercept)
    pad: u32,
}


// Gradient entries and the extra sums every reduction carries after them.
const P_LOSS: u32 = (D + 1u) * K;       // sum of w * loss
const P_WEIGHT: u32 = P_LOSS + 1u;      // sum of w
const P_CORRECT: u32 = P_LOSS + 2u;     // sum of w * [prediction == label]
const P_SUM_Y: u32 = P_LOSS + 3u;       // sum of w * y
const P_SUM_Y2: u32 = P_LOSS + 4u;      // sum of w * y^2
const P_HELD_OUT: u32 = P_LOSS + 5u;    // the same five of the held-out rows

// The pcg4d hash of Jarzynski and Olano (JCGT 2020); twin of `rng::pcg4d`.
fn pcg4d(input: vec4<u32>) -> vec4<u32> {
    var v = input * 1664525u + 1013904223u;
    v.x += v.y * v.w;
    v.y += v.z * v.x;
    v.z += v.x * v.y;
    v.w += v.y * v.z;
    v ^= v >> vec4<u32>(16u);
    v.x += v.y * v.w;
    v.y += v.z * v.x;
    v.z += v.x * v.y;
    v.w += v.y * v.z;
    return v;
}

// Twin of `rng::cell_hash`.
fn cell_hash(seed: vec2<u32>, stream: u32, row: u32, column: u32) -> vec4<u32> {
    return pcg4d(pcg4d(vec4<u32>(row, column | (stream << 28u), seed.x, seed.y)));
}

// Whether the pass of `st` uses `row` (its gradient: ROWS_TRAINING_AND_HELD_OUT uses the
// training rows): twin of `Split::contains` in src/backend/mod.rs.
fn uses_row(st: Step, setup: Setup, row: u32) -> bool {
    if (st.rows == ROWS_ALL) {
        return true;
    }
    let held_out = cell_hash(setup.split_seed, STREAM_SPLIT, row, 0u).x < setup.split_threshold;
    return held_out == (st.rows == ROWS_HELD_OUT);
}

// The tiles of a step one dispatch of the gradient covers (gradient.wgsl, products.wgsl).
// Mirrors `SliceUniform` in src/backend/gpu/uniforms.rs.
struct Slice {
    first_tile: u32,
    end_tile: u32,
    accumulate: u32,  // 1: add to the partials the slice before wrote
    _pad: u32,
}

// The rows held by one storage buffer. Mirrors `ShardUniform`.
struct Shard {
    row_begin: u32,
    row_end: u32,
    index: u32,
    _pad: u32,
}

// The batch positions a pass over shard `sh` visits, [begin, end) (gradient.wgsl counts
// its tiles from begin): a batch in file order visits only the shard's rows of it, a
// shuffled one every position (keeping the rows that live in the shard).
fn shard_positions(st: Step, sh: Shard) -> vec2<u32> {
    let end = st.pos_begin + st.pos_count;
    if (st.shuffled != 0u) {
        return vec2<u32>(st.pos_begin, end);
    }
    let first = max(st.pos_begin, sh.row_begin);
    return vec2<u32>(first, max(first, min(end, sh.row_end)));
}

// Inf and NaN have an all-ones exponent. Tested on the bits: WGSL lets compilers assume
// floats are finite, so comparisons like v != v may be folded away.
fn is_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

fn sigmoid(z: f32) -> f32 {
    if (z >= 0.0) {
        return 1.0 / (1.0 + exp(-z));
    }
    let e = exp(z);
    return e / (1.0 + e);
}

// ln(1 + e) for 0 <= e <= 1 without rounding 1 + e: 2 atanh(s), s = e / (2 + e) <= 1/3,
// by its odd series to s^17. Twin of `ln_1p_unit` in src/backend/cpu/math.rs.
fn ln_1p_unit(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let t = s * s;
    var p = 1.0 / 17.0;
    p = p * t + 1.0 / 15.0;
    p = p * t + 1.0 / 13.0;
    p = p * t + 1.0 / 11.0;
    p = p * t + 1.0 / 9.0;
    p = p * t + 1.0 / 7.0;
    p = p * t + 1.0 / 5.0;
    p = p * t + 1.0 / 3.0;
    p = p * t + 1.0;
    return 2.0 * s * p;
}

// ln(1 + v) for v >= 0.
fn ln_1p(v: f32) -> f32 {
    if (v <= 1.0) {
        return ln_1p_unit(v);
    }
    return log(1.0 + v);
}

// sigma(z) and sigma(-z), each computed (1 - sigma(z) rounds to 0 where sigma(z) is near 1).
fn sigmoids(z: f32) -> vec2<f32> {
    let e = exp(-abs(z));
    let near = 1.0 / (1.0 + e);
    let far = e / (1.0 + e);
    return select(vec2<f32>(far, near), vec2<f32>(near, far), z >= 0.0);
}

// Binary cross-entropy (loss, delta) = (softplus(z) - y z, sigma(z) - y), written as
// y softplus(-z) + (1 - y) softplus(z) and (1 - y) sigma(z) - y sigma(-z): no cancellation,
// so a confidently right row keeps its small loss and delta (twin of
// `math::bce_loss_and_delta` in src/math.rs).
fn bce_loss_delta(z: f32, y: f32) -> vec2<f32> {
    let s = sigmoids(z);
    let loss = ln_1p_unit(exp(-abs(z))) + y * max(-z, 0.0) + (1.0 - y) * max(z, 0.0);
    return vec2<f32>(loss, (1.0 - y) * s.x - y * s.y);
}

// x^n for an integer n, by squaring (the generated custom losses use it).
fn powi(x: f32, n: i32) -> f32 {
    var result = 1.0;
    var base = x;
    var e = abs(n);
    while (e > 0) {
        if ((e & 1) == 1) {
            result *= base;
        }
        base *= base;
        e >>= 1u;
    }
    return select(result, 1.0 / result, n < 0);
}

// ∂²ℓ/∂z² of one output (twins of `RowLoss::curvature` in src/loss.rs; a custom loss's
// is generated from its graph by src/custom.rs).
fn curvature_1(z: f32, label: f32) -> f32 {
    if (LOSS == LOSS_CUSTOM) {
        return custom_curvature(z, label);
    }
    if (MODEL == MODEL_LOGISTIC) {
        let both = sigmoids(z);
        let s = both.x;
        let slope = both.x * both.y;
        if (LOSS == LOSS_BCE) {
            return slope;
        }
        return 2.0 * slope * (slope + (s - label) * (1.0 - 2.0 * s));
    }
    return 2.0;
}

// Softmax cross-entropy pieces, given m = max_c z_c, reached first at class `best`, and
// rest = sum over c != best of exp(z_c - m), so the sum is 1 + rest. As
// `loss::SoftmaxCrossEntropy` in src/loss.rs: the label's delta where it is the best class
// is -rest / (1 + rest), not p - 1, and the loss ln(1 + rest) is not log of 1 + rest
// rounded, so a confidently right row keeps both to full relative precision.
fn softmax_delta(zc: f32, m: f32, rest: f32, is_label: bool, is_best: bool) -> f32 {
    let s = 1.0 + rest;
    if (is_label && is_best) {
        return -rest / s;
    }
    return exp(zc - m) / s - select(0.0, 1.0, is_label);
}

fn softmax_loss(m: f32, rest: f32, z_label: f32) -> f32 {
    return (m - z_label) + ln_1p(rest);
}

// One round of the epoch permutation; twin of `Permutation::round` in src/rng.rs.
fn permutation_round(st: Step, value: u32) -> u32 {
    var x = value;
    for (var i = 0u; i < 4u; i++) {
        x = (x ^ st.key[i]) & st.perm_mask;
        x = (x * 0x2c1b3c6du) & st.perm_mask;
        x ^= x >> st.perm_shift;
        x = (x * 0x297a2d39u) & st.perm_mask;
        x ^= x >> st.perm_shift;
    }
    return x;
}

// The row at position p of the step's order (cycle walking keeps it below n).
fn batch_row(st: Step, p: u32) -> u32 {
    if (st.shuffled == 0u) {
        return p;
    }
    var x = permutation_round(st, p);
    while (x >= st.perm_n) {
        x = permutation_round(st, x);
    }
    return x;
}

// The index of this workgroup in a dispatch that may use two grid dimensions.
fn flat_group(id: vec3<u32>, count: vec3<u32>) -> u32 {
    return id.x + id.y * count.x;
}

// Shared by every downhill kernel. The host prepends the constants of one problem
// (src/gpu/kernels.rs, `ShaderConstants`):
//   D features; DP = D rounded up to a multiple of 4, the stride of rows in device memory
//   (zero padded); Q = DP / 4; K outputs; P = (D + 1) * K + 1 gradient entries (W, then b
//   as a last row, then the loss); MODEL and LOSS (codes below); SHARDS; WG invocations
//   per workgroup; the fused kernel's tile shape TILE_ROWS, COL_STRIDE, ROW_GROUPS, COLS,
//   KT (see gradient.wgsl).

const MODEL_LINEAR: u32 = 0u;
const MODEL_LOGISTIC: u32 = 1u;
const MODEL_SOFTMAX: u32 = 2u;
const LOSS_MSE: u32 = 0u;
const LOSS_BCE: u32 = 1u;
const LOSS_CE: u32 = 2u;
const NO_ROW: u32 = 0xffffffffu;

// One descent step (or one evaluation): which rows, in which order, and the learning rate.
// Mirrors `StepUniform` in src/gpu/kernels.rs field by field.
struct Step {
    pos_begin: u32,   // first position of the batch in the epoch's order
    pos_count: u32,   // rows in the batch
    shuffled: u32,    // 0: position p is row p; 1: row = permutation(p)
    perm_mask: u32,   // 2^m - 1, m = ceil(log2 n)
    perm_shift: u32,
    perm_n: u32,
    lr: f32,
    inv_count: f32,   // 1 / pos_count
    key: vec4<u32>,   // permutation round keys
    index: u32,       // step number within one run, reported on divergence
    groups: u32,      // workgroups per shard in the fused gradient dispatch
    _pad0: u32,
    _pad1: u32,
}

// The rows held by one storage buffer. Mirrors `ShardUniform`.
struct Shard {
    row_begin: u32,
    row_end: u32,
    index: u32,
    _pad: u32,
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

// log(1 + e^z) without overflow for large |z|.
fn softplus(z: f32) -> f32 {
    return max(z, 0.0) + log(1.0 + exp(-abs(z)));
}

// Loss and delta = d loss / dz for one output (linear, logistic). Twin of src/math.rs.
fn loss_delta_1(z: f32, y: f32) -> vec2<f32> {
    if (MODEL == MODEL_LINEAR) {
        let r = z - y;
        return vec2<f32>(r * r, 2.0 * r);
    }
    if (LOSS == LOSS_BCE) {
        return vec2<f32>(softplus(z) - y * z, sigmoid(z) - y);
    }
    // Logistic with squared error: dJ/dsigma * dsigma/dz.
    let s = sigmoid(z);
    let r = s - y;
    return vec2<f32>(r * r, 2.0 * r * s * (1.0 - s));
}

// Softmax cross-entropy pieces, given m = max_c z_c and s = sum_c exp(z_c - m).
fn softmax_delta(zc: f32, m: f32, s: f32, is_label: bool) -> f32 {
    return exp(zc - m) / s - select(0.0, 1.0, is_label);
}

fn softmax_loss(m: f32, s: f32, z_label: f32) -> f32 {
    return m + log(s) - z_label;
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

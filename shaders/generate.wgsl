// Synthetic problems generated in device memory, bit for bit the rows `Synthetic::generate`
// makes on the CPU (src/synth.rs has the recipe). Everything that decides a value is
// integer arithmetic or a comparison; the one rounding, of the exact 64-bit z to f32, is
// done by hand (round to nearest, ties to even) as Rust's `as f32` does it.
//
// generate_params: the true W and b as integers (W[j, c] at j * K + c, b_c at D * K + c).
// generate_rows: rows row_begin .. row_begin + rows of X (DP floats each) and y, for one shard.

struct Generator {
    seed_lo: u32,
    seed_hi: u32,
    row_begin: u32,    // global index of the shard's first row (the hash counter)
    rows: u32,         // rows in the shard
    weight_shift: u32, // r: true weights are integers over 256 * 2^r
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> gen: Generator;
@group(1) @binding(0) var<storage, read_write> x: array<f32>;
@group(1) @binding(1) var<storage, read_write> y: array<f32>;
@group(1) @binding(2) var<storage, read_write> w_int: array<i32>;
@group(1) @binding(3) var<storage, read> tables: array<f32>;  // 4096 logistic, 4096 Gumbel quantiles

const STREAM_X: u32 = 0u;
const STREAM_W: u32 = 1u;
const STREAM_B: u32 = 2u;
const STREAM_LABEL: u32 = 3u;
const QUANTILES: u32 = 4096u;

fn generator_hash(stream: u32, row: u32, column: u32) -> vec4<u32> {
    return cell_hash(vec2<u32>(gen.seed_lo, gen.seed_hi), stream, row, column);
}

fn byte_sum(w: u32) -> i32 {
    return i32((w & 0xffu) + ((w >> 8u) & 0xffu) + ((w >> 16u) & 0xffu) + (w >> 24u));
}

// Twin of `synth::irwin_hall`: the 12 bytes of three hash words, minus their mean.
fn irwin_hall(h: vec4<u32>) -> i32 {
    return byte_sum(h.x) + byte_sum(h.y) + byte_sum(h.z) - 1530;
}

// 64-bit two's complement integers as (low, high) words.
fn add_i32(acc: vec2<u32>, v: i32) -> vec2<u32> {
    let lo = acc.x + bitcast<u32>(v);
    let carry = select(0u, 1u, lo < acc.x);
    let extension = select(0u, 0xffffffffu, v < 0);
    return vec2<u32>(lo, acc.y + extension + carry);
}

// The low `bits` bits of (lo, hi), for 1 <= bits <= 63, as (lo, hi).
fn low_bits(v: vec2<u32>, bits: u32) -> vec2<u32> {
    if (bits >= 32u) {
        let hi_bits = bits - 32u;
        return vec2<u32>(v.x, select(v.y & ((1u << hi_bits) - 1u), 0u, hi_bits == 0u));
    }
    return vec2<u32>(v.x & ((1u << bits) - 1u), 0u);
}

fn less(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y < b.y || (a.y == b.y && a.x < b.x);
}

// The 64-bit integer v rounded to the nearest f32, ties to even.
fn i64_to_f32(v: vec2<u32>) -> f32 {
    let negative = (v.y & 0x80000000u) != 0u;
    var lo = v.x;
    var hi = v.y;
    if (negative) {
        lo = ~lo + 1u;
        hi = ~hi + select(0u, 1u, lo == 0u);
    }
    let sign = select(0u, 0x80000000u, negative);
    if (hi == 0u && lo < 0x1000000u) {
        // Below 2^24 every integer is exact.
        return bitcast<f32>(bitcast<u32>(f32(lo)) | sign);
    }
    // The leading bit p >= 24; keep 24 bits: m = v >> s with s = p - 23 in 1 ..= 39.
    var p = 31u - countLeadingZeros(lo);
    if (hi != 0u) {
        p = 63u - countLeadingZeros(hi);
    }
    let s = p - 23u;
    var m = 0u;
    if (s < 32u) {
        m = (lo >> s) | (hi << (32u - s));
    } else {
        m = hi >> (s - 32u);
    }
    let rest = low_bits(vec2<u32>(lo, hi), s);
    var half = vec2<u32>(0u, 0u);
    if (s - 1u < 32u) {
        half.x = 1u << (s - 1u);
    } else {
        half.y = 1u << (s - 33u);
    }
    let above = less(half, rest);
    let tie = rest.x == half.x && rest.y == half.y;
    if (above || (tie && (m & 1u) == 1u)) {
        m += 1u;
        if (m == 0x1000000u) {
            m = 0x800000u;
            p += 1u;
        }
    }
    return bitcast<f32>(sign | ((p + 127u) << 23u) | (m & 0x7fffffu));
}

@compute @workgroup_size(WG)
fn generate_params(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i >= (D + 1u) * K) {
        return;
    }
    let j = i / K;
    let c = i % K;
    if (j == D) {
        w_int[i] = irwin_hall(generator_hash(STREAM_B, c, 0u));
    } else {
        w_int[i] = irwin_hall(generator_hash(STREAM_W, j, c));
    }
}

@compute @workgroup_size(WG)
fn generate_rows(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) count: vec3<u32>,
) {
    // 2^-(16 + r), built from its bits: exact where a division might not be.
    let unit = bitcast<f32>((127u - 16u - gen.weight_shift) << 23u);
    for (var local = gid.x; local < gen.rows; local += count.x * WG) {
        let row = gen.row_begin + local;
        var z: array<vec2<u32>, K>;
        for (var c = 0u; c < K; c++) {
            z[c] = add_i32(vec2<u32>(0u, 0u), 256 * w_int[D * K + c]);
        }
        for (var j = 0u; j < D; j++) {
            let a = irwin_hall(generator_hash(STREAM_X, row, j));
            x[local * DP + j] = f32(a) * (1.0 / 256.0);
            for (var c = 0u; c < K; c++) {
                z[c] = add_i32(z[c], a * w_int[j * K + c]);
            }
        }
        var label = 0.0;
        if (MODEL == MODEL_LINEAR) {
            let e = irwin_hall(generator_hash(STREAM_LABEL, row, 0u));
            label = i64_to_f32(add_i32(z[0], e << (5u + gen.weight_shift))) * unit;
        } else if (MODEL == MODEL_LOGISTIC) {
            let l = tables[generator_hash(STREAM_LABEL, row, 0u).x % QUANTILES];
            label = select(0.0, 1.0, i64_to_f32(z[0]) * unit > -l);
        } else {
            var best = 0u;
            var best_score = 0.0;
            for (var c = 0u; c < K; c++) {
                let g = tables[QUANTILES + generator_hash(STREAM_LABEL, row, c).x % QUANTILES];
                let score = i64_to_f32(z[c]) * unit + g;
                if (c == 0u || score > best_score) {
                    best = c;
                    best_score = score;
                }
            }
            label = f32(best);
        }
        y[local] = label;
    }
}

// The conversion's own check (tests only): gen.rows integers, as (low, high) word pairs in
// w_int, rounded into x.
@compute @workgroup_size(WG)
fn convert_i64(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    if (i < gen.rows) {
        let v = vec2<u32>(bitcast<u32>(w_int[2u * i]), bitcast<u32>(w_int[2u * i + 1u]));
        x[i] = i64_to_f32(v);
    }
}

// Statistics of the rows a pass uses, for standardization and balanced class weights:
// per workgroup, per feature j, the sums of (x_j - center_j) and (x_j - center_j)^2, then
// the count of each label, then the count of rows. The host adds the workgroups' partials
// in f64 (a first pass with center 0 gives the means; a second, centered on them, the
// variances without cancellation).

@group(0) @binding(0) var<uniform> step: Step;
@group(1) @binding(0) var<storage, read> x: array<f32>;
@group(1) @binding(1) var<storage, read> y: array<f32>;
@group(1) @binding(2) var<uniform> shard: Shard;
@group(1) @binding(3) var<storage, read> w: array<f32>;
@group(2) @binding(0) var<storage, read_write> partials: array<f32>;
@group(2) @binding(1) var<uniform> setup: Setup;
@group(2) @binding(2) var<storage, read> center: array<f32>;

const M: u32 = 2u * D + CLASS_SLOTS + 1u;
const OWNED: u32 = (D + WG - 1u) / WG;

var<workgroup> included: array<u32, WG>;

@compute @workgroup_size(WG)
fn column_moments(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let rows = shard.row_end - shard.row_begin;
    let block = (rows + step.groups - 1u) / step.groups;
    let first = min(rows, wid.x * block);
    let last = min(rows, first + block);
    // Invocation t owns columns t, t + WG, ...
    var sums: array<f32, OWNED>;
    var squares: array<f32, OWNED>;
    var labels: array<f32, CLASS_SLOTS>;
    var count = 0.0;
    // A tile of WG rows at a time: invocation t decides whether row t of the tile is used
    // (one split hash per row) and counts its label; then every invocation reads its
    // columns of the used rows.
    for (var tile = first; tile < last; tile += WG) {
        let mine = tile + t;
        var use_row = 0u;
        if (mine < last && uses_row(step, setup, shard.row_begin + mine)) {
            use_row = 1u;
            labels[min(u32(y[mine]), CLASS_SLOTS - 1u)] += 1.0;
            count += 1.0;
        }
        included[t] = use_row;
        workgroupBarrier();
        for (var r = 0u; r < min(WG, last - tile); r++) {
            if (included[r] == 0u) {
                continue;
            }
            let local = tile + r;
            for (var m = 0u; m < OWNED; m++) {
                let j = t + m * WG;
                if (j < D) {
                    let v = x[local * DP + j] - center[j];
                    sums[m] += v;
                    squares[m] += v * v;
                }
            }
        }
        workgroupBarrier();
    }
    let out = (shard.index * step.groups + wid.x) * M;
    for (var m = 0u; m < OWNED; m++) {
        let j = t + m * WG;
        if (j < D) {
            partials[out + j] = sums[m];
            partials[out + D + j] = squares[m];
        }
    }
    for (var c = 0u; c < CLASS_SLOTS; c++) {
        let total = workgroup_sum(t, labels[c]);
        if (t == 0u) {
            partials[out + 2u * D + c] = total;
        }
    }
    let rows_used = workgroup_sum(t, count);
    if (t == 0u) {
        partials[out + 2u * D + CLASS_SLOTS] = rows_used;
    }
}

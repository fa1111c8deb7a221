// Predictions: z = xW + b for every row of one shard (or streamed chunk), written from
// the shard's first row on. The host turns z into values, probabilities and classes.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<uniform> shard: Shard;
@group(1) @binding(0) var<storage, read> params: array<f32>;
@group(1) @binding(1) var<storage, read_write> z: array<f32>;

// Dispatch: (row groups, K, 1). Invocation (row, class y) computes one z, so that its
// loop is over one row's features whatever the number of classes.
@compute @workgroup_size(WG)
fn predict_rows(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) count: vec3<u32>,
) {
    let rows = shard.row_end - shard.row_begin;
    let c = wid.y;
    for (var row = gid.x; row < rows; row += count.x * WG) {
        var acc = params[D * K + c];
        for (var j = 0u; j < D; j++) {
            acc = fma(x[row * DP + j], params[j * K + c], acc);
        }
        z[row * K + c] = acc;
    }
}

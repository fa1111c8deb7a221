// Unfused path, kernel 1 of 3: the forward pass Z = XW + b and the activation
// (identity, sigmoid, or softmax with the row max subtracted), one row per invocation.
// Kept as the device's own oracle for the fused kernel; limited to one shard.

@group(0) @binding(0) var<uniform> step: Step;
@group(1) @binding(0) var<storage, read> x: array<f32>;
@group(1) @binding(1) var<storage, read> y: array<f32>;
@group(1) @binding(2) var<uniform> shard: Shard;
@group(2) @binding(0) var<storage, read> params: array<f32>;
@group(2) @binding(1) var<storage, read_write> z: array<f32>;
@group(2) @binding(2) var<storage, read_write> yhat: array<f32>;

@compute @workgroup_size(WG)
fn forward(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) count: vec3<u32>,
) {
    let stride = count.x * WG;
    for (var i = gid.x; i < step.pos_count; i += stride) {
        let row = batch_row(step, step.pos_begin + i) - shard.row_begin;
        let zb = i * K;
        for (var c = 0u; c < K; c++) {
            var acc = params[D * K + c];
            for (var j = 0u; j < D; j++) {
                acc += x[row * DP + j] * params[j * K + c];
            }
            z[zb + c] = acc;
        }
        if (MODEL == MODEL_SOFTMAX) {
            var m = z[zb];
            for (var c = 1u; c < K; c++) {
                m = max(m, z[zb + c]);
            }
            var s = 0.0;
            for (var c = 0u; c < K; c++) {
                s += exp(z[zb + c] - m);
            }
            for (var c = 0u; c < K; c++) {
                yhat[zb + c] = exp(z[zb + c] - m) / s;
            }
        } else if (MODEL == MODEL_LOGISTIC) {
            yhat[zb] = sigmoid(z[zb]);
        } else {
            yhat[zb] = z[zb];
        }
    }
}

// Unfused path, kernel 2 of 3: per row, the loss and delta = dJ/dyhat * dyhat/dz,
// the chain rule written out as in the teaching notes.

@group(0) @binding(0) var<uniform> step: Step;
@group(1) @binding(0) var<storage, read> x: array<f32>;
@group(1) @binding(1) var<storage, read> y: array<f32>;
@group(1) @binding(2) var<uniform> shard: Shard;
@group(2) @binding(0) var<storage, read> z: array<f32>;
@group(2) @binding(1) var<storage, read> yhat: array<f32>;
@group(2) @binding(2) var<storage, read_write> delta: array<f32>;
@group(2) @binding(3) var<storage, read_write> row_loss: array<f32>;

@compute @workgroup_size(WG)
fn delta_rows(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) count: vec3<u32>,
) {
    let stride = count.x * WG;
    for (var i = gid.x; i < step.pos_count; i += stride) {
        let row = batch_row(step, step.pos_begin + i) - shard.row_begin;
        let label = y[row];
        let zb = i * K;
        if (MODEL == MODEL_SOFTMAX) {
            // loss = -log yhat_label, taken from z so that it stays finite.
            var m = z[zb];
            var best = 0u;
            for (var c = 1u; c < K; c++) {
                if (z[zb + c] > m) {
                    m = z[zb + c];
                    best = c;
                }
            }
            var rest = 0.0;
            for (var c = 0u; c < K; c++) {
                if (c != best) {
                    rest += exp(z[zb + c] - m);
                }
            }
            let yc = u32(label);
            row_loss[i] = softmax_loss(m, rest, z[zb + yc]);
            for (var c = 0u; c < K; c++) {
                delta[zb + c] = yhat[zb + c] - select(0.0, 1.0, c == yc);
            }
        } else {
            let p = yhat[zb];
            var dj_dyhat = 2.0 * (p - label);
            var dyhat_dz = 1.0;
            var loss = (p - label) * (p - label);
            if (MODEL == MODEL_LOGISTIC) {
                dyhat_dz = p * (1.0 - p);
                if (LOSS == LOSS_BCE) {
                    // dJ/dyhat = (p - y) / (p (1 - p)); the product with dyhat/dz is p - y,
                    // which stays exact where p (1 - p) underflows.
                    dj_dyhat = p - label;
                    dyhat_dz = 1.0;
                    loss = bce_loss_delta(z[zb], label).x;
                }
            }
            delta[zb] = dj_dyhat * dyhat_dz;
            row_loss[i] = loss;
        }
    }
}

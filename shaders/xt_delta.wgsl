// Unfused path, kernel 3 of 3: the gradient and loss reductions. Workgroup o computes
// entry o of (X^T delta, sum delta, sum loss) / n with a tree reduction in workgroup
// memory, in a fixed order. (Unweighted, every row: the oracle for the plain case.)

@group(0) @binding(0) var<uniform> step: Step;
@group(1) @binding(0) var<storage, read> x: array<f32>;
@group(1) @binding(1) var<storage, read> y: array<f32>;
@group(1) @binding(2) var<uniform> shard: Shard;
@group(2) @binding(0) var<storage, read> delta: array<f32>;
@group(2) @binding(1) var<storage, read> row_loss: array<f32>;
@group(2) @binding(2) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(WG)
fn xt_delta(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) count: vec3<u32>,
) {
    let o = flat_group(wid, count);
    if (o > P_LOSS) {
        return;
    }
    let j = o / K;
    let c = o % K;
    var sum = 0.0;
    for (var i = t; i < step.pos_count; i += WG) {
        if (o == P_LOSS) {
            sum += row_loss[i];
        } else if (j == D) {
            sum += delta[i * K + c];
        } else {
            let row = batch_row(step, step.pos_begin + i) - shard.row_begin;
            sum += x[row * DP + j] * delta[i * K + c];
        }
    }
    let total = workgroup_sum(t, sum);
    if (t == 0u) {
        grad[o] = total / f32(step.pos_count);
    }
}

// Second pass of the fused gradient: entry o of the gradient (and the loss, o = P - 1) is
// the sum of the partials of every workgroup of every shard, added in a fixed order and
// scaled by 1 / rows in the batch.

@group(0) @binding(0) var<uniform> step: Step;
@group(1) @binding(0) var<storage, read> partials: array<f32>;
@group(1) @binding(1) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(WG)
fn reduce_partials(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) count: vec3<u32>,
) {
    let o = gid.x + gid.y * count.x * WG;
    if (o >= P) {
        return;
    }
    let rows = SHARDS * step.groups;
    var sum = 0.0;
    for (var w = 0u; w < rows; w++) {
        sum += partials[w * P + o];
    }
    grad[o] = sum * step.inv_count;
}

// Second pass of the fused gradient: entry o is the sum of the partials of every workgroup
// of every shard, added in a fixed order. The gradient and the loss are divided by the sum
// of the weights (a weighted mean; 0 when no row had weight), the held-out rows' loss by
// theirs; the metric sums after them stay sums.

@group(0) @binding(0) var<uniform> step: Step;
@group(1) @binding(0) var<storage, read> partials: array<f32>;
@group(1) @binding(1) var<storage, read_write> grad: array<f32>;

// Kahan's compensated sum over the partials, in their order.
fn total(o: u32) -> f32 {
    let rows = SHARDS * step.groups;
    var sum = 0.0;
    var comp = 0.0;
    for (var w = 0u; w < rows; w++) {
        let v = partials[w * P + o] - comp;
        let next = sum + v;
        comp = (next - sum) - v;
        sum = next;
    }
    return sum - comp;
}

@compute @workgroup_size(WG)
fn reduce_partials(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) count: vec3<u32>,
) {
    let o = gid.x + gid.y * count.x * WG;
    if (o >= P) {
        return;
    }
    let sum = total(o);
    var weight_entry = P_WEIGHT;
    if (o == P_HELD_OUT) {
        weight_entry = P_HELD_OUT + 1u;
    } else if (o > P_LOSS) {
        grad[o] = sum;
        return;
    }
    let weight = total(weight_entry);
    grad[o] = select(0.0, sum / weight, weight > 0.0);
}

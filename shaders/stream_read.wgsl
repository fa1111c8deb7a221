// The floor: one streaming read of a shard of X and nothing else. Workgroup w reads a
// contiguous block, four floats per load, neighbouring invocations on neighbouring words;
// one partial per workgroup keeps the compiler from dropping the reads.

@group(0) @binding(0) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(WG)
fn stream_read(
    @builtin(local_invocation_index) t: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) count: vec3<u32>,
) {
    let n = arrayLength(&x);
    let block = (n + count.x - 1u) / count.x;
    let end = min(n, (wid.x + 1u) * block);
    var sum = vec4<f32>(0.0);
    for (var e = wid.x * block + t; e < end; e += WG) {
        sum += x[e];
    }
    let total = workgroup_sum(t, sum.x + sum.y + sum.z + sum.w);
    if (t == 0u) {
        partials[wid.x] = total;
    }
}

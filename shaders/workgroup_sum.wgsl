// The workgroup reduction every kernel that adds over its invocations shares: a tree in a
// fixed order, so the same values give the same sum on every run. The host appends it to
// the kernels that call `workgroup_sum` (`ShaderConstants::source` in
// src/backend/gpu/constants.rs); they may use `red` for reductions of their own too.

var<workgroup> red: array<f32, WG>;

// Adds `value` over the workgroup; every invocation gets the sum. Call it from uniform
// control flow (every invocation of the workgroup, or none).
fn workgroup_sum(t: u32, value: f32) -> f32 {
    red[t] = value;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if (t < half) {
            red[t] += red[t + half];
        }
        workgroupBarrier();
    }
    let sum = red[0];
    workgroupBarrier();
    return sum;
}

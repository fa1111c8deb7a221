// The descent step theta <- theta - lr * grad, in one workgroup so that it can refuse the
// whole step when any entry of the gradient, the loss or the new parameters is not
// finite. It then records the step in `status` and leaves the parameters as they were;
// later steps of the same submission see the flag and do nothing.
// status[0]: 0 while finite, 1 after divergence; status[1]: the index of the step.

@group(0) @binding(0) var<uniform> step: Step;
@group(1) @binding(0) var<storage, read_write> params: array<f32>;
@group(1) @binding(1) var<storage, read> grad: array<f32>;
@group(1) @binding(2) var<storage, read_write> status: array<u32>;

var<workgroup> failed: atomic<u32>;

@compute @workgroup_size(WG)
fn update(@builtin(local_invocation_index) t: u32) {
    if (t == 0u) {
        atomicStore(&failed, status[0]);
    }
    workgroupBarrier();
    for (var o = t; o < P; o += WG) {
        var ok = is_finite(grad[o]);
        if (o + 1u < P) {
            ok = ok && is_finite(params[o] - step.lr * grad[o]);
        }
        if (!ok) {
            atomicOr(&failed, 1u);
        }
    }
    workgroupBarrier();
    if (atomicLoad(&failed) != 0u) {
        if (t == 0u && status[0] == 0u) {
            status[0] = 1u;
            status[1] = step.index;
        }
        return;
    }
    for (var o = t; o + 1u < P; o += WG) {
        params[o] = params[o] - step.lr * grad[o];
    }
}

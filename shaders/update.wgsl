// The descent step. It refuses the whole step when any entry of the gradient, the loss or
// the new parameters is not finite: it then records the step in `status` and leaves
// everything as it was; later steps of the submission see the flag and do nothing.
// status[0]: 0 while finite, 1 after divergence; status[1]: the first diverging step's
// index (the host clears it to 0xffffffff). Two forms: `update`, one workgroup that loops
// over the entries (few of them); or three dispatches of an invocation per entry,
// `update_check`, `update_apply` and `update_params` (many: a device's loop limit, or a
// single workgroup's time, would not hold them).
//
// The optimizer's parameters `theta` live in standardized space when setup.standardize
// (see `optim::Standardization`); `params` are the raw-space ones every gradient pass reads,
// rewritten here after each step. The gradient arrives in raw space and is turned into
// theta's: dJ/dW'_j = s_j (dJ/dW_j - mu_j dJ/db). Then L2 (on W), the optimizer (PyTorch's
// SGD, momentum, Nesterov, Adam), and the L1 soft-threshold (on W). Twin of
// `UpdateRule::apply` in src/optim.rs.

@group(0) @binding(0) var<uniform> step: Step;
@group(1) @binding(0) var<storage, read_write> params: array<f32>;  // raw space, (D + 1) * K
@group(1) @binding(1) var<storage, read> grad: array<f32>;
@group(1) @binding(2) var<storage, read_write> status: array<atomic<u32>, 2>;
@group(1) @binding(3) var<storage, read_write> theta: array<f32>;   // the optimizer's
@group(1) @binding(4) var<storage, read_write> state: array<f32>;   // b, or m then v
@group(1) @binding(5) var<storage, read> moments: array<f32>;       // mu (D), then s (D)
@group(1) @binding(6) var<uniform> setup: Setup;

const N: u32 = (D + 1u) * K;


// The gradient of entry o in theta's space, with L2 on W; zero for a fixed bias (which
// every optimizer then leaves where it is: its state stays zero too).
fn gradient(o: u32) -> f32 {
    if (o >= D * K && setup.fixed_bias == 1u) {
        return 0.0;
    }
    var g = grad[o];
    if (o < D * K) {
        if (setup.standardize == 1u) {
            let j = o / K;
            let c = o % K;
            g = moments[D + j] * (g - moments[j] * grad[D * K + c]);
        }
        g += setup.l2 * theta[o];
    }
    return g;
}

// The new theta[o] and optimizer state for gradient g: (theta, state 0, state 1).
fn stepped(o: u32, g: f32) -> vec3<f32> {
    var t = theta[o];
    var s0 = 0.0;
    var s1 = 0.0;
    if (setup.optimizer == OPT_SGD) {
        t -= step.lr * g;
    } else if (setup.optimizer == OPT_MOMENTUM || setup.optimizer == OPT_NESTEROV) {
        s0 = setup.momentum * state[o] + g;
        if (setup.optimizer == OPT_MOMENTUM) {
            t -= step.lr * s0;
        } else {
            t -= step.lr * (g + setup.momentum * s0);
        }
    } else {
        s0 = setup.beta1 * state[o] + (1.0 - setup.beta1) * g;
        s1 = setup.beta2 * state[N + o] + (1.0 - setup.beta2) * g * g;
        t -= step.adam_step * s0 / (sqrt(s1) / step.adam_root + setup.eps);
    }
    if (o < D * K && setup.l1 > 0.0) {
        let tau = step.lr * setup.l1;
        t = select(select(0.0, t + tau, t < -tau), t - tau, t > tau);
    }
    return vec3<f32>(t, s0, s1);
}

var<workgroup> failed: atomic<u32>;
var<workgroup> verdict: u32;

// The raw-space parameter of entry o, from theta (every theta written).
fn raw_param(o: u32) -> f32 {
    if (setup.standardize == 0u) {
        return theta[o];
    } else if (o < D * K) {
        return moments[D + o / K] * theta[o];
    }
    let c = o - D * K;
    var shift = 0.0;
    for (var j = 0u; j < D; j++) {
        shift += moments[j] * moments[D + j] * theta[j * K + c];
    }
    return theta[o] - shift;
}

@compute @workgroup_size(WG)
fn update(@builtin(local_invocation_index) i: u32) {
    if (i == 0u) {
        atomicStore(&failed, atomicLoad(&status[0]));
    }
    workgroupBarrier();
    for (var o = i; o < N; o += WG) {
        let g = gradient(o);
        if (!is_finite(g) || !is_finite(stepped(o, g).x)) {
            atomicOr(&failed, 1u);
        }
    }
    if (i == 0u && !is_finite(grad[P_LOSS])) {
        atomicOr(&failed, 1u);
    }
    workgroupBarrier();
    if (i == 0u) {
        verdict = atomicLoad(&failed);
    }
    if (workgroupUniformLoad(&verdict) != 0u) {
        if (i == 0u && atomicLoad(&status[0]) == 0u) {
            atomicStore(&status[0], 1u);
            atomicMin(&status[1], step.index);
        }
        return;
    }
    for (var o = i; o < N; o += WG) {
        apply(o);
    }
    workgroupBarrier();
    for (var o = i; o < N; o += WG) {
        params[o] = raw_param(o);
    }
}

// The new theta and optimizer state of entry o.
fn apply(o: u32) {
    let next = stepped(o, gradient(o));
    theta[o] = next.x;
    if (setup.optimizer != OPT_SGD) {
        state[o] = next.y;
    }
    if (setup.optimizer == OPT_ADAM) {
        state[N + o] = next.z;
    }
}

// The entry of this invocation in a dispatch of (x, y) workgroups.
fn entry(gid: vec3<u32>, count: vec3<u32>) -> u32 {
    return gid.x + gid.y * count.x * WG;
}

@compute @workgroup_size(WG)
fn update_check(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) count: vec3<u32>,
) {
    let o = entry(gid, count);
    if (o >= N || atomicLoad(&status[0]) != 0u) {
        return;
    }
    let g = gradient(o);
    if (!is_finite(g) || !is_finite(stepped(o, g).x) || (o == 0u && !is_finite(grad[P_LOSS]))) {
        atomicOr(&status[0], 1u);
        atomicMin(&status[1], step.index);
    }
}

@compute @workgroup_size(WG)
fn update_apply(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) count: vec3<u32>,
) {
    let o = entry(gid, count);
    if (o >= N || atomicLoad(&status[0]) != 0u) {
        return;
    }
    apply(o);
}

// The raw-space parameters the gradient passes read.
@compute @workgroup_size(WG)
fn update_params(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) count: vec3<u32>,
) {
    let o = entry(gid, count);
    if (o >= N || atomicLoad(&status[0]) != 0u) {
        return;
    }
    params[o] = raw_param(o);
}

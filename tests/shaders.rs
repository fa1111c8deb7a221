//! Every WGSL kernel parsed and validated by naga (wgpu's own front end and validator) over
//! a grid of shader constants, and the uniform structs' layouts in WGSL against their Rust
//! mirrors: a syntax, type or layout error fails here, on a machine without any GPU.

use downhill::custom::{CustomLoss, LossKind};
use downhill::gpu::curvature::SegmentUniform;
use downhill::gpu::kernels::{
    GeneratorUniform, SetupUniform, ShaderConstants, ShardUniform, SliceUniform, StepUniform,
    Tuning,
};
use downhill::{Loss, Model, Objective};

/// Parses and validates `source`, or panics with naga's report naming `what`.
fn validate(what: &str, source: &str) -> naga::Module {
    let module = naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(source)));
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::default(),
    );
    if let Err(e) = validator.validate(&module) {
        panic!("{what}: {}", e.emit_to_string(source));
    }
    module
}

/// The objectives the grid covers: every built-in loss, and a custom loss of each kind.
fn objectives() -> Vec<Objective> {
    let output = CustomLoss::parse("(z - y)^2 / 2", LossKind::Output)
        .unwrap()
        .register();
    let class = CustomLoss::parse("-t * ln(p)", LossKind::Class)
        .unwrap()
        .register();
    let mut all = vec![
        Objective::linear(),
        Objective::logistic(),
        Objective::new(Model::Logistic, Some(Loss::Mse), 1).unwrap(),
        Objective::new(Model::Linear, Some(output), 1).unwrap(),
        Objective::new(Model::Softmax, Some(class), 5).unwrap(),
    ];
    for k in [2, 3, 4, 17, 33, 100] {
        all.push(Objective::softmax(k).unwrap());
    }
    all
}

#[test]
fn every_kernel_parses_and_validates_over_a_grid_of_constants() {
    let mut checked = 0;
    for objective in objectives() {
        for d in [1, 3, 4, 5, 64, 513, 2048] {
            for (tuning_name, tuning) in [("gpu", Tuning::GPU), ("cpu", Tuning::CPU)] {
                for loop_limit in [None, Some(65_535)] {
                    for shards in [1, 3] {
                        // lavapipe's workgroup memory; a shape that does not fit is refused
                        // with a named limit, which is not the shader's business.
                        let Ok(constants) =
                            ShaderConstants::new(&objective, d, shards, tuning, 32_768, loop_limit)
                        else {
                            continue;
                        };
                        for (kernel, source) in constants.all_sources() {
                            let what = format!(
                                "{kernel}.wgsl for {objective}, d = {d}, {tuning_name} tuning, \
                                 loop limit {loop_limit:?}, {shards} shards"
                            );
                            validate(&what, &source);
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "only {checked} kernels were checked");
    println!("{checked} kernel sources validated");
    validate(
        "loop_probe.wgsl",
        include_str!("../shaders/loop_probe.wgsl"),
    );
}

/// The named type's members (name, byte offset) and its size in bytes, as naga lays it out.
fn layout(module: &naga::Module, name: &str) -> (Vec<(String, u32)>, u32) {
    let (_, ty) = module
        .types
        .iter()
        .find(|(_, t)| t.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no struct {name} in the kernels"));
    match &ty.inner {
        naga::TypeInner::Struct { members, span } => (
            members
                .iter()
                .map(|m| (m.name.clone().unwrap_or_default(), m.offset))
                .collect(),
            *span,
        ),
        other => panic!("{name} is not a struct: {other:?}"),
    }
}

/// Each WGSL member at the offset of its Rust namesake, no member the Rust struct lacks
/// (padding aside), and the same size.
macro_rules! same_layout {
    ($module:expr, $wgsl:literal, $rust:ty, [$($field:ident),* $(,)?]) => {{
        let (members, span) = layout($module, $wgsl);
        let rust: Vec<(&str, usize)> = vec![$((stringify!($field), std::mem::offset_of!($rust, $field))),*];
        assert_eq!(span as usize, std::mem::size_of::<$rust>(), "{} size", $wgsl);
        let named: Vec<&(String, u32)> = members.iter().filter(|(n, _)| !n.starts_with('_')).collect();
        assert_eq!(named.len(), rust.len(), "{}: members {:?} against {:?}", $wgsl, named, rust);
        for ((name, offset), (rust_name, rust_offset)) in named.iter().zip(&rust) {
            assert_eq!(name, rust_name, "{}: member order", $wgsl);
            assert_eq!(*offset as usize, *rust_offset, "{}.{name}: offset", $wgsl);
        }
    }};
}

#[test]
fn uniform_structs_are_laid_out_as_their_rust_mirrors() {
    let constants = ShaderConstants::new(
        &Objective::softmax(3).unwrap(),
        8,
        1,
        Tuning::GPU,
        32_768,
        None,
    )
    .unwrap();
    let sources = constants.all_sources();
    let module_of = |kernel: &str| {
        let (_, source) = sources.iter().find(|(k, _)| *k == kernel).unwrap();
        validate(kernel, source)
    };
    let gradient = module_of("gradient");
    same_layout!(
        &gradient,
        "Step",
        StepUniform,
        [
            pos_begin, pos_count, shuffled, perm_mask, perm_shift, perm_n, lr, rows, key, index,
            groups, adam_step, adam_root,
        ]
    );
    same_layout!(
        &gradient,
        "Setup",
        SetupUniform,
        [
            optimizer,
            momentum,
            beta1,
            beta2,
            eps,
            l2,
            l1,
            standardize,
            split_seed,
            split_threshold,
            weighted,
            fixed_bias,
            pad,
        ]
    );
    same_layout!(
        &gradient,
        "Shard",
        ShardUniform,
        [row_begin, row_end, index]
    );
    same_layout!(
        &gradient,
        "Slice",
        SliceUniform,
        [first_tile, end_tile, accumulate]
    );
    same_layout!(
        &module_of("generate"),
        "Generator",
        GeneratorUniform,
        [seed_lo, seed_hi, row_begin, rows, weight_shift]
    );
    same_layout!(
        &module_of("curvature"),
        "Segment",
        SegmentUniform,
        [first, rows, block_rows, blocks]
    );
}

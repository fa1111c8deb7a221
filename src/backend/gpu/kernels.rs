//! The host side of the kernels: bind-group layouts and pipelines, built once per session
//! (the rarely used ones on first use). The uniform structs they read are in `uniforms.rs`,
//! the constants written into their source in `constants.rs`.

use std::sync::OnceLock;

use super::context::GpuContext;
use crate::error::{Error, Result};

use super::constants::{
    CURVATURE, DELTA, FORWARD, GENERATE, GRADIENT, MOMENTS, PREDICT, PRODUCTS, REDUCE, STREAM_READ,
    UPDATE, XT_DELTA,
};
pub use super::constants::{Mode, Products, ROWS_TRAINING_AND_HELD_OUT, ShaderConstants};
pub use super::uniforms::{
    GeneratorUniform, SetupUniform, ShardUniform, SliceUniform, StepUniform,
};
pub use crate::backend::options::Tuning;

/// The environment variable that forces the kernels' tuning on any adapter: `gpu` (tiles
/// staged in workgroup memory, wide workgroups) or `cpu` (rows read in place), so that the
/// GPU's kernels run on lavapipe too.
pub const TUNING_VAR: &str = "DOWNHILL_GPU_TUNING";

impl Tuning {
    /// The default for an adapter: the one [`TUNING_VAR`] names when it is set (any other
    /// value is refused, naming it), else by the adapter's type.
    pub fn for_device(info: &wgpu::AdapterInfo) -> Result<Tuning> {
        if let Some(value) = std::env::var_os(TUNING_VAR) {
            let value = value.to_string_lossy();
            let tuning = match value.trim() {
                "gpu" => Tuning::GPU,
                "cpu" => Tuning::CPU,
                other => return Err(Error::option(TUNING_VAR, other, "expected gpu or cpu")),
            };
            log::info!(
                "{TUNING_VAR}={}: the kernels' {} tuning",
                value.trim(),
                value.trim()
            );
            return Ok(tuning);
        }
        Ok(match info.device_type {
            wgpu::DeviceType::Cpu => Tuning::CPU,
            _ => Tuning::GPU,
        })
    }
}

/// How a kernel sees one binding.
#[derive(Clone, Copy)]
pub(super) enum Binding {
    /// A uniform bound with a dynamic offset (the step records).
    StepUniform,
    /// The same for the slice records.
    SliceUniform,
    Uniform,
    Storage {
        read_only: bool,
    },
}

pub(super) fn bind_group_layout(
    device: &wgpu::Device,
    label: &str,
    bindings: &[Binding],
) -> wgpu::BindGroupLayout {
    let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupLayoutEntry {
            binding: i as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: match *b {
                Binding::StepUniform => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: true,
                    min_binding_size: wgpu::BufferSize::new(size_of::<StepUniform>() as u64),
                },
                Binding::SliceUniform => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: true,
                    min_binding_size: wgpu::BufferSize::new(size_of::<SliceUniform>() as u64),
                },
                Binding::Uniform => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                Binding::Storage { read_only } => wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
            },
            count: None,
        })
        .collect();
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &entries,
    })
}

pub(super) const RO: Binding = Binding::Storage { read_only: true };
pub(super) const RW: Binding = Binding::Storage { read_only: false };

/// Bind group layouts. Group 0 is always the step; group 1 the shard (x, y, its rows) for
/// kernels that read X; the last group the kernel's own buffers.
pub struct Layouts {
    pub step: wgpu::BindGroupLayout,
    pub shard: wgpu::BindGroupLayout,
    /// gradient: params (read), partials (write), setup, class weights (read), the kept
    /// deltas (write, then read; see [`Mode`]).
    pub gradient: wgpu::BindGroupLayout,
    /// The gradient's slice record (dynamic offset).
    pub slice: wgpu::BindGroupLayout,
    /// reduce: partials (read), grad (write).
    pub reduce: wgpu::BindGroupLayout,
    /// update: params, grad (read), status, theta, state, moments (read), setup.
    pub update: wgpu::BindGroupLayout,
    /// moments: partials (write), setup, center (read).
    pub moments: wgpu::BindGroupLayout,
    /// forward: params (read), z, ŷ (write).
    pub forward: wgpu::BindGroupLayout,
    /// delta: z, ŷ (read), δ, row loss (write).
    pub delta: wgpu::BindGroupLayout,
    /// xt_delta: δ, row loss (read), grad (write).
    pub xt_delta: wgpu::BindGroupLayout,
    /// stream_read: a shard of X (read), partials (write).
    pub stream_read: wgpu::BindGroupLayout,
    /// predict: params (read), z (write).
    pub predict: wgpu::BindGroupLayout,
}

/// The compiled pipelines of one problem: those of every fit at once, the others (the
/// unfused oracle, predictions, the memory floor, the step in three dispatches) on first
/// use, so that a session of a new shape compiles only what it runs.
pub struct Kernels {
    pub constants: ShaderConstants,
    pub layouts: Layouts,
    /// The fused gradient; where the constants split the classes
    /// ([`ShaderConstants::splits_classes`]), the dispatch that computes the deltas
    /// ([`Mode::DeltasOut`] or [`Mode::ZIn`]).
    pub gradient: wgpu::ComputePipeline,
    /// Where z is a tiled product ([`Products::TiledBoth`]), the split gradient's
    /// first dispatch (`logits_tiles`); `gradient` is then in [`Mode::ZIn`].
    pub logits: Option<wgpu::ComputePipeline>,
    /// The last dispatch of a split gradient: [`Mode::DeltasIn`], or the tiled product
    /// where [`ShaderConstants::products`] says so.
    pub deltas_in: Option<wgpu::ComputePipeline>,
    pub reduce: wgpu::ComputePipeline,
    /// The descent step in one workgroup, for few parameters (`shaders/update.wgsl`).
    pub update_one: wgpu::ComputePipeline,
    /// Column sums and label counts (standardization, balanced class weights).
    pub moments: wgpu::ComputePipeline,
    update_split: OnceLock<[wgpu::ComputePipeline; 3]>,
    unfused: OnceLock<Unfused>,
    predict: OnceLock<wgpu::ComputePipeline>,
    stream_read: OnceLock<wgpu::ComputePipeline>,
    curvature: OnceLock<Curvature>,
}

/// The curvature passes' kernels (`shaders/curvature.wgsl`) and their own bind group:
/// params, setup, class weights, the direction (read), coefficients, partials (write),
/// the segment record.
pub struct Curvature {
    pub layout: wgpu::BindGroupLayout,
    pub curvature_rows: wgpu::ComputePipeline,
    pub direction_rows: wgpu::ComputePipeline,
    pub hessian_tiles: wgpu::ComputePipeline,
    pub product_columns: wgpu::ComputePipeline,
}

/// The unfused gradient's three kernels: forward, delta, xt_delta.
pub struct Unfused {
    pub forward: wgpu::ComputePipeline,
    pub delta: wgpu::ComputePipeline,
    pub xt_delta: wgpu::ComputePipeline,
}

/// `cell`'s pipelines, made by `make` on first use and checked for validation errors.
fn built<'k, T>(
    ctx: &GpuContext,
    cell: &'k OnceLock<T>,
    what: &str,
    make: impl FnOnce() -> T,
) -> Result<&'k T> {
    if let Some(built) = cell.get() {
        return Ok(built);
    }
    let scope = ctx.device().push_error_scope(wgpu::ErrorFilter::Validation);
    let made = make();
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(Error::gpu(format!("building the {what} kernels: {e}")));
    }
    ctx.check()?;
    Ok(cell.get_or_init(|| made))
}

impl Kernels {
    /// The kernels for `constants`, built once per device and shared by its sessions.
    pub fn shared(ctx: &GpuContext, constants: ShaderConstants) -> Result<std::sync::Arc<Self>> {
        if let Some(k) = ctx.shared(|k: &Kernels| k.constants == constants) {
            return Ok(k);
        }
        let kernels = std::sync::Arc::new(Self::new(ctx, constants)?);
        ctx.share(std::sync::Arc::clone(&kernels));
        Ok(kernels)
    }

    pub fn new(ctx: &GpuContext, constants: ShaderConstants) -> Result<Self> {
        let device = ctx.device();
        let layouts = Layouts {
            step: bind_group_layout(device, "downhill.step", &[Binding::StepUniform]),
            shard: bind_group_layout(device, "downhill.shard", &[RO, RO, Binding::Uniform, RO]),
            gradient: bind_group_layout(
                device,
                "downhill.gradient",
                &[RO, RW, Binding::Uniform, RO, RW],
            ),
            slice: bind_group_layout(device, "downhill.slice", &[Binding::SliceUniform]),
            reduce: bind_group_layout(device, "downhill.reduce", &[RO, RW]),
            update: bind_group_layout(
                device,
                "downhill.update",
                &[RW, RO, RW, RW, RW, RO, Binding::Uniform],
            ),
            moments: bind_group_layout(device, "downhill.moments", &[RW, Binding::Uniform, RO]),
            forward: bind_group_layout(device, "downhill.forward", &[RO, RW, RW]),
            delta: bind_group_layout(device, "downhill.delta", &[RO, RO, RW, RW]),
            xt_delta: bind_group_layout(device, "downhill.xt_delta", &[RO, RO, RW]),
            stream_read: bind_group_layout(device, "downhill.stream_read", &[RO, RW]),
            predict: bind_group_layout(device, "downhill.predict", &[RO, RW]),
        };
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let build = |name: &str, text: &str, entry: &str, groups: &[&wgpu::BindGroupLayout]| {
            constants.pipeline(device, name, text, entry, groups)
        };
        let (step, shard) = (&layouts.step, &layouts.shard);
        let gradient_groups = [step, shard, &layouts.gradient, &layouts.slice];
        let split = constants.splits_classes();
        let gradient_in = |name: &str, mode: Mode| {
            let kernel = (GRADIENT, mode);
            constants.pipeline_in(device, name, kernel, "gradient_partials", &gradient_groups)
        };
        let tiled = |entry: &str| {
            let kernel = (PRODUCTS, Mode::Fused);
            constants.pipeline_in(device, entry, kernel, entry, &gradient_groups)
        };
        let products = constants.products;
        let gradient = match (split, products) {
            (false, _) => gradient_in("gradient", Mode::Fused),
            (true, Products::TiledBoth) => gradient_in("gradient_z_in", Mode::ZIn),
            (true, _) => gradient_in("gradient_deltas_out", Mode::DeltasOut),
        };
        let logits = (products == Products::TiledBoth).then(|| tiled("logits_tiles"));
        let deltas_in = split.then(|| match products {
            Products::Untiled => gradient_in("gradient_deltas_in", Mode::DeltasIn),
            Products::TiledXt | Products::TiledBoth => tiled("xt_delta_tiles"),
        });
        let reduce = build(
            "reduce",
            REDUCE,
            "reduce_partials",
            &[step, &layouts.reduce],
        );
        let update_one = build("update", UPDATE, "update", &[step, &layouts.update]);
        let moments = build(
            "moments",
            MOMENTS,
            "column_moments",
            &[step, shard, &layouts.moments],
        );
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::gpu(format!("building the kernels: {e}")));
        }
        ctx.check()?;
        Ok(Kernels {
            constants,
            layouts,
            gradient,
            logits,
            deltas_in,
            reduce,
            update_one,
            moments,
            update_split: OnceLock::new(),
            unfused: OnceLock::new(),
            predict: OnceLock::new(),
            stream_read: OnceLock::new(),
            curvature: OnceLock::new(),
        })
    }

    fn build(
        &self,
        ctx: &GpuContext,
        name: &str,
        kernel: &str,
        entry: &str,
        groups: &[&wgpu::BindGroupLayout],
    ) -> wgpu::ComputePipeline {
        self.constants
            .pipeline(ctx.device(), name, kernel, entry, groups)
    }

    /// The descent step's three dispatches, for many parameters: check, apply, params.
    pub fn update_split(&self, ctx: &GpuContext) -> Result<&[wgpu::ComputePipeline; 3]> {
        let groups = [&self.layouts.step, &self.layouts.update];
        built(ctx, &self.update_split, "update", || {
            ["update_check", "update_apply", "update_params"]
                .map(|entry| self.build(ctx, entry, UPDATE, entry, &groups))
        })
    }

    /// The unfused gradient's kernels (the oracle the fused one is tested against).
    pub fn unfused(&self, ctx: &GpuContext) -> Result<&Unfused> {
        let l = &self.layouts;
        built(ctx, &self.unfused, "unfused", || Unfused {
            forward: self.build(
                ctx,
                "forward",
                FORWARD,
                "forward",
                &[&l.step, &l.shard, &l.forward],
            ),
            delta: self.build(
                ctx,
                "delta",
                DELTA,
                "delta_rows",
                &[&l.step, &l.shard, &l.delta],
            ),
            xt_delta: self.build(
                ctx,
                "xt_delta",
                XT_DELTA,
                "xt_delta",
                &[&l.step, &l.shard, &l.xt_delta],
            ),
        })
    }

    /// z = xW + b of each row of a shard (predictions).
    pub fn predict(&self, ctx: &GpuContext) -> Result<&wgpu::ComputePipeline> {
        let groups = [&self.layouts.shard, &self.layouts.predict];
        built(ctx, &self.predict, "predict", || {
            self.build(ctx, "predict", PREDICT, "predict_rows", &groups)
        })
    }

    /// The Newton solvers' Hessian and Hessian-vector kernels.
    pub fn curvature(&self, ctx: &GpuContext) -> Result<&Curvature> {
        built(ctx, &self.curvature, "curvature", || {
            let layout = bind_group_layout(
                ctx.device(),
                "downhill.curvature",
                &[RO, Binding::Uniform, RO, RO, RW, RW, Binding::Uniform],
            );
            let groups = [&self.layouts.step, &self.layouts.shard, &layout];
            let build = |entry: &str| self.build(ctx, entry, CURVATURE, entry, &groups);
            Curvature {
                curvature_rows: build("curvature_rows"),
                direction_rows: build("direction_rows"),
                hessian_tiles: build("hessian_tiles"),
                product_columns: build("product_columns"),
                layout,
            }
        })
    }

    /// The memory floor: one streaming read of X (benchmarks only).
    pub fn stream_read(&self, ctx: &GpuContext) -> Result<&wgpu::ComputePipeline> {
        let groups = [&self.layouts.stream_read];
        built(ctx, &self.stream_read, "stream_read", || {
            self.build(ctx, "stream_read", STREAM_READ, "stream_read", &groups)
        })
    }
}

/// The synthetic-data kernels (built only for synthetic problems).
pub struct GeneratorKernels {
    /// The uniform.
    pub uniform: wgpu::BindGroupLayout,
    /// x, y, the true parameters as integers (read-write), the quantile tables (read).
    pub buffers: wgpu::BindGroupLayout,
    pub params: wgpu::ComputePipeline,
    pub rows: wgpu::ComputePipeline,
    /// The 64-bit to f32 rounding alone, for its test.
    pub convert: wgpu::ComputePipeline,
}

impl GeneratorKernels {
    pub fn new(ctx: &GpuContext, constants: &ShaderConstants) -> Result<Self> {
        let device = ctx.device();
        let uniform = bind_group_layout(device, "downhill.generator", &[Binding::Uniform]);
        let buffers = bind_group_layout(device, "downhill.generated", &[RW, RW, RW, RO]);
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let groups = [&uniform, &buffers];
        let params = constants.pipeline(
            device,
            "generate_params",
            GENERATE,
            "generate_params",
            &groups,
        );
        let rows = constants.pipeline(device, "generate_rows", GENERATE, "generate_rows", &groups);
        let convert = constants.pipeline(device, "convert_i64", GENERATE, "convert_i64", &groups);
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::gpu(format!("building the generator: {e}")));
        }
        Ok(GeneratorKernels {
            uniform,
            buffers,
            params,
            rows,
            convert,
        })
    }
}

/// A dispatch of `groups` workgroups as a grid within the per-dimension limit.
pub fn grid(groups: u32, max_per_dimension: u32) -> (u32, u32) {
    if groups <= max_per_dimension {
        (groups.max(1), 1)
    } else {
        (max_per_dimension, groups.div_ceil(max_per_dimension))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Objective;

    #[test]
    fn uniform_sizes_match_their_wgsl_twins() {
        // WGSL: 8 u32/f32 (32 bytes), vec4<u32> (16, 16-aligned), 4 u32 (16) = 64.
        assert_eq!(size_of::<StepUniform>(), 64);
        assert_eq!(size_of::<ShardUniform>(), 16);
        assert_eq!(size_of::<SliceUniform>(), 16);
        assert_eq!(size_of::<GeneratorUniform>(), 32);
        // WGSL: 8 scalars (32), vec2<u32> (8, 8-aligned), 4 u32 (16) = 56.
        assert_eq!(size_of::<SetupUniform>(), 56);
    }

    #[test]
    fn tiles_fill_workgroup_memory() {
        let c =
            ShaderConstants::new(&Objective::logistic(), 64, 1, Tuning::GPU, 32768, None).unwrap();
        assert_eq!(c.tile_rows, (8192 - 64 - 256) / 66);
        assert_eq!((c.col_stride, c.row_groups, c.cols, c.kt), (16, 16, 1, 1));
        let c =
            ShaderConstants::new(&Objective::logistic(), 7, 1, Tuning::CPU, 32768, None).unwrap();
        assert_eq!(
            (c.dp, c.tile_rows, c.col_stride, c.row_groups),
            (8, 1024, 2, 32)
        );
        assert_eq!(c.w_cached, 1);
        let soft = Objective::softmax(10).unwrap();
        let c = ShaderConstants::new(&soft, 300, 1, Tuning::GPU, 16384, None).unwrap();
        assert_eq!(
            (c.col_stride, c.cols, c.kt, c.class_tiles()),
            (75, 1, 10, 1)
        );
        let c = ShaderConstants::new(&soft, 1300, 1, Tuning::GPU, 32768, None).unwrap();
        assert_eq!(
            (c.col_stride, c.cols, c.kt, c.class_tiles()),
            (256, 2, 8, 2)
        );
        let c = ShaderConstants::new(
            &Objective::softmax(40).unwrap(),
            10,
            1,
            Tuning::GPU,
            16384,
            None,
        )
        .unwrap();
        assert_eq!((c.kt, c.class_tiles()), (16, 3));
        // Three class tiles: the deltas are computed once and kept for them.
        assert!(c.splits_classes());
        let c = ShaderConstants::new(&soft, 64, 1, Tuning::GPU, 32768, None).unwrap();
        assert!(!c.splits_classes());
        // Rows wider than the workgroup memory go in column blocks: 8 rows of 119 quads
        // ((4096 − 8 − 256 − 8·2) / 32 in 16 KiB), 22 blocks for 10 000 features.
        let c = ShaderConstants::new(&Objective::linear(), 10_000, 1, Tuning::GPU, 16384, None)
            .unwrap();
        assert_eq!(
            (c.tile_rows, c.qb, c.column_blocks(), c.cols),
            (8, 119, 22, 10)
        );
    }

    #[test]
    fn grids_stay_within_the_dimension_limit() {
        assert_eq!(grid(10, 65535), (10, 1));
        assert_eq!(grid(0, 65535), (1, 1));
        assert_eq!(grid(70_000, 65535), (65535, 2));
    }
}

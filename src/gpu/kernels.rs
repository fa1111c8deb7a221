//! The host side of the kernels: uniform structs mirrored in WGSL, the constants of one
//! problem written into the shader source, and the pipelines, built once per session.

use std::sync::OnceLock;

use bytemuck::{Pod, Zeroable};

use super::GpuContext;
use super::plan::{class_block, loop_budget};
use crate::backend::{RowSet, Setup, Step};
use crate::error::{Error, Result};
use crate::model::{Loss, Model, Objective};
use crate::optim::{Optimizer, UpdateRule, adam_corrections};

pub use crate::backend::options::Tuning;

impl Tuning {
    /// The default for an adapter.
    pub fn for_device(info: &wgpu::AdapterInfo) -> Tuning {
        match info.device_type {
            wgpu::DeviceType::Cpu => Tuning::CPU,
            _ => Tuning::GPU,
        }
    }
}

/// Most rows in one tile of the fused kernel.
const MAX_TILE_ROWS: u32 = 1024;

/// Most classes whose z one invocation computes from one read of a row (a class block).
const MAX_CLASS_BLOCK: u32 = 16;

/// `Step.rows` of a pass that descends on the training rows and also sums the held-out
/// rows' loss and metrics (from `P_HELD_OUT` of `grad`): full batches in file order.
pub const ROWS_TRAINING_AND_HELD_OUT: u32 = 3;

const COMMON: &str = include_str!("../../shaders/common.wgsl");
const GRADIENT: &str = include_str!("../../shaders/gradient.wgsl");
const REDUCE: &str = include_str!("../../shaders/reduce.wgsl");
const UPDATE: &str = include_str!("../../shaders/update.wgsl");
const FORWARD: &str = include_str!("../../shaders/forward.wgsl");
const DELTA: &str = include_str!("../../shaders/delta.wgsl");
const XT_DELTA: &str = include_str!("../../shaders/xt_delta.wgsl");
const PREDICT: &str = include_str!("../../shaders/predict.wgsl");
const STREAM_READ: &str = include_str!("../../shaders/stream_read.wgsl");
const GENERATE: &str = include_str!("../../shaders/generate.wgsl");
const MOMENTS: &str = include_str!("../../shaders/moments.wgsl");

/// One step as the kernels see it; `struct Step` in `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct StepUniform {
    pub pos_begin: u32,
    pub pos_count: u32,
    pub shuffled: u32,
    pub perm_mask: u32,
    pub perm_shift: u32,
    pub perm_n: u32,
    pub lr: f32,
    /// Which rows: `RowSet::code`.
    pub rows: u32,
    pub key: [u32; 4],
    pub index: u32,
    pub groups: u32,
    /// Adam's η / (1 − β₁ᵗ) and √(1 − β₂ᵗ), computed in f64 as PyTorch does.
    pub adam_step: f32,
    pub adam_root: f32,
}

impl StepUniform {
    /// The uniform of `step`, the `index`-th of its run, over `rows`, using `groups`
    /// workgroups per shard, under `rule`.
    pub fn new(step: &Step, index: u32, groups: u32, rows: RowSet, rule: &UpdateRule) -> Self {
        let batch = &step.batch;
        let perm = batch.order.unwrap_or(crate::rng::Permutation {
            keys: [0; 4],
            mask: 0,
            shift: 1,
            n: 0,
        });
        let (adam_step, adam_root) = match rule.optimizer {
            Optimizer::Adam { beta1, beta2, .. } => {
                adam_corrections(beta1, beta2, step.t.max(1), step.lr)
            }
            _ => (0.0, 1.0),
        };
        StepUniform {
            pos_begin: batch.start,
            pos_count: batch.len,
            shuffled: u32::from(batch.order.is_some()),
            perm_mask: perm.mask,
            perm_shift: perm.shift,
            perm_n: perm.n,
            lr: step.lr as f32,
            rows: rows.code(),
            key: perm.keys,
            index,
            groups,
            adam_step: adam_step as f32,
            adam_root: adam_root as f32,
        }
    }
}

/// What stays fixed for a fit; `struct Setup` in `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct SetupUniform {
    pub optimizer: u32,
    pub momentum: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub l2: f32,
    pub l1: f32,
    pub standardize: u32,
    pub split_seed: [u32; 2],
    pub split_threshold: u32,
    pub weighted: u32,
}

impl SetupUniform {
    pub fn new(setup: &Setup, weighted: bool) -> Self {
        let (optimizer, momentum, beta1, beta2, eps) = match setup.rule.optimizer {
            Optimizer::Sgd => (0, 0.0, 0.0, 0.0, 1.0),
            Optimizer::Momentum { momentum } => (1, momentum, 0.0, 0.0, 1.0),
            Optimizer::Nesterov { momentum } => (2, momentum, 0.0, 0.0, 1.0),
            Optimizer::Adam { beta1, beta2, eps } => (3, 0.0, beta1, beta2, eps),
        };
        let split = setup.split;
        SetupUniform {
            optimizer,
            momentum: momentum as f32,
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            eps: eps as f32,
            l2: setup.rule.regularization.l2 as f32,
            l1: setup.rule.regularization.l1 as f32,
            standardize: u32::from(setup.standardize),
            split_seed: split.map_or([0; 2], |s| [s.seed as u32, (s.seed >> 32) as u32]),
            split_threshold: split.map_or(0, |s| s.threshold()),
            weighted: u32::from(weighted),
        }
    }
}

/// The tiles of a step one gradient dispatch covers; `struct Slice` in
/// `shaders/gradient.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct SliceUniform {
    pub first_tile: u32,
    pub end_tile: u32,
    /// 1: add to the partials (every slice but the first).
    pub accumulate: u32,
    pub _pad: u32,
}

impl SliceUniform {
    /// Slice `index` of slices of `tiles` tiles each.
    pub fn new(index: u32, tiles: u32) -> Self {
        let first_tile = index.saturating_mul(tiles);
        SliceUniform {
            first_tile,
            end_tile: first_tile.saturating_add(tiles),
            accumulate: u32::from(index > 0),
            _pad: 0,
        }
    }
}

/// The rows of one shard; `struct Shard` in `shaders/common.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct ShardUniform {
    pub row_begin: u32,
    pub row_end: u32,
    pub index: u32,
    pub _pad: u32,
}

/// The shape constants of one problem, written into every shader as WGSL `const`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ShaderConstants {
    /// d, features.
    pub d: u32,
    /// Floats per row in device memory: d rounded up to a multiple of 4.
    pub dp: u32,
    /// k, outputs.
    pub k: u32,
    /// (d + 1)·k + 10: ∇W, ∇b, then the loss, the weight and the metric sums, then those
    /// five of the held-out rows ([`ROWS_TRAINING_AND_HELD_OUT`]).
    pub p: u32,
    pub model: u32,
    pub loss: u32,
    /// 1 + the id of the custom loss whose WGSL the shaders carry; 0 for none.
    pub custom: u32,
    pub shards: u32,
    /// Invocations per workgroup.
    pub wg: u32,
    /// 1: tiles are copied into workgroup memory; 0: rows are read in place.
    pub stage: u32,
    /// 1: W is held in workgroup memory as quads; 0: read from the parameter buffer.
    pub w_cached: u32,
    /// Rows per tile of the fused kernel, chosen to fill the workgroup memory.
    pub tile_rows: u32,
    /// Column quads (of dp / 4) accumulated side by side: min(WG, dp / 4).
    pub col_stride: u32,
    /// Invocations sharing one column quad, each taking every ROW_GROUPS-th tile row.
    pub row_groups: u32,
    /// Column quads each invocation owns: ⌈(dp / 4) / COL_STRIDE⌉.
    pub cols: u32,
    /// Classes accumulated per pass over X (class tile).
    pub kt: u32,
    /// Classes whose z one invocation computes from one read of a row (class block).
    pub kb: u32,
    /// Most tiles one workgroup handles in one dispatch (a slice of the step's tiles, see
    /// `shaders/gradient.wgsl`): what keeps an invocation under the device's loop limit.
    /// `u32::MAX` where the device has none.
    pub slice_tiles: u32,
    /// The device's loop limit these constants are planned for
    /// ([`GpuContext::loop_limit`]); `None`: no limit.
    pub loop_limit: Option<u32>,
}

impl ShaderConstants {
    /// Chooses the fused kernel's tile for `objective` on `d` features, given the tuning,
    /// the device's workgroup memory and its loop limit (iterations one invocation runs in
    /// all, `None` for no limit); fails when one row does not fit either.
    pub fn new(
        objective: &Objective,
        d: usize,
        shards: usize,
        tuning: Tuning,
        workgroup_bytes: u32,
        loop_limit: Option<u32>,
    ) -> Result<Self> {
        let wg = tuning.workgroup;
        let k = objective.outputs() as u32;
        let d32 = u32::try_from(d).map_err(|_| Error::option("features", d, "too many"))?;
        let dp = d32.next_multiple_of(4);
        // Workgroup memory: TILE_ROWS·(dp + k + 1) floats for rows (when staged), z and
        // deltas, and row indices, plus WG floats for reductions and two vec4s for the
        // arrays that are not used (length 1).
        let mut floats = (workgroup_bytes / 4).saturating_sub(8);
        // W as quads, when it takes at most a quarter of the workgroup memory.
        let w_floats = dp.saturating_mul(k);
        let w_cached = w_floats <= floats / 4;
        if w_cached {
            floats -= w_floats;
        }
        let staged = if tuning.stage { dp } else { 0 };
        let per_row = staged.saturating_add(k).saturating_add(1);
        let tile_rows = (floats.saturating_sub(wg) / per_row).min(MAX_TILE_ROWS);
        if tile_rows == 0 {
            // Which of the two makes the row too large: the features alone fit with a
            // few outputs, or they do not.
            let classes_cause = staged.saturating_add(2).saturating_add(wg) <= floats && k > 2;
            let (what, hint) = if classes_cause {
                (
                    format!(
                        "one row of {k} classes (with {}) in the fused gradient kernel",
                        crate::error::count(d, "feature")
                    ),
                    "; use --backend cpu for this many classes",
                )
            } else {
                (
                    format!("one row of {d} features and {k} outputs in the fused gradient kernel"),
                    "; use --backend cpu for this many features",
                )
            };
            return Err(Error::TooLarge {
                what,
                bytes: u64::from(per_row + wg + 8) * 4,
                limit_name: "max_compute_workgroup_storage_size",
                limit: u64::from(workgroup_bytes),
                hint,
            });
        }
        let quads = dp / 4;
        let col_stride = wg.min(quads);
        let cols = quads.div_ceil(col_stride);
        let kt = k.min((tuning.accumulators / cols).max(1));
        let blocks = k.div_ceil(MAX_CLASS_BLOCK);
        let mut c = ShaderConstants {
            d: d32,
            dp,
            k,
            p: (d32 + 1) * k + 10,
            model: match objective.model() {
                Model::Linear => 0,
                Model::Logistic => 1,
                Model::Softmax => 2,
            },
            loss: match objective.loss() {
                Loss::Mse => 0,
                Loss::Bce => 1,
                Loss::Ce => 2,
                Loss::Custom(_) => 3,
            },
            custom: match objective.loss() {
                Loss::Custom(id) => id + 1,
                _ => 0,
            },
            shards: shards as u32,
            wg,
            stage: u32::from(tuning.stage),
            w_cached: u32::from(w_cached),
            tile_rows,
            col_stride,
            row_groups: wg / col_stride,
            cols,
            kt,
            kb: class_block(k, blocks),
            slice_tiles: u32::MAX,
            loop_limit,
        };
        if let Some(limit) = loop_limit {
            c.fit_loop_budget(loop_budget(limit), limit)?;
        }
        Ok(c)
    }

    /// Class tiles: passes over X per gradient (1 unless k > KT).
    pub fn class_tiles(&self) -> u32 {
        self.k.div_ceil(self.kt)
    }

    /// The full WGSL source of a kernel: these constants, common.wgsl, the kernel.
    pub fn source(&self, kernel: &str) -> String {
        let constants = [
            ("D", self.d),
            ("DP", self.dp),
            ("Q", self.dp / 4),
            ("K", self.k),
            ("P", self.p),
            ("MODEL", self.model),
            ("LOSS", self.loss),
            ("SHARDS", self.shards),
            ("WG", self.wg),
            ("STAGE", self.stage),
            (
                "XS_LEN",
                if self.stage == 1 {
                    self.tile_rows * self.dp / 4
                } else {
                    1
                },
            ),
            ("W_CACHED", self.w_cached),
            (
                "WS_LEN",
                if self.w_cached == 1 {
                    self.k * self.dp / 4
                } else {
                    1
                },
            ),
            ("TILE_ROWS", self.tile_rows),
            ("COL_STRIDE", self.col_stride),
            ("ROW_GROUPS", self.row_groups),
            ("COLS", self.cols),
            ("KT", self.kt),
            ("KB", self.kb),
            // The quads of a block four classes at a time (1 where KB < 4 takes them singly).
            ("KB4", (self.kb / 4).max(1)),
            ("CLASS_BLOCKS", self.class_blocks()),
            ("CLASS_SLOTS", self.k.max(2)),
            ("ROWS_ALL", RowSet::All.code()),
            ("ROWS_TRAINING", RowSet::Training.code()),
            ("ROWS_HELD_OUT", RowSet::Validation.code()),
            ("ROWS_TRAINING_AND_HELD_OUT", ROWS_TRAINING_AND_HELD_OUT),
        ];
        let mut text: String = constants
            .iter()
            .map(|(name, value)| format!("const {name}: u32 = {value}u;\n"))
            .collect();
        text.push('\n');
        text.push_str(COMMON);
        text.push('\n');
        text.push_str(kernel);
        text.push('\n');
        match self.custom {
            0 => text.push_str(crate::custom::WGSL_STUB),
            id => text.push_str(&crate::custom::CustomLoss::lookup(id - 1).wgsl()),
        }
        text
    }

    /// A compute pipeline for `entry` of `kernel` (with these constants), whose bind groups
    /// follow `groups`.
    pub fn pipeline(
        &self,
        device: &wgpu::Device,
        name: &str,
        kernel: &str,
        entry: &str,
        groups: &[&wgpu::BindGroupLayout],
    ) -> wgpu::ComputePipeline {
        let label = format!("downhill.{name}");
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(self.source(kernel).into()),
        });
        let groups: Vec<Option<&wgpu::BindGroupLayout>> =
            groups.iter().copied().map(Some).collect();
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&label),
            bind_group_layouts: &groups,
            immediate_size: 0,
        });
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&layout),
            module: &module,
            entry_point: Some(entry),
            compilation_options: Default::default(),
            cache: None,
        })
    }

    /// Every kernel's source, for validation in tests.
    pub fn all_sources(&self) -> Vec<(&'static str, String)> {
        [
            ("gradient", GRADIENT),
            ("reduce", REDUCE),
            ("update", UPDATE),
            ("forward", FORWARD),
            ("delta", DELTA),
            ("xt_delta", XT_DELTA),
            ("predict", PREDICT),
            ("stream_read", STREAM_READ),
            ("generate", GENERATE),
            ("moments", MOMENTS),
        ]
        .into_iter()
        .map(|(name, text)| (name, self.source(text)))
        .collect()
    }
}

/// How a kernel sees one binding.
#[derive(Clone, Copy)]
enum Binding {
    /// A uniform bound with a dynamic offset (the step records).
    StepUniform,
    /// The same for the slice records.
    SliceUniform,
    Uniform,
    Storage {
        read_only: bool,
    },
}

fn bind_group_layout(
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

const RO: Binding = Binding::Storage { read_only: true };
const RW: Binding = Binding::Storage { read_only: false };

/// Bind group layouts. Group 0 is always the step; group 1 the shard (x, y, its rows) for
/// kernels that read X; the last group the kernel's own buffers.
pub struct Layouts {
    pub step: wgpu::BindGroupLayout,
    pub shard: wgpu::BindGroupLayout,
    /// gradient: params (read), partials (write), setup, class weights (read).
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
    pub gradient: wgpu::ComputePipeline,
    pub reduce: wgpu::ComputePipeline,
    /// The descent step in one workgroup, for few parameters (`shaders/update.wgsl`).
    pub update_one: wgpu::ComputePipeline,
    /// Column sums and label counts (standardization, balanced class weights).
    pub moments: wgpu::ComputePipeline,
    update_split: OnceLock<[wgpu::ComputePipeline; 3]>,
    unfused: OnceLock<Unfused>,
    predict: OnceLock<wgpu::ComputePipeline>,
    stream_read: OnceLock<wgpu::ComputePipeline>,
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
        if let Some(k) = ctx.cached_kernels(&constants) {
            return Ok(k);
        }
        let kernels = std::sync::Arc::new(Self::new(ctx, constants)?);
        ctx.cache_kernels(constants, std::sync::Arc::clone(&kernels));
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
                &[RO, RW, Binding::Uniform, RO],
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
        let gradient = build(
            "gradient",
            GRADIENT,
            "gradient_partials",
            &[step, shard, &layouts.gradient, &layouts.slice],
        );
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
            reduce,
            update_one,
            moments,
            update_split: OnceLock::new(),
            unfused: OnceLock::new(),
            predict: OnceLock::new(),
            stream_read: OnceLock::new(),
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

    /// The memory floor: one streaming read of X (benchmarks only).
    pub fn stream_read(&self, ctx: &GpuContext) -> Result<&wgpu::ComputePipeline> {
        let groups = [&self.layouts.stream_read];
        built(ctx, &self.stream_read, "stream_read", || {
            self.build(ctx, "stream_read", STREAM_READ, "stream_read", &groups)
        })
    }
}

/// The generator's parameters; `struct Generator` in `shaders/generate.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
pub struct GeneratorUniform {
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub row_begin: u32,
    pub rows: u32,
    pub weight_shift: u32,
    pub _pad: [u32; 3],
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

    #[test]
    fn uniform_sizes_match_their_wgsl_twins() {
        // WGSL: 8 u32/f32 (32 bytes), vec4<u32> (16, 16-aligned), 4 u32 (16) = 64.
        assert_eq!(size_of::<StepUniform>(), 64);
        assert_eq!(size_of::<ShardUniform>(), 16);
        assert_eq!(size_of::<SliceUniform>(), 16);
        assert_eq!(size_of::<GeneratorUniform>(), 32);
        // WGSL: 8 scalars (32), vec2<u32> (8, 8-aligned), 2 u32 (8) = 48.
        assert_eq!(size_of::<SetupUniform>(), 48);
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
            (256, 2, 10, 1)
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
        assert_eq!((c.kt, c.class_tiles()), (32, 2));
        assert!(
            ShaderConstants::new(&Objective::linear(), 10_000, 1, Tuning::GPU, 16384, None)
                .is_err()
        );
    }

    #[test]
    fn grids_stay_within_the_dimension_limit() {
        assert_eq!(grid(10, 65535), (10, 1));
        assert_eq!(grid(0, 65535), (1, 1));
        assert_eq!(grid(70_000, 65535), (65535, 2));
    }
}

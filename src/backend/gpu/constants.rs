//! The shape constants of one problem (tile, class blocks, slices within the loop limit),
//! and the WGSL source of each kernel with them written in as `const`s.

use super::plan::{class_block, loop_budget};
use crate::backend::RowSet;
use crate::backend::options::Tuning;
use crate::error::{Error, Result};
use crate::model::{Loss, Model, Objective};
use crate::optim::Optimizer;

/// The code of `model` in the kernels (`MODEL_*`): the one place it is written.
pub(crate) fn model_code(model: Model) -> u32 {
    match model {
        Model::Linear => 0,
        Model::Logistic => 1,
        Model::Softmax => 2,
    }
}

/// The code of `loss` in the kernels (`LOSS_*`).
pub(crate) fn loss_code(loss: Loss) -> u32 {
    match loss {
        Loss::Mse => 0,
        Loss::Bce => 1,
        Loss::Ce => 2,
        Loss::Custom(_) => 3,
    }
}

/// The code of `optimizer` in the kernels (`OPT_*`, `Setup.optimizer`).
pub(crate) fn optimizer_code(optimizer: &Optimizer) -> u32 {
    match optimizer {
        Optimizer::Sgd => 0,
        Optimizer::Momentum { .. } => 1,
        Optimizer::Nesterov { .. } => 2,
        Optimizer::Adam { .. } => 3,
    }
}

/// Most rows in one tile of the fused kernel.
const MAX_TILE_ROWS: u32 = 1024;

/// Whole staged rows per tile below which a tile holds column blocks instead (see
/// `shaders/gradient.wgsl`): with fewer, the tile's barriers cost more than a second read
/// of each block from cache.
const MIN_WHOLE_ROWS: u32 = 4;

/// Rows of a tile of column blocks, when the workgroup memory holds them.
const BLOCKED_TILE_ROWS: u32 = 8;

/// Most classes whose z one invocation computes from one read of a row (a class block).
const MAX_CLASS_BLOCK: u32 = 16;

/// The side of the tiled product's output tile, `PT` in `shaders/products.wgsl`.
pub(super) const PRODUCT_TILE: u32 = 64;

/// Rows the tiled product stages at a time, `RB` in `shaders/products.wgsl`.
pub(super) const PRODUCT_ROWS: u32 = 16;

/// `Step.rows` of a pass that descends on the training rows and also sums the held-out
/// rows' loss and metrics (from `P_HELD_OUT` of `grad`): full batches in file order.
pub const ROWS_TRAINING_AND_HELD_OUT: u32 = 3;

pub(super) const COMMON: &str = include_str!("../../../shaders/common.wgsl");
pub(super) const GRADIENT: &str = include_str!("../../../shaders/gradient.wgsl");
pub(super) const REDUCE: &str = include_str!("../../../shaders/reduce.wgsl");
pub(super) const UPDATE: &str = include_str!("../../../shaders/update.wgsl");
pub(super) const FORWARD: &str = include_str!("../../../shaders/forward.wgsl");
pub(super) const DELTA: &str = include_str!("../../../shaders/delta.wgsl");
pub(super) const XT_DELTA: &str = include_str!("../../../shaders/xt_delta.wgsl");
pub(super) const PREDICT: &str = include_str!("../../../shaders/predict.wgsl");
pub(super) const STREAM_READ: &str = include_str!("../../../shaders/stream_read.wgsl");
pub(super) const GENERATE: &str = include_str!("../../../shaders/generate.wgsl");
pub(super) const MOMENTS: &str = include_str!("../../../shaders/moments.wgsl");
pub(super) const CURVATURE: &str = include_str!("../../../shaders/curvature.wgsl");
pub(super) const SPARSE: &str = include_str!("../../../shaders/sparse.wgsl");
pub(super) const PRODUCTS: &str = include_str!("../../../shaders/products.wgsl");
/// The shared workgroup reduction, appended to the kernels that call it.
const WORKGROUP_SUM: &str = include_str!("../../../shaders/workgroup_sum.wgsl");

/// How the split gradient's two products run ([`ShaderConstants::products`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Products {
    /// Both in the fused kernel: one pass over X per class tile.
    #[default]
    Untiled,
    /// Xᵀδ as the tiled product of `shaders/products.wgsl`; z from the fused kernel.
    TiledXt,
    /// z = xW + b a tiled product too (where one block of rows stays within the device's
    /// loop limit).
    TiledBoth,
}

impl Products {
    /// Whether Xᵀδ is a tiled product.
    pub fn tiled(self) -> bool {
        self != Products::Untiled
    }
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
    /// The objective whose row loss the shaders carry ([`crate::loss::RowLoss::wgsl`]).
    pub objective: Objective,
    pub shards: u32,
    /// Invocations per workgroup.
    pub wg: u32,
    /// 1: tiles are copied into workgroup memory; 0: rows are read in place.
    pub stage: u32,
    /// 1: W is held in workgroup memory as quads; 0: read from the parameter buffer.
    pub w_cached: u32,
    /// Rows per tile of the fused kernel, chosen to fill the workgroup memory.
    pub tile_rows: u32,
    /// Column quads of a row staged at a time (a column block): dp / 4 (one block) unless
    /// whole rows do not fit, and always so when rows are read in place.
    pub qb: u32,
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
    /// How the split gradient's products run ([`Tuning::products_from`]).
    pub products: Products,
    /// The device's loop limit these constants are planned for
    /// ([`GpuContext::loop_limit`](super::GpuContext::loop_limit)); `None`: no limit.
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
        let quads = dp / 4;
        let room = floats.saturating_sub(wg);
        let staged = if tuning.stage { dp } else { 0 };
        let per_row = staged.saturating_add(k).saturating_add(1);
        let mut tile_rows = (room / per_row).min(MAX_TILE_ROWS);
        let mut qb = quads;
        if tuning.stage && tile_rows < MIN_WHOLE_ROWS {
            // Column blocks: BLOCKED_TILE_ROWS rows (fewer where z and one quad a row
            // do not fit), each holding as many quads as the rest of the memory takes.
            let rows = BLOCKED_TILE_ROWS.min(room / (k + 1 + 4));
            if rows > 0 {
                tile_rows = rows;
                qb = ((room - rows * (k + 1)) / (4 * rows)).min(quads);
            }
        }
        if tile_rows == 0 {
            // One row's z and deltas alone do not fit: too many classes.
            return Err(Error::TooLarge {
                what: format!(
                    "one row of {k} classes (with {}) in the fused gradient kernel",
                    crate::error::count(d, "feature")
                ),
                // A row's z and deltas, one staged quad of it (when staging), the
                // reduction's WG floats and the two unused arrays.
                bytes: u64::from(k + 1 + 4 * u32::from(tuning.stage) + wg + 8) * 4,
                limit_name: "max_compute_workgroup_storage_size",
                limit: u64::from(workgroup_bytes),
                hint: "; use --backend cpu for this many classes",
            });
        }
        let col_stride = wg.min(quads);
        let cols = quads.div_ceil(col_stride);
        let kt = k.min((tuning.accumulators / cols).max(1));
        let blocks = k.div_ceil(MAX_CLASS_BLOCK);
        let mut c = ShaderConstants {
            shards: shards as u32,
            stage: u32::from(tuning.stage),
            w_cached: u32::from(w_cached),
            tile_rows,
            qb,
            col_stride,
            row_groups: wg / col_stride,
            cols,
            kt,
            kb: class_block(k, blocks),
            loop_limit,
            ..Self::for_sparse(objective, d, wg)?
        };
        if let Some(limit) = loop_limit {
            c.fit_loop_budget(loop_budget(limit), limit)?;
        }
        // Every device takes 65 535 workgroups a dimension.
        let tiles_fit = c.product_tiles().0 <= 65_535;
        if c.splits_classes() && k >= tuning.products_from && tiles_fit {
            c.products = Products::TiledBoth;
        }
        if let Some(limit) = loop_limit {
            c.fit_products_budget(loop_budget(limit));
        }
        Ok(c)
    }

    /// The constants of the sparse kernels (`shaders/sparse.wgsl`) for `objective` on `d`
    /// features: the shape, the model and the loss; they read rows in place, so no tile
    /// is planned (the tile constants are those of one row). [`Self::new`] plans the
    /// fused kernel's tile over these.
    pub fn for_sparse(objective: &Objective, d: usize, wg: u32) -> Result<Self> {
        let k = objective.outputs() as u32;
        let d32 = u32::try_from(d).map_err(|_| Error::option("features", d, "too many"))?;
        let dp = d32.next_multiple_of(4);
        Ok(ShaderConstants {
            d: d32,
            dp,
            k,
            p: (d32 + 1) * k + 10,
            model: model_code(objective.model()),
            loss: loss_code(objective.loss()),
            custom: match objective.loss() {
                Loss::Custom(id) => id + 1,
                _ => 0,
            },
            objective: *objective,
            shards: 1,
            wg,
            stage: 0,
            w_cached: 0,
            tile_rows: 1,
            qb: dp / 4,
            col_stride: 1,
            row_groups: wg,
            cols: dp / 4,
            kt: k,
            kb: 1,
            slice_tiles: u32::MAX,
            products: Products::Untiled,
            loop_limit: None,
        })
    }

    /// Column blocks per row: ⌈(dp / 4) / QB⌉ (1 when whole rows are staged or read in
    /// place).
    pub fn column_blocks(&self) -> u32 {
        (self.dp / 4).div_ceil(self.qb.max(1))
    }

    /// Class tiles: passes over X per gradient (1 unless k > KT).
    pub fn class_tiles(&self) -> u32 {
        self.k.div_ceil(self.kt)
    }

    /// The full WGSL source of a kernel: these constants, common.wgsl, the kernel, the
    /// workgroup reduction when it calls it, and the problem's row loss.
    pub fn source(&self, kernel: &str) -> String {
        self.source_in(kernel, Mode::Fused)
    }

    /// The tiled product's output tiles (`shaders/products.wgsl`): feature tiles of the
    /// d + 1 columns (the bias last), class tiles.
    pub fn product_tiles(&self) -> (u32, u32) {
        (
            (self.d + 1).div_ceil(PRODUCT_TILE),
            self.k.div_ceil(PRODUCT_TILE),
        )
    }

    /// Whether the fused gradient runs as two dispatches per slice ([`Mode`]): where it has
    /// more than one class tile, each of which would compute every z again.
    pub fn splits_classes(&self) -> bool {
        self.class_tiles() > 1
    }

    /// [`Self::source`] with the fused gradient's `mode`.
    pub fn source_in(&self, kernel: &str, mode: Mode) -> String {
        let constants = [
            ("MODE", mode as u32),
            ("MODE_FUSED", Mode::Fused as u32),
            ("MODE_DELTAS_OUT", Mode::DeltasOut as u32),
            ("MODE_DELTAS_IN", Mode::DeltasIn as u32),
            ("MODE_Z_IN", Mode::ZIn as u32),
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
                    self.tile_rows * self.qb
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
            ("QB", self.qb),
            ("BLOCKS", self.column_blocks()),
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
            ("MODEL_LINEAR", model_code(Model::Linear)),
            ("MODEL_LOGISTIC", model_code(Model::Logistic)),
            ("MODEL_SOFTMAX", model_code(Model::Softmax)),
            ("LOSS_MSE", loss_code(Loss::Mse)),
            ("LOSS_BCE", loss_code(Loss::Bce)),
            ("LOSS_CE", loss_code(Loss::Ce)),
            ("LOSS_CUSTOM", loss_code(Loss::Custom(0))),
            ("OPT_SGD", optimizer_code(&Optimizer::Sgd)),
            (
                "OPT_MOMENTUM",
                optimizer_code(&Optimizer::Momentum { momentum: 0.0 }),
            ),
            (
                "OPT_NESTEROV",
                optimizer_code(&Optimizer::Nesterov { momentum: 0.0 }),
            ),
            (
                "OPT_ADAM",
                optimizer_code(&Optimizer::Adam {
                    beta1: 0.0,
                    beta2: 0.0,
                    eps: 0.0,
                }),
            ),
            ("STREAM_SPLIT", crate::rng::STREAM_SPLIT),
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
        if kernel.contains("workgroup_sum(") {
            text.push_str(WORKGROUP_SUM);
            text.push('\n');
        }
        text.push_str(&crate::loss::row_loss(&self.objective).wgsl());
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
        self.pipeline_in(device, name, (kernel, Mode::Fused), entry, groups)
    }

    /// [`Self::pipeline`] of `kernel` in the fused gradient's mode.
    pub fn pipeline_in(
        &self,
        device: &wgpu::Device,
        name: &str,
        (kernel, mode): (&str, Mode),
        entry: &str,
        groups: &[&wgpu::BindGroupLayout],
    ) -> wgpu::ComputePipeline {
        let groups: Vec<Option<&wgpu::BindGroupLayout>> =
            groups.iter().copied().map(Some).collect();
        self.pipeline_of_groups(device, name, (kernel, mode), entry, &groups)
    }

    /// [`Self::pipeline_in`] whose bind groups may leave gaps (`None`: a group the entry
    /// point does not use).
    pub fn pipeline_of_groups(
        &self,
        device: &wgpu::Device,
        name: &str,
        (kernel, mode): (&str, Mode),
        entry: &str,
        groups: &[Option<&wgpu::BindGroupLayout>],
    ) -> wgpu::ComputePipeline {
        let label = format!("downhill.{name}");
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(&label),
            source: wgpu::ShaderSource::Wgsl(self.source_in(kernel, mode).into()),
        });
        let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&label),
            bind_group_layouts: groups,
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
        let split = [
            ("gradient_deltas_out", Mode::DeltasOut),
            ("gradient_deltas_in", Mode::DeltasIn),
            ("gradient_z_in", Mode::ZIn),
        ]
        .map(|(name, mode)| (name, self.source_in(GRADIENT, mode)));
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
            ("curvature", CURVATURE),
            ("sparse", SPARSE),
            ("products", PRODUCTS),
        ]
        .into_iter()
        .map(|(name, text)| (name, self.source(text)))
        .chain(split)
        .collect()
    }
}

/// How the fused gradient kernel (`shaders/gradient.wgsl`) runs: whole, or split in two
/// dispatches per slice, the deltas of every class computed once and kept in a buffer,
/// then read back by each class tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Fused = 0,
    DeltasOut = 1,
    DeltasIn = 2,
    /// In place of `DeltasOut` where z is a tiled product (`logits_tiles` in
    /// `shaders/products.wgsl`): z is read from the kept buffer, w·δ written over it.
    ZIn = 3,
}

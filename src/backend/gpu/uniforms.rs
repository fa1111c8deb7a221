//! The uniform structs the kernels read, each the mirror of a WGSL struct (checked field by
//! field in `tests/shaders.rs`), and how a step, a setup and a slice become one.

use bytemuck::{Pod, Zeroable};

use crate::backend::{RowSet, Setup, Step};
use crate::optim::{Optimizer, UpdateRule, adam_corrections};

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
    pub fixed_bias: u32,
    pub pad: u32,
}

impl SetupUniform {
    pub fn new(setup: &Setup, weighted: bool) -> Self {
        let optimizer = super::constants::optimizer_code(&setup.rule.optimizer);
        let (momentum, beta1, beta2, eps) = match setup.rule.optimizer {
            Optimizer::Sgd => (0.0, 0.0, 0.0, 1.0),
            Optimizer::Momentum { momentum } | Optimizer::Nesterov { momentum } => {
                (momentum, 0.0, 0.0, 1.0)
            }
            Optimizer::Adam { beta1, beta2, eps } => (0.0, beta1, beta2, eps),
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
            fixed_bias: u32::from(setup.rule.fixed_bias),
            pad: 0,
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

//! What a descent step is made of: the batch and its rows, the held-out split, class
//! weights, and the setup fixed for a fit.

use crate::rng::Permutation;

/// Which rows one descent step uses: positions `start..start + len` of the epoch's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    pub start: u32,
    pub len: u32,
    /// `None`: rows in file order (a full batch). `Some`: the epoch's shuffled order.
    pub order: Option<Permutation>,
}

impl Batch {
    /// The row at position `p` of the epoch's order.
    pub fn row(&self, p: u32) -> u32 {
        self.order.map_or(p, |perm| perm.apply(p))
    }
}

/// One descent step on one batch, with the session's update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    pub epoch: u64,
    /// The step's number in the fit, from 1 (Adam's bias corrections use it).
    pub t: u64,
    pub batch: Batch,
    pub lr: f64,
}

/// Which rows a pass uses, when part of them are held out for validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowSet {
    All,
    /// Rows not held out (all rows when nothing is).
    Training,
    /// Held-out rows.
    Validation,
}

impl RowSet {
    /// Whether a pass over these rows uses a row that is held out (`Some(true)`), one that
    /// is not (`Some(false)`), or any row when none are held out (`None`).
    #[inline(always)]
    pub fn uses(self, held_out: Option<bool>) -> bool {
        match (self, held_out) {
            (RowSet::All, _) | (RowSet::Training, None) => true,
            (RowSet::Validation, None) => false,
            (set, Some(held)) => held == (set == RowSet::Validation),
        }
    }

    /// The code the kernels use (`Step.rows` in `shaders/common.wgsl`).
    pub fn code(self) -> u32 {
        match self {
            RowSet::All => 0,
            RowSet::Training => 1,
            RowSet::Validation => 2,
        }
    }
}

/// A seeded fraction of rows held out: row i is held out when the split hash of (seed, i)
/// falls below fraction · 2³², so about that fraction of rows, the same ones on every
/// backend, with no index list anywhere.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Split {
    pub fraction: f64,
    pub seed: u64,
}

impl Split {
    /// The hash threshold: rows whose split hash is below it are held out.
    pub fn threshold(&self) -> u32 {
        (self.fraction * 4_294_967_296.0)
            .round()
            .min(u32::MAX as f64) as u32
    }

    /// Whether row `row` is held out.
    pub fn holds_out(&self, row: u32) -> bool {
        crate::rng::cell_hash(self.seed, crate::rng::STREAM_SPLIT, row, 0)[0] < self.threshold()
    }

    /// Whether a pass over `rows` uses row `row`.
    pub fn contains(split: Option<&Split>, rows: RowSet, row: u32) -> bool {
        rows == RowSet::All || rows.uses(split.map(|s| s.holds_out(row)))
    }
}

/// Per-class weights: every row's loss is multiplied by the weight of its label.
#[derive(Clone, Debug, PartialEq)]
pub enum ClassWeights {
    /// n / (classes · n_c), scikit-learn's `balanced`, over the training rows.
    Balanced,
    /// One weight per class (labels 0 and 1 for logistic regression).
    Given(Vec<f64>),
}

/// What stays fixed for a fit, set on a session before it runs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Setup {
    pub rule: crate::optim::UpdateRule,
    /// Rows held out for validation; training passes skip them.
    pub split: Option<Split>,
    pub class_weights: Option<ClassWeights>,
    /// Standardize the features (statistics of the training rows) for the optimizer.
    pub standardize: bool,
}

/// What [`Session::configure`](crate::Session::configure) derived from the rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Configured {
    pub standardization: Option<crate::optim::Standardization>,
    /// The weight of each class, when class weights are on.
    pub class_weights: Option<Vec<f64>>,
    /// Rows in the training set and the held-out set.
    pub training_rows: u64,
    pub held_out_rows: u64,
}

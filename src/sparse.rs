//! Sparse rows: X in compressed sparse row form (CSR), held once. Row i's non-zeros are
//! `indices[offsets[i]..offsets[i + 1]]` (u32 column indices) with the same range of
//! `values` (f32), or all ones when the values are left out (binary features). Labels,
//! sample weights and where they came from are as a [`Dataset`]'s.

use crate::data::{self, Dataset, Origin};
use crate::error::{Error, Result};
use crate::hashing::Hashing;
use crate::model::{Model, Objective};

/// Rows of sparse features X (CSR, n×d) and their labels y.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseDataset {
    features: usize,
    /// n + 1 offsets into `indices`, from 0 to the number of non-zeros.
    offsets: Vec<u64>,
    indices: Vec<u32>,
    /// One per index; `None`: every stored value is 1.
    values: Option<Vec<f32>>,
    y: Vec<f32>,
    weights: Option<Vec<f32>>,
    origin: Origin,
    /// Whether the libsvm file the rows came from counted columns from 1.
    one_based: Option<bool>,
    /// How the CSV the rows came from hashed its categorical columns.
    hashing: Option<Hashing>,
}

/// Row i of a [`SparseDataset`]: its non-zeros' columns and values.
#[derive(Clone, Copy, Debug)]
pub struct SparseRow<'a> {
    pub indices: &'a [u32],
    /// `None`: every value is 1.
    pub values: Option<&'a [f32]>,
}

impl SparseRow<'_> {
    /// (column, value) of each stored entry, in storage order.
    pub fn entries(&self) -> impl Iterator<Item = (usize, f32)> + '_ {
        self.indices.iter().enumerate().map(|(e, &j)| {
            let v = self.values.map_or(1.0, |v| v[e]);
            (j as usize, v)
        })
    }

    /// z = x·W + b (k = `z.len()` values) in f64, for θ = W row-major d×k then b.
    pub fn logits_into(&self, theta: &[f64], z: &mut [f64]) {
        let k = z.len();
        z.copy_from_slice(&theta[theta.len() - k..]);
        self.dot_into(theta, z);
    }

    /// x·v[j·k .. j·k + k] summed into `z` (k values), in f64: the row's logits without
    /// the bias, for W row-major d×k.
    pub fn dot_into(&self, w: &[f64], z: &mut [f64]) {
        let k = z.len();
        for (j, x) in self.entries() {
            let x = f64::from(x);
            for (zc, wc) in z.iter_mut().zip(&w[j * k..j * k + k]) {
                *zc += x * wc;
            }
        }
    }
}

impl SparseDataset {
    /// From CSR arrays: `offsets` (n + 1, from 0, non-decreasing, ending at the number of
    /// entries), column `indices` (< `features`), `values` (finite, one per index; `None`
    /// for all ones) and labels `y` (n, finite). Rows may list their columns in any order,
    /// and a column twice: such rows are put in column order and a column's values added
    /// up (scipy's `sum_duplicates`), so every row holds each column once.
    pub fn from_csr(
        offsets: Vec<u64>,
        indices: Vec<u32>,
        values: Option<Vec<f32>>,
        y: Vec<f32>,
        features: usize,
    ) -> Result<Self> {
        let shape = |what: &str, expected: String, found: String| Error::Shape {
            what: what.into(),
            expected,
            found,
        };
        if features == 0 || features > u32::MAX as usize + 1 {
            return Err(Error::option(
                "features",
                features,
                "a sparse dataset needs 1 to 2³² features (u32 column indices)",
            ));
        }
        if y.is_empty() {
            return Err(shape(
                "dataset",
                "at least one row".into(),
                "0 labels".into(),
            ));
        }
        if offsets.len() != y.len() + 1 {
            return Err(shape(
                "row offsets",
                format!("{} (one more than the {} labels)", y.len() + 1, y.len()),
                offsets.len().to_string(),
            ));
        }
        let nnz = indices.len() as u64;
        if offsets[0] != 0 || offsets[y.len()] != nnz {
            return Err(shape(
                "row offsets",
                format!("to start at 0 and end at the {nnz} indices"),
                format!("{} … {}", offsets[0], offsets[y.len()]),
            ));
        }
        if let Some(i) = offsets.windows(2).position(|w| w[1] < w[0]) {
            return Err(shape(
                &format!("row offsets {i} and {}", i + 1),
                "non-decreasing offsets".into(),
                format!("{} then {}", offsets[i], offsets[i + 1]),
            ));
        }
        if let Some(e) = indices.iter().position(|&j| j as usize >= features) {
            return Err(shape(
                &format!("column index {e}"),
                format!("below the {features} features"),
                indices[e].to_string(),
            ));
        }
        if let Some(v) = &values {
            if v.len() != indices.len() {
                return Err(shape(
                    "values",
                    format!("{} (one per index)", indices.len()),
                    v.len().to_string(),
                ));
            }
            if let Some(e) = v.iter().position(|x| !x.is_finite()) {
                return Err(shape(
                    &format!("value {e}"),
                    "a finite number".into(),
                    v[e].to_string(),
                ));
            }
        }
        if let Some(i) = y.iter().position(|v| !v.is_finite()) {
            return Err(shape(
                &format!("y[{i}]"),
                "a finite number".into(),
                y[i].to_string(),
            ));
        }
        let (offsets, indices, values) = canonical(offsets, indices, values);
        Ok(SparseDataset {
            features,
            offsets,
            indices,
            values,
            y,
            weights: None,
            origin: Origin::Memory,
            one_based: None,
            hashing: None,
        })
    }

    /// The same rows with per-row sample weights (finite, ≥ 0, one per row).
    pub fn with_weights(mut self, weights: Vec<f32>) -> Result<Self> {
        data::check_weights(&weights, self.rows())?;
        self.weights = Some(weights);
        Ok(self)
    }

    /// The same rows, their labels located by `origin` in messages.
    pub(crate) fn with_origin(mut self, origin: Origin) -> Self {
        self.origin = origin;
        self
    }

    /// The same rows, from a libsvm file that counts its columns from 1 (or 0).
    pub(crate) fn with_one_based(mut self, one_based: bool) -> Self {
        self.one_based = Some(one_based);
        self
    }

    /// The same rows, read from a CSV whose categorical columns `hashing` hashed.
    pub(crate) fn with_hashing(mut self, hashing: Hashing) -> Self {
        self.hashing = Some(hashing);
        self
    }

    /// For rows from a CSV with hashed columns: which, into how many bits, and the numeric
    /// columns before them. A model fitted to them keeps it, to read new files the same
    /// way.
    pub fn hashing(&self) -> Option<&Hashing> {
        self.hashing.as_ref()
    }

    /// The label column's name, when the rows came from a CSV that names it.
    pub fn target_name(&self) -> Option<&str> {
        match &self.origin {
            Origin::Csv { target_name, .. } if self.hashing.is_some() => Some(target_name),
            _ => None,
        }
    }

    /// For rows from a libsvm file: whether it counted its columns from 1 (as decided, or
    /// as forced). A model fitted to them keeps it, so that predicting reads new files the
    /// same way.
    pub fn libsvm_one_based(&self) -> Option<bool> {
        self.one_based
    }

    pub fn rows(&self) -> usize {
        self.y.len()
    }

    pub fn features(&self) -> usize {
        self.features
    }

    /// Stored entries (non-zeros, unless a value is an explicit 0).
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Bytes of the CSR arrays: offsets, indices and values.
    pub fn csr_bytes(&self) -> usize {
        8 * self.offsets.len()
            + 4 * self.indices.len()
            + self.values.as_ref().map_or(0, |v| 4 * v.len())
    }

    pub fn offsets(&self) -> &[u64] {
        &self.offsets
    }

    pub fn indices(&self) -> &[u32] {
        &self.indices
    }

    /// The stored values; `None` when every one is 1.
    pub fn values(&self) -> Option<&[f32]> {
        self.values.as_deref()
    }

    pub fn row(&self, i: usize) -> SparseRow<'_> {
        let (a, b) = (self.offsets[i] as usize, self.offsets[i + 1] as usize);
        SparseRow {
            indices: &self.indices[a..b],
            values: self.values.as_ref().map(|v| &v[a..b]),
        }
    }

    pub fn y(&self) -> &[f32] {
        &self.y
    }

    pub fn weights(&self) -> Option<&[f32]> {
        self.weights.as_deref()
    }

    /// Where label i lives, for messages (`file.svm, line 7, column 1 (label)`).
    pub fn label_location(&self, row: usize) -> String {
        self.origin.locate(row)
    }

    /// Labels ±1 (libsvm's binary convention) as logistic regression's 0 and 1: when every
    /// label is −1 or 1 and one is −1, each −1 becomes 0. Returns whether they changed.
    pub fn binary_labels_from_signs(&mut self) -> bool {
        let signs = self.y.iter().all(|&v| v == -1.0 || v == 1.0);
        if !signs || !self.y.contains(&-1.0) {
            return false;
        }
        for v in &mut self.y {
            *v = v.max(0.0);
        }
        true
    }

    /// As [`Dataset::class_count`].
    pub fn class_count(&self) -> Result<usize> {
        data::class_count(&self.y, &|i| self.label_location(i))
    }

    /// As [`Dataset::check_labels`].
    pub fn check_labels(&self, objective: &Objective) -> Result<()> {
        data::check_labels(&self.y, objective, &|i| self.label_location(i))
    }

    /// As [`Dataset::objective`].
    pub fn objective(
        &self,
        model: Model,
        loss: Option<crate::model::Loss>,
        classes: Option<usize>,
    ) -> Result<Objective> {
        data::objective_of(&self.y, model, loss, classes, &|i| self.label_location(i))
    }

    /// Rows `rows` as dense rows (zeros filled in): what backends without sparse passes,
    /// and the tests' comparisons, take. Refused, naming the bytes, when the machine does
    /// not have the memory.
    pub fn to_dense(&self, rows: std::ops::Range<usize>) -> Result<Dataset> {
        let d = self.features;
        let n = rows.len();
        let cells = n.saturating_mul(d);
        let mut x = crate::floats::Floats::zeroed(cells, || {
            format!(
                "dense rows of a sparse dataset ({} × {})",
                crate::error::count(n, "row"),
                crate::error::count(d, "feature")
            )
        })?;
        for (r, i) in rows.clone().enumerate() {
            for (j, v) in self.row(i).entries() {
                x[r * d + j] += v;
            }
        }
        let data = Dataset::from_floats(x, self.y[rows.clone()].to_vec(), d)?;
        match &self.weights {
            Some(w) => data.with_weights(w[rows].to_vec()),
            None => Ok(data),
        }
    }

    /// The bit patterns of every number the rows hold, for fingerprints.
    pub(crate) fn bits(&self) -> impl Iterator<Item = u32> + '_ {
        let offsets = self
            .offsets
            .iter()
            .flat_map(|&o| [o as u32, (o >> 32) as u32]);
        let values = self.values.iter().flatten().map(|v| v.to_bits());
        let labels = self.y.iter().chain(self.weights.iter().flatten());
        offsets
            .chain(self.indices.iter().copied())
            .chain(values)
            .chain(labels.map(|v| v.to_bits()))
    }
}

/// A row's (column, value) entries in column order, a column listed twice once with its
/// values added (scipy's `sum_duplicates`).
pub(crate) fn in_column_order<J: Ord + Copy>(row: &mut Vec<(J, f32)>) {
    if row.windows(2).all(|w| w[0].0 < w[1].0) {
        return;
    }
    row.sort_by_key(|e| e.0);
    row.dedup_by(|later, kept| {
        let same = later.0 == kept.0;
        if same {
            kept.1 += later.1;
        }
        same
    });
}

/// The CSR arrays with every row in column order and each column once (its values
/// added); unchanged, without a copy, when that is so already.
fn canonical(
    offsets: Vec<u64>,
    indices: Vec<u32>,
    values: Option<Vec<f32>>,
) -> (Vec<u64>, Vec<u32>, Option<Vec<f32>>) {
    let ordered = offsets.windows(2).all(|w| {
        let row = &indices[w[0] as usize..w[1] as usize];
        row.windows(2).all(|p| p[0] < p[1])
    });
    if ordered {
        return (offsets, indices, values);
    }
    // Repeated columns of all-one values may add up to other values.
    let values = values.unwrap_or_else(|| vec![1.0; indices.len()]);
    let (mut new_offsets, mut new_indices, mut new_values) = (
        vec![0u64],
        Vec::with_capacity(indices.len()),
        Vec::with_capacity(values.len()),
    );
    let mut row: Vec<(u32, f32)> = Vec::new();
    for w in offsets.windows(2) {
        let (a, b) = (w[0] as usize, w[1] as usize);
        row.clear();
        row.extend(
            indices[a..b]
                .iter()
                .copied()
                .zip(values[a..b].iter().copied()),
        );
        in_column_order(&mut row);
        for &(j, v) in &row {
            new_indices.push(j);
            new_values.push(v);
        }
        new_offsets.push(new_indices.len() as u64);
    }
    let binary = new_values.iter().all(|&v| v == 1.0);
    (new_offsets, new_indices, (!binary).then_some(new_values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SparseDataset {
        // [[0, 2, 0], [0, 0, 0], [1, 0, 3]]; the last row lists its columns backwards.
        SparseDataset::from_csr(
            vec![0, 1, 1, 3],
            vec![1, 2, 0],
            Some(vec![2.0, 3.0, 1.0]),
            vec![1.0, 0.0, 1.0],
            3,
        )
        .unwrap()
    }

    #[test]
    fn rows_come_back_dense_with_zeros_filled_in() {
        let s = small();
        // The backwards row was put in column order.
        assert_eq!(s.indices(), &[1, 0, 2]);
        assert_eq!((s.rows(), s.features(), s.nnz()), (3, 3, 3));
        let dense = s.to_dense(0..3).unwrap();
        assert_eq!(dense.x(), &[0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 3.0]);
        let mut z = [0.0];
        s.row(2).dot_into(&[10.0, 20.0, 30.0], &mut z);
        assert_eq!(z, [100.0]);
        assert_eq!(s.to_dense(1..3).unwrap().x(), &dense.x()[3..]);
    }

    #[test]
    fn malformed_csr_is_refused_naming_the_entry() {
        let refused = |offsets: Vec<u64>, indices: Vec<u32>, values: Option<Vec<f32>>| {
            SparseDataset::from_csr(offsets, indices, values, vec![0.0, 1.0], 3)
                .unwrap_err()
                .to_string()
        };
        let e = refused(vec![0, 3, 2], vec![0, 1], None);
        assert!(e.contains("non-decreasing"), "{e}");
        let e = refused(vec![0, 1, 2], vec![0, 3], None);
        assert!(
            e.contains("column index 1") && e.contains("below the 3 features"),
            "{e}"
        );
        let e = refused(vec![0, 1, 3], vec![0, 1], None);
        assert!(e.contains("end at the 2 indices"), "{e}");
        let e = refused(vec![0, 1, 2], vec![0, 1], Some(vec![1.0, f32::NAN]));
        assert!(e.contains("value 1") && e.contains("finite"), "{e}");
        let e = refused(vec![0, 1], vec![0], None);
        assert!(e.contains("one more than the 2 labels"), "{e}");
    }

    #[test]
    fn signs_become_logistic_labels() {
        let mut s =
            SparseDataset::from_csr(vec![0, 0, 0], vec![], None, vec![-1.0, 1.0], 2).unwrap();
        assert!(s.binary_labels_from_signs());
        assert_eq!(s.y(), &[0.0, 1.0]);
        assert!(!s.binary_labels_from_signs());
    }
}

#[cfg(feature = "sprs")]
mod sprs_matrices {
    use sprs::{CsMatI, CsMatViewI, SpIndex};

    use super::SparseDataset;
    use crate::error::{Error, Result};

    impl SparseDataset {
        /// From a sprs matrix (CSR, or CSC made CSR first; any index types) and its labels
        /// `y`; checked as [`SparseDataset::from_csr`] checks its arrays.
        pub fn from_sprs<I: SpIndex, Iptr: SpIndex>(
            x: CsMatViewI<'_, f32, I, Iptr>,
            y: &[f32],
        ) -> Result<Self> {
            from_matrix(x, y.to_vec(), |v| v)
        }

        /// [`SparseDataset::from_sprs`] from an f64 matrix and labels, rounded to f32.
        pub fn from_sprs_f64<I: SpIndex, Iptr: SpIndex>(
            x: CsMatViewI<'_, f64, I, Iptr>,
            y: &[f64],
        ) -> Result<Self> {
            from_matrix(x, y.iter().map(|&v| v as f32).collect(), |v| v as f32)
        }

        /// X as a sprs CSR matrix (values of 1 written out where the rows keep none).
        pub fn to_sprs(&self) -> Result<CsMatI<f32, u32, u64>> {
            let values = match self.values() {
                Some(v) => v.to_vec(),
                None => vec![1.0; self.indices().len()],
            };
            let shape = (self.rows(), self.features());
            CsMatI::try_new(
                shape,
                self.offsets().to_vec(),
                self.indices().to_vec(),
                values,
            )
            .map_err(|(_, _, _, e)| Error::Shape {
                what: "a sprs CSR matrix".into(),
                expected: "a valid compressed structure".into(),
                found: e.to_string(),
            })
        }
    }

    /// The rows of `x` (a CSR copy first when it is CSC), each value through `value`.
    fn from_matrix<N: Copy + Default, I: SpIndex, Iptr: SpIndex>(
        x: CsMatViewI<'_, N, I, Iptr>,
        y: Vec<f32>,
        value: impl Fn(N) -> f32,
    ) -> Result<SparseDataset> {
        let features = x.cols();
        if features > u32::MAX as usize + 1 {
            // from_csr names the limit; no index is narrowed before it does.
            return SparseDataset::from_csr(vec![0], Vec::new(), None, y, features);
        }
        let csr;
        let x = match x.is_csr() {
            true => x,
            false => {
                csr = x.to_other_storage();
                csr.view()
            }
        };
        let mut offsets = Vec::with_capacity(x.rows() + 1);
        offsets.push(0u64);
        let mut indices = Vec::with_capacity(x.nnz());
        let mut values = Vec::with_capacity(x.nnz());
        for row in x.outer_iterator() {
            for (j, &v) in row.iter() {
                indices.push(j as u32);
                values.push(value(v));
            }
            offsets.push(indices.len() as u64);
        }
        SparseDataset::from_csr(offsets, indices, Some(values), y, features)
    }
}

//! Helpers shared by the integration tests: the shared GPU, random problems, comparisons.
#![allow(dead_code)]

pub mod cli;

use std::sync::OnceLock;

use downhill::backend::cpu::{Cpu, Simd};
use downhill::backend::reference::Reference;
use downhill::backend::{Backend, Data};
use downhill::custom::{CustomLoss, LossKind};
use downhill::gpu::kernels::Tuning;
use downhill::gpu::{Gpu, GpuContext, GpuOptions};
use downhill::rng::cell_hash;
use downhill::{Dataset, Gradient, Model, Objective, Params, SparseDataset, Synthetic, Trainer};

/// The GPU every test in this binary shares, or `None` (after printing
/// `skipped: no GPU adapter`) when there is none. With DOWNHILL_REQUIRE_GPU=1 a missing
/// adapter fails the test instead.
pub fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Result<Gpu, String>> = OnceLock::new();
    let opened = GPU.get_or_init(|| GpuContext::open().map(Gpu::new).map_err(|e| e.to_string()));
    match opened {
        Ok(gpu) => Some(gpu),
        Err(why) if std::env::var("DOWNHILL_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("DOWNHILL_REQUIRE_GPU=1 but no GPU adapter could be opened: {why}")
        }
        Err(_) => {
            println!("skipped: no GPU adapter");
            None
        }
    }
}

/// The shared GPU under each kernel tuning: GPU-style (tiles staged in workgroup memory,
/// 256-wide) and CPU-style (rows read in place, 64-wide), so both shapes of the fused kernel
/// are checked on whatever device runs the tests.
pub fn gpu_tunings() -> Vec<(&'static str, Gpu)> {
    gpu_tunings_with(|tuning| tuning)
}

/// [`gpu_tunings`] with each tuning changed by `edit`.
pub fn gpu_tunings_with(edit: impl Fn(Tuning) -> Tuning) -> Vec<(&'static str, Gpu)> {
    let Some(gpu) = gpu() else { return Vec::new() };
    [("gpu tuning", Tuning::GPU), ("cpu tuning", Tuning::CPU)]
        .into_iter()
        .map(|(name, tuning)| {
            let options = GpuOptions {
                tuning: Some(edit(tuning)),
                ..gpu.options()
            };
            (name, gpu.with_options(options))
        })
        .collect()
}

/// For each (rows, features, classes) of `shapes`, a softmax problem unweighted and with
/// sample weights (0.25 to 2.05 by row) and parameters at which `check(what, data,
/// objective, params, expected)` gets the f64 reference's gradient.
pub fn for_each_softmax_case(
    shapes: &[(usize, usize, usize)],
    mut check: impl FnMut(&str, &Dataset, Objective, &Params, &Gradient),
) {
    for &(rows, d, k) in shapes {
        let objective = Objective::softmax(k).unwrap();
        let plain = problem(rows, d, objective, (rows + d + k) as u64);
        let weights: Vec<f32> = (0..rows).map(|i| 0.25 + (i % 7) as f32 * 0.3).collect();
        let weighted = plain.clone().with_weights(weights).unwrap();
        let params = random_params(d, k, 1.0 / (d as f64).sqrt(), 3);
        for (what_data, data) in [("unweighted", &plain), ("weighted", &weighted)] {
            let mut reference = Reference.open(Data::Host(data), objective).unwrap();
            reference.set_params(&params).unwrap();
            let expected = reference.gradient().unwrap();
            let what = format!("{rows} × {d}, {k} classes, {what_data}");
            check(&what, data, objective, &params, &expected);
        }
    }
}

/// Three epochs of shuffled mini-batches of 200 with a held-out fifth, softmax of `k`
/// classes over `rows` rows of 24 features, with cross-entropy and with a focal custom
/// loss: `check(backend, what)` for each fit of `backend` (from `backends`), asserted to
/// land on the reference's parameters and to repeat its bits on a rerun.
pub fn check_shuffled_softmax_fits(k: usize, rows: usize, backends: &[(String, &dyn Backend)]) {
    let focal = CustomLoss::parse("-t * (1 - p)^2 * ln(p)", LossKind::Class)
        .unwrap()
        .register();
    for objective in [
        Objective::softmax(k).unwrap(),
        Objective::new(Model::Softmax, Some(focal), k).unwrap(),
    ] {
        let data = problem(rows, 24, Objective::softmax(k).unwrap(), rows as u64);
        let trainer = Trainer::new()
            .lr(0.5)
            .epochs(3)
            .batch_size(200)
            .seed(5)
            .validation_fraction(0.2);
        let expected = downhill::fit(&Reference, &data, objective, &trainer).unwrap();
        for (name, backend) in backends {
            let what = format!("{objective}, {name}");
            let fit = downhill::fit(*backend, &data, objective, &trainer).unwrap();
            assert_close(&what, fit.params.weights(), expected.params.weights(), 1e-4);
            assert_close(&what, fit.params.bias(), expected.params.bias(), 1e-4);
            let again = downhill::fit(*backend, &data, objective, &trainer).unwrap();
            assert_eq!(fit.params, again.params, "{what}: rerun");
        }
    }
}

/// Asserts that a rerun gave the same bits: loss, weights and bias.
pub fn assert_same_bits(what: &str, got: &Gradient, again: &Gradient) {
    assert_eq!(got.weights, again.weights, "{what}: rerun");
    assert_eq!(got.bias, again.bias, "{what}: rerun");
    assert_eq!(got.loss.to_bits(), again.loss.to_bits(), "{what}: rerun");
}

/// The backends checked against the reference: the fast CPU backend at every level of
/// vector instructions this CPU has, and the GPU under each tuning (when there is a GPU).
pub fn fast_backends() -> Vec<(String, Box<dyn Backend>)> {
    let mut all: Vec<(String, Box<dyn Backend>)> = Vec::new();
    for simd in Simd::ALL {
        if let Ok(cpu) = Cpu::with_simd(simd) {
            all.push((format!("cpu, {}", simd.name()), Box::new(cpu)));
        }
    }
    for (name, gpu) in gpu_tunings() {
        all.push((format!("gpu, {name}"), Box::new(gpu)));
    }
    all
}

/// The reference, then [`fast_backends`].
pub fn all_backends() -> Vec<(String, Box<dyn Backend>)> {
    let mut all: Vec<(String, Box<dyn Backend>)> = vec![("reference".into(), Box::new(Reference))];
    all.extend(fast_backends());
    all
}

/// A synthetic problem's rows, for tests that need host data.
pub fn problem(rows: usize, features: usize, objective: Objective, seed: u64) -> Dataset {
    Synthetic::new(rows, features, objective, seed)
        .unwrap()
        .generate()
        .unwrap()
}

/// Parameters with entries uniform in [−scale, scale), from a hash of `seed`.
pub fn random_params(features: usize, outputs: usize, scale: f64, seed: u64) -> Params {
    let value = |i: usize| {
        let h = cell_hash(seed, 9, i as u32, 0)[0];
        (f64::from(h) / 4_294_967_296.0 * 2.0 - 1.0) * scale
    };
    let weights = (0..features * outputs).map(value).collect();
    let bias = (0..outputs)
        .map(|c| value(features * outputs + c))
        .collect();
    Params::new(features, outputs, weights, bias).unwrap()
}

/// Asserts every entry of `a` is within `tol` × max(1, largest |entry of b|) of `b`.
pub fn assert_close(what: &str, a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            approx::abs_diff_eq!(x, y, epsilon = tol * scale),
            "{what}[{i}]: {x} vs {y} (tolerance {} = {tol} × {scale})",
            tol * scale
        );
    }
}

/// Asserts two gradients agree: the loss relative to itself, ∇ relative to the largest entry.
pub fn assert_gradients_close(what: &str, a: &Gradient, b: &Gradient, tol: f64) {
    assert!(
        approx::relative_eq!(a.loss, b.loss, max_relative = tol, epsilon = tol),
        "{what}: loss {} vs {}",
        a.loss,
        b.loss
    );
    let all = |g: &Gradient| g.weights.iter().chain(&g.bias).copied().collect::<Vec<_>>();
    let scale = b.max_abs().max(1e-3);
    let (x, y) = (all(a), all(b));
    for (i, (p, q)) in x.iter().zip(&y).enumerate() {
        assert!(
            approx::abs_diff_eq!(p, q, epsilon = tol * scale),
            "{what}: gradient entry {i}: {p} vs {q} (scale {scale})"
        );
    }
}

/// Least squares by the normal equations [XᵀX Xᵀ1; 1ᵀX n] θ = [Xᵀy; 1ᵀy], in f64.
pub fn least_squares(data: &Dataset) -> Vec<f64> {
    least_squares_with(data, true)
}

/// Least squares with an intercept (θ = w then b), or through the origin (XᵀX w = Xᵀy,
/// θ = w then b = 0), in f64.
pub fn least_squares_with(data: &Dataset, intercept: bool) -> Vec<f64> {
    let d = data.features();
    let m = d + usize::from(intercept);
    let mut a = vec![vec![0.0f64; m + 1]; m];
    for i in 0..data.rows() {
        let mut row: Vec<f64> = data.row(i).iter().map(|&v| f64::from(v)).collect();
        if intercept {
            row.push(1.0);
        }
        let y = f64::from(data.y()[i]);
        for r in 0..m {
            for c in 0..m {
                a[r][c] += row[r] * row[c];
            }
            a[r][m] += row[r] * y;
        }
    }
    // Gauss–Jordan elimination with partial pivoting.
    for col in 0..m {
        let pivot = (col..m)
            .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
            .unwrap();
        a.swap(col, pivot);
        let pivot_row = a[col].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != col {
                let f = row[col] / pivot_row[col];
                for (v, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                    *v -= f * p;
                }
            }
        }
    }
    let mut theta: Vec<f64> = (0..m).map(|r| a[r][m] / a[r][r]).collect();
    if !intercept {
        theta.push(0.0);
    }
    theta
}

/// A synthetic problem's rows with about 80 % of X zeroed by a hash, as CSR: some rows
/// empty, one listing its columns backwards and one a column twice (which adds up).
pub fn sparse_problem(rows: usize, d: usize, objective: Objective, seed: u64) -> SparseDataset {
    let dense = problem(rows, d, objective, seed);
    let (mut offsets, mut indices, mut values) = (vec![0u64], Vec::new(), Vec::new());
    for i in 0..rows {
        let mut row: Vec<(u32, f32)> = dense
            .row(i)
            .iter()
            .enumerate()
            .filter(|(j, _)| (i * 31 + j * 17 + seed as usize).is_multiple_of(5) && i % 29 != 3)
            .map(|(j, &v)| (j as u32, v))
            .collect();
        if i == 7 {
            row.reverse();
        }
        if i == 11
            && let Some(&(j, v)) = row.first()
        {
            row[0].1 = v / 2.0;
            row.push((j, v / 2.0));
        }
        for (j, v) in row {
            indices.push(j);
            values.push(v);
        }
        offsets.push(indices.len() as u64);
    }
    SparseDataset::from_csr(offsets, indices, Some(values), dense.y().to_vec(), d).unwrap()
}

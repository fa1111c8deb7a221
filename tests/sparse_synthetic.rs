//! Sparse synthetic problems (`fit --rows N --features D --density p`): each row keeps
//! round(p·d) of the dense problem's cells, its label follows the true parameters, a fit
//! on enough rows lands near them on the CPU and the GPU alike, the same seed gives the
//! same bits, and a density out of range is refused.

mod common;

use common::cli::{fails, json};
use downhill::backend::cpu::Cpu;
use downhill::train::Solver;
use downhill::{Objective, Synthetic, Trainer};

#[test]
fn rows_keep_the_dense_problems_cells_and_labels() {
    let problem = Synthetic::new(3000, 40, Objective::linear(), 7).unwrap();
    let sparse = problem.sparse_rows(0.1).unwrap();
    let dense = problem.generate().unwrap();
    let truth = problem.sparse_true_params(0.1).unwrap();
    assert_eq!((sparse.rows(), sparse.features()), (3000, 40));
    let mut residuals = Vec::new();
    for i in 0..3000 {
        let row = sparse.row(i);
        // Four columns drawn (round(0.1 · 40)), a repeat kept once.
        assert!((1..=4).contains(&row.indices.len()), "row {i}");
        let mut z = truth.bias()[0];
        for (j, v) in row.entries() {
            assert_eq!(v, dense.row(i)[j], "row {i}, column {j}");
            z += f64::from(v) * truth.weights()[j];
        }
        residuals.push(f64::from(sparse.y()[i]) - z);
    }
    // Linear labels are z plus noise of standard deviation 0.125.
    let n = residuals.len() as f64;
    let mean = residuals.iter().sum::<f64>() / n;
    let sd = (residuals.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n).sqrt();
    assert!(
        mean.abs() < 0.01 && (sd - 0.125).abs() < 0.01,
        "{mean} {sd}"
    );
    assert_eq!(
        problem.sparse_rows(0.1).unwrap(),
        sparse,
        "the same bits again"
    );
    assert_ne!(
        Synthetic::new(3000, 40, Objective::linear(), 8)
            .unwrap()
            .sparse_rows(0.1)
            .unwrap(),
        sparse
    );
}

#[test]
fn fits_find_the_true_parameters_on_every_backend() {
    let problem = Synthetic::new(60_000, 500, Objective::logistic(), 3).unwrap();
    let sparse = problem.sparse_rows(0.02).unwrap();
    let truth = problem.sparse_true_params(0.02).unwrap().flat();
    let trainer = Trainer::new().solver(Solver::Lbfgs).l2(1e-6);
    let distance = |flat: &[f64]| {
        let gap: f64 = flat.iter().zip(&truth).map(|(a, b)| (a - b).powi(2)).sum();
        let norm: f64 = truth.iter().map(|b| b * b).sum();
        (gap / norm).sqrt()
    };
    let cpu = downhill::fit(&Cpu::default(), &sparse, Objective::logistic(), &trainer).unwrap();
    let on_cpu = distance(&cpu.params.flat());
    // Ten non-zeros a row and 120 rows a parameter: the estimate's own noise.
    assert!(on_cpu < 0.2, "relative distance to the truth {on_cpu}");
    if let Some(gpu) = common::gpu() {
        let fit = downhill::fit(gpu, &sparse, Objective::logistic(), &trainer).unwrap();
        common::assert_close(
            "gpu against cpu",
            &fit.params.flat(),
            &cpu.params.flat(),
            1e-3,
        );
    }
}

#[test]
fn the_command_line_reports_the_distance_to_the_truth() {
    let v = json(&[
        "fit",
        "--model",
        "logistic",
        "--rows",
        "30000",
        "--features",
        "60",
        "--density",
        "0.1",
        "--solver",
        "lbfgs",
        "--json",
    ]);
    assert_eq!(v["backend"], "cpu", "{v}");
    assert_eq!(
        (v["rows"].as_u64(), v["features"].as_u64()),
        (Some(30000), Some(60))
    );
    let relative = v["relative_distance_to_truth"].as_f64().unwrap();
    assert!(relative < 0.3, "{v}");
    for bad in ["0", "1.5", "nan"] {
        let e = fails(&[
            "fit",
            "--model",
            "logistic",
            "--rows",
            "100",
            "--features",
            "10",
            "--density",
            bad,
        ]);
        assert!(
            e.contains("density") && e.contains("at most 1"),
            "{bad}: {e}"
        );
    }
}

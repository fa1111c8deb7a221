//! The GPU's curvature passes (`shaders/curvature.wgsl`) against the f64 reference's:
//! the Hessian sums and Hessian-vector sums of every built-in loss, with sample and class
//! weights and a held-out split, on resident, sharded and streamed rows, under a loop
//! limit that cuts the rows into many blocks; the same bits on a rerun; and the Newton
//! solvers on the GPU reaching the reference's optimum.

mod common;

use downhill::backend::reference::Reference;
use downhill::backend::{Backend, ClassWeights, Data, RowSet, Setup, Split};
use downhill::custom::{CustomLoss, LossKind};
use downhill::gpu::{Gpu, GpuOptions};
use downhill::train::Solver;
use downhill::{Dataset, Loss, Model, Objective, Trainer};

use common::{assert_close, problem, random_params};

/// The GPU as the curvature passes meet it: resident, sharded in small shards, streamed
/// in small chunks, and planned for a loop limit of 4 096 (blocks of a few hundred rows).
fn layouts(gpu: &Gpu, row_bytes: u64) -> Vec<(&'static str, Gpu)> {
    let with = |options: GpuOptions| gpu.with_options(options);
    vec![
        ("resident", gpu.clone()),
        (
            "sharded",
            with(GpuOptions {
                max_shard_bytes: Some(row_bytes * 700),
                ..gpu.options()
            }),
        ),
        (
            "streamed",
            with(GpuOptions {
                max_device_bytes: Some(row_bytes * 1500),
                ..gpu.options()
            }),
        ),
        (
            "loop limit 4096",
            with(GpuOptions {
                loop_limit: Some(Some(4096)),
                ..gpu.options()
            }),
        ),
    ]
}

/// Weighted rows: sample weights in (0.5, 1.5].
fn weighted(data: Dataset) -> Dataset {
    let w = (0..data.rows())
        .map(|i| 0.5 + ((i * 37 % 100) as f32 + 1.0) / 100.0)
        .collect();
    data.with_weights(w).unwrap()
}

fn setup(objective: &Objective) -> Setup {
    Setup {
        split: Some(Split {
            fraction: 0.2,
            seed: 11,
        }),
        class_weights: (objective.model() != Model::Linear).then(|| {
            ClassWeights::Given(
                (0..objective.outputs().max(2))
                    .map(|c| 1.0 + 0.5 * c as f64)
                    .collect(),
            )
        }),
        ..Setup::default()
    }
}

#[test]
fn gpu_hessians_and_products_equal_the_references_on_every_row_layout() {
    let Some(gpu) = common::gpu() else { return };
    let objectives = [
        Objective::linear(),
        Objective::logistic(),
        Objective::new(Model::Logistic, Some(Loss::Mse), 2).unwrap(),
        Objective::softmax(2).unwrap(),
        Objective::softmax(7).unwrap(),
    ];
    for objective in objectives {
        // H of one 64-entry tile, several, and (130 features) three a side for one output.
        for (rows, d) in [(3000, 5), (2100, 37), (700, 130)] {
            let data = weighted(problem(rows, d, objective, 3));
            let k = objective.outputs();
            let p = (d + 1) * k;
            let params = random_params(d, k, 0.4, 5);
            let v: Vec<f64> = (0..p).map(|i| ((i * 5 % 7) as f64 - 3.0) * 0.2).collect();
            let mut reference = Reference.open(Data::Host(&data), objective).unwrap();
            reference.configure(&setup(&objective)).unwrap();
            reference.set_params(&params).unwrap();
            for rows_used in [RowSet::Training, RowSet::All] {
                let expected = reference.hessian_sums(rows_used).unwrap();
                let expected_hv = reference.hessian_vector_sums(&v, rows_used).unwrap();
                let row_bytes = 4 * d.next_multiple_of(4) as u64;
                for (layout, backend) in layouts(gpu, row_bytes) {
                    let what = format!("{objective}, {rows} × {d}, {rows_used:?}, {layout}");
                    let mut session = backend.open(Data::Host(&data), objective).unwrap();
                    assert!(session.has_curvature(), "{what}");
                    session.configure(&setup(&objective)).unwrap();
                    session.set_params(&params).unwrap();
                    let sums = session.hessian_sums(rows_used).unwrap();
                    assert_close(
                        &format!("{what}: Hessian"),
                        &sums.hessian,
                        &expected.hessian,
                        2e-5,
                    );
                    assert_close(
                        &format!("{what}: its gradient"),
                        &sums.pass.gradient,
                        &expected.pass.gradient,
                        2e-5,
                    );
                    let weight = sums.pass.metrics[1];
                    let expected_weight = expected.pass.metrics[1];
                    assert!(
                        (weight - expected_weight).abs() <= 1e-4 * expected_weight,
                        "{what}: Σw {weight} vs {expected_weight}"
                    );
                    let hv = session.hessian_vector_sums(&v, rows_used).unwrap();
                    assert_close(&format!("{what}: Hv"), &hv, &expected_hv, 2e-5);
                    assert_eq!(
                        session.hessian_sums(rows_used).unwrap(),
                        sums,
                        "{what}: rerun"
                    );
                    assert_eq!(
                        session.hessian_vector_sums(&v, rows_used).unwrap(),
                        hv,
                        "{what}: Hv rerun"
                    );
                }
            }
        }
    }
}

#[test]
fn the_newton_solvers_on_the_gpu_reach_the_references_optimum() {
    let Some(gpu) = common::gpu() else { return };
    for objective in [Objective::logistic(), Objective::softmax(4).unwrap()] {
        let data = problem(20_000, 12, objective, 8);
        let trainer = |solver| Trainer::new().solver(solver).l2(1e-3);
        let exact = downhill::fit(&Reference, &data, objective, &trainer(Solver::Newton)).unwrap();
        let optimum = exact.solved.as_ref().unwrap().objective;
        for solver in [Solver::Auto, Solver::Newton, Solver::NewtonCg] {
            let fit = downhill::fit(gpu, &data, objective, &trainer(solver)).unwrap();
            let solved = fit.solved.as_ref().unwrap();
            let what = format!("{objective}, {solver} on the gpu");
            assert!(solved.converged, "{what}: {}", solved.reason);
            if solver == Solver::Auto {
                assert_eq!(solved.solver, Solver::Newton, "{what}: {}", solved.why);
            }
            // The objective of the GPU's parameters, measured by the reference in f64.
            let mut session = Reference.open(Data::Host(&data), objective).unwrap();
            session.set_params(&fit.params).unwrap();
            let g = session.gradient().unwrap();
            let w = fit.params.weights();
            let f = g.loss + 0.5e-3 * w.iter().map(|v| v * v).sum::<f64>();
            let gap = (f - optimum) / optimum.abs();
            assert!(gap <= 1e-6, "{what}: {f} vs {optimum}: {gap:e}");
            let again = downhill::fit(gpu, &data, objective, &trainer(solver)).unwrap();
            assert_eq!(again.params, fit.params, "{what}: rerun");
        }
    }
}

/// A custom loss has its curvature on the GPU, from the WGSL its graph compiles to (for
/// softmax, C = diag(r) − rpᵀ − prᵀ + Q·ppᵀ from the class terms' first and second
/// derivatives): the Hessian and Hessian-vector sums equal the reference's (whose
/// curvature comes from the tape in f64), and auto's Newton reaches the reference's
/// optimum.
#[test]
fn custom_losses_on_the_gpu() {
    let Some(gpu) = common::gpu() else { return };
    let huber = CustomLoss::parse("2^2 * (sqrt(1 + ((z - y) / 2)^2) - 1)", LossKind::Output)
        .unwrap()
        .register();
    let tanh = CustomLoss::parse(
        "ln(1 + exp(z)) - y * z + 0.1 * tanh(z) / (1 + y)",
        LossKind::Output,
    )
    .unwrap()
    .register();
    let focal = CustomLoss::parse("-t * (1 - p)^2 * ln(p)", LossKind::Class)
        .unwrap()
        .register();
    // The softmax's 93 parameters take two 64-entry tiles of H a side.
    for (model, loss, k, d) in [
        (Model::Linear, huber, 1, 5),
        (Model::Logistic, tanh, 1, 5),
        (Model::Softmax, focal, 3, 30),
    ] {
        let objective = Objective::new(model, Some(loss), k).unwrap();
        let data = problem(3000, d, Objective::new(model, None, k).unwrap(), 2);
        let params = random_params(d, k, 0.5, 3);
        let mut reference = Reference.open(Data::Host(&data), objective).unwrap();
        let mut session = gpu.open(Data::Host(&data), objective).unwrap();
        assert!(session.has_curvature(), "{objective}");
        let setup = setup(&objective);
        reference.configure(&setup).unwrap();
        session.configure(&setup).unwrap();
        reference.set_params(&params).unwrap();
        session.set_params(&params).unwrap();
        let (a, b) = (
            session.hessian_sums(RowSet::Training).unwrap(),
            reference.hessian_sums(RowSet::Training).unwrap(),
        );
        assert_close(&format!("{objective}: H"), &a.hessian, &b.hessian, 1e-4);
        let v: Vec<f64> = (0..(d + 1) * k).map(|i| 0.3 * i as f64 - 0.7).collect();
        let (a, b) = (
            session.hessian_vector_sums(&v, RowSet::Training).unwrap(),
            reference.hessian_vector_sums(&v, RowSet::Training).unwrap(),
        );
        assert_close(&format!("{objective}: Hv"), &a, &b, 1e-4);
        let trainer = Trainer::new().l2(1e-3);
        let fit = downhill::fit(gpu, &data, objective, &trainer).unwrap();
        let solved = fit.solved.as_ref().unwrap();
        assert_eq!(solved.solver, Solver::Newton, "{objective}: {}", solved.why);
        // The custom logistic loss's graph computes ln(1 + e^z) − y·z in f32, whose
        // cancellation hides the last digits of F (the built-in loss avoids it): there
        // Newton may stall short of the tolerance, at the optimum (the gap below).
        assert!(
            solved.converged || model == Model::Logistic,
            "{objective}: {}",
            solved.reason
        );
        let exact = downhill::fit(&Reference, &data, objective, &trainer).unwrap();
        let optimum = exact.solved.as_ref().unwrap().objective;
        // The objective of the GPU's parameters, measured by the reference in f64.
        reference.configure(&Setup::default()).unwrap();
        reference.set_params(&fit.params).unwrap();
        let w = fit.params.weights();
        let f = reference.gradient().unwrap().loss + 0.5e-3 * w.iter().map(|v| v * v).sum::<f64>();
        let gap = (f - optimum) / optimum.abs();
        assert!(gap <= 1e-6, "{objective}: {f} vs {optimum}: {gap:e}");
    }
}

//! Fits without an intercept (`Trainer::fit_intercept(false)`, scikit-learn's
//! `fit_intercept=False`): every solver and optimizer on every backend holds the bias at
//! zero and reaches the fit through the origin, the normal equations' XᵀX w = Xᵀy.

mod common;

use downhill::backend::Data;
use downhill::backend::reference::Reference;
use downhill::train::Solver;
use downhill::{Objective, Params, Trainer};

use common::{assert_close, least_squares, least_squares_with, problem};

#[test]
fn without_an_intercept_every_solver_and_optimizer_fits_through_the_origin() {
    // The synthetic problem's true bias is not zero, so the fit through the origin differs
    // from the one with an intercept: it is the normal equations' XᵀX w = Xᵀy.
    let data = problem(2000, 4, Objective::linear(), 5);
    let expected = least_squares_with(&data, false);
    assert!(distance(&expected, &least_squares(&data)) > 0.05);
    for (name, backend) in common::all_backends() {
        let session = backend
            .open(Data::Host(&data), Objective::linear())
            .unwrap();
        let solvers = match session.has_curvature() {
            true => vec![Solver::Newton, Solver::NewtonCg, Solver::Lbfgs],
            false => vec![Solver::Lbfgs],
        };
        drop(session);
        let mut trainers: Vec<(String, Trainer)> = solvers
            .into_iter()
            .map(|s| (s.to_string(), Trainer::new().solver(s)))
            .collect();
        trainers.push(("gd".into(), Trainer::new().lr(0.1).epochs(1500)));
        trainers.push((
            "adam, mini-batches".into(),
            Trainer::new()
                .optimizer(downhill::optim::OptimizerKind::Adam)
                .lr(0.01)
                .epochs(400)
                .batch_size(1000),
        ));
        for (solver, trainer) in trainers {
            let what = format!("{name}, {solver}");
            let trainer = trainer.fit_intercept(false);
            let fit = downhill::fit(backend.as_ref(), &data, Objective::linear(), &trainer)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(fit.params.bias(), &[0.0], "{what}: the bias moved");
            let tol = if solver.contains("adam") { 1e-2 } else { 1e-5 };
            assert_close(&what, &fit.params.flat(), &expected, tol);
        }
    }
    // Logistic and softmax: the bias stays zero, and every solver reaches the same F.
    for objective in [Objective::logistic(), Objective::softmax(3).unwrap()] {
        let data = problem(3000, 3, objective, 8);
        let trainer = Trainer::new().l2(1e-3).fit_intercept(false);
        let reference = downhill::fit(&Reference, &data, objective, &trainer).unwrap();
        for solver in [Solver::Newton, Solver::NewtonCg, Solver::Lbfgs] {
            let fit = downhill::fit(
                &downhill::backend::cpu::Cpu::default(),
                &data,
                objective,
                &trainer.clone().solver(solver),
            )
            .unwrap();
            let what = format!("{objective}, {solver}");
            assert!(fit.params.bias().iter().all(|&b| b == 0.0), "{what}");
            assert_close(&what, &fit.params.flat(), &reference.params.flat(), 1e-5);
        }
    }
    // What it cannot be combined with.
    let refused = |trainer: Trainer| {
        downhill::fit(&Reference, &data, Objective::linear(), &trainer)
            .unwrap_err()
            .to_string()
    };
    let standardized = refused(Trainer::new().fit_intercept(false).standardize(true));
    assert!(
        standardized.contains("needs an intercept"),
        "{standardized}"
    );
    let init = Params::new(4, 1, vec![0.0; 4], vec![1.0]).unwrap();
    let started = refused(Trainer::new().fit_intercept(false).init(init));
    assert!(
        started.contains("must be zero without an intercept"),
        "{started}"
    );
}

fn distance(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

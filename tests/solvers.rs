//! The solvers that reach the optimum (newton, newton-cg, lbfgs/OWL-QN): against
//! scikit-learn's optima of its own datasets (tests/fixtures/make_optima.py), their
//! curvature passes against central differences of the f64 gradient, and how they are
//! chosen, stopped and refused.

mod common;

use downhill::backend::parallel::Parallel;
use downhill::backend::reference::Reference;
use downhill::backend::{Backend, Data, RowSet};
use downhill::train::{Solver, StopReason};
use downhill::{Dataset, Objective, Params, Trainer};
use serde_json::Value;

use common::{assert_close, least_squares, problem, random_params};

/// One case of the fixture: scikit-learn's rows, penalty, optimum and objective there.
struct Case {
    name: String,
    data: Dataset,
    objective: Objective,
    l2: f64,
    l1: f64,
    weights: Vec<f64>,
    bias: Vec<f64>,
    optimum: f64,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/sklearn_optima.json"
    ))
    .unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let floats = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    fixture["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let rows: Vec<Vec<f64>> = c["x"].as_array().unwrap().iter().map(floats).collect();
            let features = rows[0].len();
            let x: Vec<f32> = rows.iter().flatten().map(|&v| v as f32).collect();
            let y: Vec<f32> = floats(&c["y"]).iter().map(|&v| v as f32).collect();
            let objective = match c["model"].as_str().unwrap() {
                "linear" => Objective::linear(),
                "logistic" => Objective::logistic(),
                _ => Objective::softmax(c["classes"].as_u64().unwrap() as usize).unwrap(),
            };
            let weights = match &c["weights"] {
                Value::Array(a) if a.first().is_some_and(Value::is_array) => {
                    a.iter().flat_map(floats).collect()
                }
                w => floats(w),
            };
            Case {
                name: c["name"].as_str().unwrap().into(),
                data: Dataset::new(x, y, features).unwrap(),
                objective,
                l2: c["l2"].as_f64().unwrap_or(0.0),
                l1: c["l1"].as_f64().unwrap_or(0.0),
                weights,
                bias: floats(&c["bias"]),
                optimum: c["objective"].as_f64().unwrap(),
            }
        })
        .collect()
}

/// F at `params` on the f64 reference: the mean loss plus the penalties.
fn reference_objective(case: &Case, params: &Params) -> f64 {
    let g = downhill::gradient(&Reference, &case.data, case.objective, Some(params)).unwrap();
    let w = params.weights();
    g.loss
        + 0.5 * case.l2 * w.iter().map(|v| v * v).sum::<f64>()
        + case.l1 * w.iter().map(|v| v.abs()).sum::<f64>()
}

/// The solvers each backend is checked with: every one where it has curvature passes.
fn solvers_on(backend: &dyn Backend, case: &Case) -> Vec<Solver> {
    let session = backend
        .open(Data::Host(&case.data), case.objective)
        .unwrap();
    match (case.l1 > 0.0, session.has_curvature()) {
        (true, _) | (false, false) => vec![Solver::Lbfgs],
        (false, true) => vec![Solver::Newton, Solver::NewtonCg, Solver::Lbfgs],
    }
}

#[test]
fn every_solver_reaches_scikit_learns_optimum_at_defaults_on_every_backend() {
    for case in cases() {
        for (backend_name, backend) in common::all_backends() {
            let reference = backend_name == "reference";
            for solver in solvers_on(backend.as_ref(), &case) {
                let what = format!("{} on {backend_name}, {solver}", case.name);
                let trainer = Trainer::new().solver(solver).l2(case.l2).l1(case.l1);
                let fit =
                    downhill::fit(backend.as_ref(), &case.data, case.objective, &trainer).unwrap();
                let solved = fit.solved.as_ref().unwrap();
                // Relative suboptimality against scikit-learn's optimum, measured in f64.
                let f = reference_objective(&case, &fit.params);
                let gap = (f - case.optimum) / case.optimum.abs();
                // The bounds: the reference reaches 1e-9, f32 rows 1e-6, with every
                // solver.
                let allowed = if reference { 1e-9 } else { 1e-6 };
                assert!(solved.converged, "{what}: {}", solved.reason);
                assert!(
                    gap <= allowed,
                    "{what}: objective {f} vs {}: {gap:e}",
                    case.optimum
                );
                let scale = case.weights.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                assert_close(&what, fit.params.weights(), &case.weights, 2e-3);
                let mut bias = fit.params.bias().to_vec();
                let mut expected = case.bias.clone();
                if bias.len() > 1 {
                    // Softmax biases are fixed only up to a common shift.
                    for v in [&mut bias, &mut expected] {
                        let mean = v.iter().sum::<f64>() / v.len() as f64;
                        v.iter_mut().for_each(|b| *b -= mean);
                    }
                }
                assert_close(&what, &bias, &expected, 2e-3 * scale);
                if case.l1 > 0.0 {
                    let zeros = |w: &[f64]| -> Vec<bool> { w.iter().map(|&v| v == 0.0).collect() };
                    assert_eq!(
                        zeros(fit.params.weights()),
                        zeros(&case.weights),
                        "{what}: the weights OWL-QN zeroes are saga's"
                    );
                }
            }
        }
    }
}

/// ∇J of the f64 reference at `theta` (W then b).
fn reference_gradient(data: &Dataset, objective: Objective, theta: &[f64]) -> Vec<f64> {
    let k = objective.outputs();
    let params = Params::from_flat_f64(data.features(), k, theta);
    let g = downhill::gradient(&Reference, data, objective, Some(&params)).unwrap();
    g.weights.iter().chain(&g.bias).copied().collect()
}

/// The backends with curvature passes: the reference, the CPU at each level, and a
/// data-parallel pair of them.
fn curvature_backends() -> Vec<(String, Box<dyn Backend>)> {
    let mut all: Vec<(String, Box<dyn Backend>)> = common::all_backends()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("gpu"))
        .collect();
    let pair: Vec<Box<dyn Backend>> = vec![
        Box::new(downhill::backend::cpu::Cpu::default()),
        Box::new(Reference),
    ];
    all.push((
        "parallel cpu + reference".into(),
        Box::new(Parallel::new(pair)),
    ));
    all
}

#[test]
fn hessians_and_their_products_equal_central_differences_of_the_gradient() {
    let shapes = [
        (1, 3, Objective::logistic()),
        (1001, 4, Objective::logistic()),
        (300, 3, Objective::linear()),
        (257, 3, Objective::softmax(2).unwrap()),
        (500, 5, Objective::softmax(10).unwrap()),
    ];
    for (rows, d, objective) in shapes {
        let data = problem(rows, d, objective, 7);
        let k = objective.outputs();
        let p = (d + 1) * k;
        let theta = random_params(d, k, 0.5, 3).flat();
        let n = data.rows() as f64;
        // The columns of ∇²J by central differences of the f64 gradient.
        let eps = 1e-5;
        let mut differences = vec![0.0; p * p];
        for i in 0..p {
            let (mut up, mut down) = (theta.clone(), theta.clone());
            up[i] += eps;
            down[i] -= eps;
            let (gu, gd) = (
                reference_gradient(&data, objective, &up),
                reference_gradient(&data, objective, &down),
            );
            for r in 0..p {
                differences[r * p + i] = (gu[r] - gd[r]) / (2.0 * eps);
            }
        }
        let v: Vec<f64> = (0..p).map(|i| ((i * 7 % 5) as f64 - 2.0) * 0.3).collect();
        for (name, backend) in curvature_backends() {
            if rows == 1 && name.starts_with("parallel") {
                continue;
            }
            let what = format!("{objective} on {rows} × {d}, {name}");
            let mut session = backend.open(Data::Host(&data), objective).unwrap();
            session
                .set_params(&Params::from_flat_f64(d, k, &theta))
                .unwrap();
            let sums = session.hessian_sums(RowSet::All).unwrap();
            assert_eq!(sums.pass.metrics[1], n, "{what}: Σw");
            let hessian: Vec<f64> = sums.hessian.iter().map(|h| h / n).collect();
            assert_close(&format!("{what}: Hessian"), &hessian, &differences, 1e-6);
            let gradient = sums.pass.mean_gradient();
            let expected = reference_gradient(&data, objective, &theta);
            assert_close(&format!("{what}: its gradient"), &gradient, &expected, 1e-6);
            let hv: Vec<f64> = session
                .hessian_vector_sums(&v, RowSet::All)
                .unwrap()
                .iter()
                .map(|h| h / n)
                .collect();
            let h_times_v: Vec<f64> = (0..p)
                .map(|r| (0..p).map(|c| hessian[r * p + c] * v[c]).sum())
                .collect();
            assert_close(&format!("{what}: Hv"), &hv, &h_times_v, 1e-9);
            // The same bits on a rerun.
            assert_eq!(
                session.hessian_sums(RowSet::All).unwrap(),
                sums,
                "{what}: rerun"
            );
        }
    }
}

#[test]
fn newton_reaches_least_squares_in_one_step_with_or_without_standardizing() {
    let data = problem(2000, 4, Objective::linear(), 5);
    let expected = least_squares(&data);
    for standardize in [false, true] {
        for (name, backend) in curvature_backends() {
            let trainer = Trainer::new()
                .solver(Solver::Newton)
                .standardize(standardize);
            let fit =
                downhill::fit(backend.as_ref(), &data, Objective::linear(), &trainer).unwrap();
            let solved = fit.solved.unwrap();
            let what = format!("{name}, standardize {standardize}");
            assert_eq!(solved.iterations, 1, "{what}: {}", solved.reason);
            assert!(solved.converged, "{what}");
            assert_close(&what, &fit.params.flat(), &expected, 1e-6);
        }
    }
}

#[test]
fn softmax_solvers_do_not_wander_along_the_flat_class_shift() {
    // Adding one amount to every class's bias (and, unpenalized, to every class's weight of
    // a feature) leaves softmax's F unchanged. On f32 rows the gradient carries rounding
    // along that shift, and truncated Newton once divided it by a rounding-sized curvature:
    // its biases ran to −2.7e5 and its line search stalled. The solvers now keep every
    // such shift where it started (zero), and all reach the reference Newton's optimum.
    let objective = Objective::softmax(3).unwrap();
    let data = problem(20000, 6, objective, 11);
    for l2 in [1e-3, 0.0] {
        let newton = Trainer::new().solver(Solver::Newton).l2(l2);
        let optimum = downhill::fit(&Reference, &data, objective, &newton).unwrap();
        // F in f64 at a fit's parameters.
        let f = |params: &Params| {
            let g = downhill::gradient(&Reference, &data, objective, Some(params)).unwrap();
            g.loss + 0.5 * l2 * params.weights().iter().map(|v| v * v).sum::<f64>()
        };
        let best = f(&optimum.params);
        for (name, backend) in curvature_backends() {
            for solver in [Solver::NewtonCg, Solver::Lbfgs, Solver::Newton] {
                let what = format!("{name}, {solver}, l2 {l2}");
                let trainer = Trainer::new().solver(solver).l2(l2);
                let fit = downhill::fit(backend.as_ref(), &data, objective, &trainer).unwrap();
                let solved = fit.solved.as_ref().unwrap();
                assert!(solved.converged, "{what}: {}", solved.reason);
                let gap = (f(&fit.params) - best) / best;
                assert!(gap.abs() <= 1e-7, "{what}: {gap:e} from {best}");
                let shifts: Vec<f64> = fit
                    .params
                    .flat()
                    .chunks_exact(3)
                    .map(|row| row.iter().sum::<f64>() / 3.0)
                    .collect();
                let bias_shift = shifts[shifts.len() - 1];
                assert!(
                    bias_shift.abs() <= 1e-6,
                    "{what}: biases shifted by {bias_shift}"
                );
                if l2 == 0.0 {
                    assert!(
                        shifts.iter().all(|s| s.abs() <= 1e-6),
                        "{what}: rows shifted by {shifts:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn auto_descends_when_a_descent_option_is_given_and_keeps_its_bits() {
    let data = problem(500, 3, Objective::logistic(), 2);
    let cpu = downhill::backend::cpu::Cpu::default();
    let given = [
        Trainer::new().lr(0.5),
        Trainer::new().epochs(7),
        Trainer::new().batch_size(64),
        Trainer::new().patience(2),
    ];
    for trainer in given {
        let auto = downhill::fit(&cpu, &data, Objective::logistic(), &trainer).unwrap();
        let gd = downhill::fit(
            &cpu,
            &data,
            Objective::logistic(),
            &trainer.clone().solver(Solver::Gd),
        )
        .unwrap();
        assert!(auto.solved.is_none(), "{trainer:?}");
        assert_eq!(auto.params, gd.params);
        assert_eq!(auto.history, gd.history);
    }
    // No descent option: Newton on the CPU, L-BFGS with an L1 penalty.
    let session = cpu.open(Data::Host(&data), Objective::logistic()).unwrap();
    assert_eq!(
        Trainer::new().chosen_solver(session.as_ref()).0,
        Solver::Newton
    );
    assert_eq!(
        Trainer::new().l1(0.01).chosen_solver(session.as_ref()).0,
        Solver::Lbfgs
    );
    // Above the Hessian's size limit: L-BFGS.
    let wide = problem(20, 2048, Objective::logistic(), 1);
    let session = cpu.open(Data::Host(&wide), Objective::logistic()).unwrap();
    let (solver, why) = Trainer::new().chosen_solver(session.as_ref());
    assert_eq!(solver, Solver::Lbfgs, "{why}");
    assert!(
        why.contains("2049 parameters") && why.contains("2048"),
        "{why}"
    );
}

#[test]
fn a_solver_short_of_its_tolerance_says_so() {
    let data = problem(1000, 5, Objective::logistic(), 4);
    let trainer = Trainer::new().solver(Solver::Lbfgs).max_iter(2).tol(1e-12);
    let fit = downhill::fit(&Reference, &data, Objective::logistic(), &trainer).unwrap();
    let solved = fit.solved.unwrap();
    assert!(!solved.converged);
    assert_eq!(fit.stop, StopReason::NotConverged);
    assert_eq!(solved.iterations, 2);
    assert!(solved.reason.contains("max-iter 2"), "{}", solved.reason);
    assert_eq!(fit.history.len(), 3, "iterations 0, 1 and 2 are logged");
}

#[test]
fn solvers_refuse_what_they_cannot_do_and_say_what_can() {
    let data = problem(100, 3, Objective::logistic(), 4);
    let refused = |trainer: Trainer| {
        downhill::fit(&Reference, &data, Objective::logistic(), &trainer)
            .unwrap_err()
            .to_string()
    };
    let e = refused(Trainer::new().solver(Solver::Newton).l1(0.1));
    assert!(e.contains("L1") && e.contains("lbfgs"), "{e}");
    let e = refused(Trainer::new().solver(Solver::NewtonCg).lr(0.1));
    assert!(e.contains("learning rate") && e.contains("gd"), "{e}");
    let wide = problem(10, 2100, Objective::logistic(), 1);
    let e = downhill::fit(
        &Reference,
        &wide,
        Objective::logistic(),
        &Trainer::new().solver(Solver::Newton),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("2048") && e.contains("2101"), "{e}");
}

#[test]
fn solver_fits_give_the_same_bits_on_a_rerun() {
    let data = problem(3000, 6, Objective::softmax(3).unwrap(), 9);
    let cpu = downhill::backend::cpu::Cpu::default();
    for solver in [Solver::Newton, Solver::NewtonCg, Solver::Lbfgs] {
        let trainer = Trainer::new().solver(solver).l2(1e-3);
        let a = downhill::fit(&cpu, &data, data_objective(), &trainer).unwrap();
        let b = downhill::fit(&cpu, &data, data_objective(), &trainer).unwrap();
        assert_eq!(a.params, b.params, "{solver}");
        assert_eq!(a.history, b.history, "{solver}");
    }
}

/// An observer of a solver's fit sees each iterate's raw-space parameters (the ones the
/// reference's loss is evaluated at), not the solver's standardized coordinates, and the
/// passes each iteration had taken add up to the report's.
#[test]
fn observers_see_raw_parameters_and_passes_at_every_iteration() {
    struct Seen(Vec<(f64, Params)>);
    impl downhill::train::Observer for Seen {
        fn logged(&mut self, entry: &downhill::train::LogEntry, params: Option<&Params>) {
            self.0.push((entry.training.loss, params.unwrap().clone()));
        }
        fn wants_params(&self) -> bool {
            true
        }
    }
    // Features far from standard (means 3, scales up to 8), so u ≠ raw.
    let mut data = problem(2000, 4, Objective::logistic(), 4);
    let x: Vec<f32> = data
        .x()
        .iter()
        .enumerate()
        .map(|(i, v)| 3.0 + v * (1 + i % 4 * 2) as f32)
        .collect();
    data = Dataset::new(x, data.y().to_vec(), 4).unwrap();
    for solver in [Solver::Newton, Solver::NewtonCg, Solver::Lbfgs] {
        let trainer = Trainer::new().solver(solver).l2(1e-3);
        let mut session = Reference
            .open(Data::Host(&data), Objective::logistic())
            .unwrap();
        let mut seen = Seen(Vec::new());
        let fit = trainer.fit_with(session.as_mut(), &mut seen).unwrap();
        let solved = fit.solved.unwrap();
        assert_eq!(seen.0.len() as u64, solved.iterations + 1, "{solver}");
        for (loss, params) in &seen.0 {
            let g =
                downhill::gradient(&Reference, &data, Objective::logistic(), Some(params)).unwrap();
            assert!(
                (g.loss - loss).abs() <= 1e-12 * loss,
                "{solver}: {} vs {loss}",
                g.loss
            );
        }
        assert_eq!(seen.0.last().unwrap().1, fit.params, "{solver}");
        let history = &solved.pass_history;
        assert_eq!(history.len(), seen.0.len(), "{solver}");
        assert!(
            history.windows(2).all(|w| w[0] < w[1]),
            "{solver}: {history:?}"
        );
        assert_eq!(*history.last().unwrap(), solved.passes.total(), "{solver}");
    }
}

/// A solver's fit stopped at --max-iter with a checkpoint, then resumed, ends with the
/// same bits as one that never stopped: parameters, log, passes and iterations; L-BFGS's
/// pairs (and OWL-QN's, with L1) travel in the file. A checkpoint of another solver, or a
/// descent's, is refused naming the way out.
#[test]
fn a_resumed_solver_fit_equals_an_uninterrupted_one_bit_for_bit() {
    let dir = common::cli::scratch("solver-resume");
    let path = dir.join("solver.ckpt");
    let data = problem(3000, 6, Objective::softmax(3).unwrap(), 12);
    let cpu = downhill::backend::cpu::Cpu::default();
    let backends: [(&str, &dyn Backend); 2] = [("reference", &Reference), ("cpu", &cpu)];
    for (name, backend) in backends {
        for (solver, l1) in [
            (Solver::Newton, 0.0),
            (Solver::NewtonCg, 0.0),
            (Solver::Lbfgs, 0.0),
            (Solver::Lbfgs, 1e-3),
        ] {
            let what = format!("{solver} (l1 {l1}) on {name}");
            let trainer = Trainer::new().solver(solver).l2(1e-3).l1(l1);
            let fit = |t: &Trainer| downhill::fit(backend, &data, data_objective(), t).unwrap();
            let whole = fit(&trainer);
            let stopped = fit(&trainer.clone().max_iter(2).checkpoint(&path, 1));
            assert_eq!(stopped.stop, StopReason::NotConverged, "{what}");
            let checkpoint = downhill::checkpoint::Checkpoint::load(&path).unwrap();
            assert_eq!(checkpoint.epoch, 2, "{what}");
            // The resumed fit reports the iterates after the checkpoint's only.
            let mut session = backend.open(Data::Host(&data), data_objective()).unwrap();
            let mut reported = Vec::new();
            let resumed = trainer
                .clone()
                .resume(checkpoint)
                .fit_observed(session.as_mut(), &mut |e| reported.push(e.epoch))
                .unwrap();
            let after: Vec<u64> = (3..=whole.epochs).collect();
            assert_eq!(reported, after, "{what}");
            assert_eq!(resumed.params, whole.params, "{what}");
            assert_eq!(resumed.history, whole.history, "{what}");
            assert_eq!(resumed.epochs, whole.epochs, "{what}");
            let (a, b) = (resumed.solved.unwrap(), whole.solved.unwrap());
            assert_eq!(
                (a.passes, &a.pass_history),
                (b.passes, &b.pass_history),
                "{what}"
            );
            assert_eq!(a.converged, b.converged, "{what}");
        }
    }
    let checkpoint = downhill::checkpoint::Checkpoint::load(&path).unwrap();
    let e = downhill::fit(
        &Reference,
        &data,
        data_objective(),
        &Trainer::new()
            .solver(Solver::Newton)
            .l2(1e-3)
            .l1(1e-3)
            .resume(checkpoint.clone()),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("lbfgs"), "{e}");
    let e = downhill::fit(
        &Reference,
        &data,
        data_objective(),
        &Trainer::new()
            .solver(Solver::Lbfgs)
            .l2(1e-2)
            .l1(1e-3)
            .resume(checkpoint),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("options differ"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

fn data_objective() -> Objective {
    Objective::softmax(3).unwrap()
}

mod cli {
    use super::common::cli::{downhill, fails, json};

    #[test]
    fn the_main_job_at_its_defaults_reaches_the_optimum_and_reports_how() {
        let report = json(&[
            "fit",
            "--model",
            "logistic",
            "--rows",
            "200000",
            "--features",
            "16",
            "--backend",
            "cpu",
            "--json",
        ]);
        assert_eq!(report["solver"], "newton", "{report}");
        assert!(
            report["solver_reason"]
                .as_str()
                .unwrap()
                .contains("17 parameters")
        );
        assert_eq!(report["converged"], true);
        assert_eq!(report["stop_reason"], "converged");
        let iterations = report["iterations"].as_u64().unwrap();
        assert!((2..=10).contains(&iterations), "{iterations}");
        assert_eq!(
            report["history"].as_array().unwrap().len() as u64,
            iterations + 1
        );
        let passes = &report["passes_by_kind"];
        assert_eq!(
            passes["hessian"].as_u64().unwrap(),
            iterations + 1,
            "{passes}"
        );
        assert!(report["passes"].as_u64().unwrap() > iterations);
        // Unpenalized: the objective is the loss.
        assert_eq!(report["objective"], report["loss"]);
        // Within 2 % of the parameters that made the rows.
        let distance = report["relative_distance_to_truth"].as_f64().unwrap();
        assert!(distance < 0.02, "{distance}");
    }

    #[test]
    fn a_descent_option_keeps_the_descent_and_says_so() {
        let args = [
            "fit",
            "--model",
            "logistic",
            "--rows",
            "2000",
            "--features",
            "3",
            "--backend",
            "cpu",
            "--json",
            "--epochs",
            "5",
        ];
        let report = json(&args);
        assert_eq!(report["solver"], "gd");
        assert!(
            report["solver_reason"]
                .as_str()
                .unwrap()
                .contains("descent option")
        );
        assert_eq!(report["epochs"], 5);
        assert_eq!(report["stop_reason"], "epochs");
    }

    #[test]
    fn a_fit_short_of_its_tolerance_warns_and_exits_zero() {
        let out = downhill(&[
            "fit",
            "--model",
            "softmax",
            "--classes",
            "3",
            "--rows",
            "3000",
            "--features",
            "4",
            "--backend",
            "reference",
            "--solver",
            "lbfgs",
            "--max-iter",
            "2",
            "--json",
        ]);
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("lbfgs did not converge") && stderr.contains("--max-iter"),
            "{stderr}"
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["converged"], false);
        assert_eq!(report["stop_reason"], "not_converged");
        assert_eq!(report["iterations"], 2);
    }

    #[test]
    fn solver_mistakes_name_the_option_and_the_way_out() {
        let base = [
            "fit",
            "--model",
            "logistic",
            "--rows",
            "100",
            "--features",
            "3",
            "--backend",
            "cpu",
        ];
        let with = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            fails(&args)
        };
        let e = with(&["--solver", "newton", "--l1", "0.01"]);
        assert!(e.contains("solver newton") && e.contains("lbfgs"), "{e}");
        let e = with(&["--solver", "lbfgs", "--lr", "0.1"]);
        assert!(e.contains("descent option") && e.contains("gd"), "{e}");
        let mut args = base.to_vec();
        args.extend_from_slice(&["--solver", "bfgs"]);
        let e = String::from_utf8_lossy(&downhill(&args).stderr).to_string();
        assert!(e.contains("gd, newton, newton-cg, lbfgs or auto"), "{e}");
        let e = with(&["--solver", "lbfgs", "--max-iter", "0"]);
        assert!(e.contains("max-iter"), "{e}");
    }
}

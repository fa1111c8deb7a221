//! Training options: optimizers against PyTorch's own trajectories, regularization against
//! scikit-learn, schedules, early stopping, standardization, weights and metrics, on every
//! backend against the reference.

mod common;

use common::{assert_close, least_squares, problem};
use downhill::backend::reference::Reference;
use downhill::backend::{
    Backend, ClassWeights, Configured, Data, Evaluation, Evaluations, PassSums, RowSet, RunOutcome,
    Session, Setup, Snapshot, Step,
};
use downhill::optim::Schedule;
use downhill::train::{Observer, OptimizerKind, StopReason};
use downhill::{Dataset, Error, Model, Objective, Params, Trainer};
use serde_json::Value;

fn flat(p: &Params) -> Vec<f64> {
    p.weights().iter().chain(p.bias()).copied().collect()
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// X (rows of numbers) and y from a fixture.
fn dataset(x: &Value, y: &Value) -> Dataset {
    let rows: Vec<Vec<f64>> = x.as_array().unwrap().iter().map(numbers).collect();
    let d = rows[0].len();
    let x: Vec<f32> = rows.iter().flatten().map(|&v| v as f32).collect();
    let y: Vec<f32> = numbers(y).iter().map(|&v| v as f32).collect();
    Dataset::new(x, y, d).unwrap()
}

/// Runs `epochs` full-batch epochs of `trainer` one at a time, returning the parameters
/// after each.
fn trajectory(session: &mut dyn Session, trainer: &Trainer, epochs: u64) -> Vec<Vec<f64>> {
    session.configure(&trainer.setup()).unwrap();
    (0..epochs)
        .map(|e| {
            session
                .run(&trainer.epoch_steps(e, session.rows()))
                .unwrap();
            flat(&session.params().unwrap())
        })
        .collect()
}

/// The first 20 steps of SGD, momentum, Nesterov and Adam, with and without weight decay
/// on W, equal `torch.optim`'s (fixture from tests/fixtures/make_fixtures.py): the f64
/// reference to 1e-9, the CPU and GPU backends (f32) to 1e-4.
#[test]
fn optimizers_follow_pytorch_step_for_step() {
    let fixture = fixture("torch_optimizers.json");
    let cases = fixture["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 16);
    let fast = common::fast_backends();
    for case in cases {
        let data = dataset(&case["x"], &case["y"]);
        let objective = match case["model"].as_str().unwrap() {
            "logistic" => Objective::logistic(),
            _ => Objective::softmax(3).unwrap(),
        };
        let options = &case["options"];
        let name = case["optimizer"].as_str().unwrap();
        let mut trainer = Trainer::new()
            .lr(options["lr"].as_f64().unwrap())
            .optimizer(name.parse().unwrap())
            .l2(case["l2"].as_f64().unwrap());
        if let Some(m) = options.get("momentum") {
            trainer = trainer.momentum(m.as_f64().unwrap());
        }
        if let Some(b) = options.get("betas") {
            let b = numbers(b);
            trainer = trainer
                .beta1(b[0])
                .beta2(b[1])
                .eps(options["eps"].as_f64().unwrap());
        }
        let torch: Vec<Vec<f64>> = case["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let w = s["weights"].as_array().unwrap().iter().flat_map(numbers);
                w.chain(numbers(&s["bias"])).collect()
            })
            .collect();
        let what = format!("{} {name} l2={}", case["model"], case["l2"]);
        let mut reference = Reference.open(Data::Host(&data), objective).unwrap();
        let expected = trajectory(reference.as_mut(), &trainer, 20);
        for (step, (ours, theirs)) in expected.iter().zip(&torch).enumerate() {
            assert_close(
                &format!("reference, {what}, step {}", step + 1),
                ours,
                theirs,
                1e-9,
            );
        }
        for (backend, b) in &fast {
            let mut session = b.open(Data::Host(&data), objective).unwrap();
            let got = trajectory(session.as_mut(), &trainer, 20);
            for (step, (ours, theirs)) in got.iter().zip(&torch).enumerate() {
                let w = format!("{backend}, {what}, step {}", step + 1);
                assert_close(&w, ours, theirs, 1e-4);
            }
        }
    }
}

/// L2 with λ = 1/(C·n) reaches scikit-learn's LogisticRegression(C) (lbfgs, tol 1e-12).
#[test]
fn l2_logistic_reaches_scikit_learn() {
    let fixture = fixture("sklearn_logistic.json");
    let data = dataset(&fixture["x"], &fixture["y"]);
    let fit = &fixture["fits"][0];
    assert_eq!(fit["penalty"], "l2");
    let c = fit["C"].as_f64().unwrap();
    let mut expected = numbers(&fit["coef"]);
    expected.push(fit["intercept"].as_f64().unwrap());
    let trainer = Trainer::new()
        .lr(2.0)
        .epochs(2000)
        .log_every(2000)
        .l2(1.0 / (c * data.rows() as f64));
    for (name, backend) in common::all_backends() {
        let backend = backend.as_ref();
        let got = downhill::fit(backend, &data, Objective::logistic(), &trainer).unwrap();
        let tol = if name == "reference" { 1e-6 } else { 1e-4 };
        assert_close(&name, &flat(&got.params), &expected, tol);
    }
}

/// L1 with λ = 1/(C·n), by proximal steps, puts its exact zeros where scikit-learn's saga
/// does and agrees on the rest.
#[test]
fn l1_logistic_zeroes_what_saga_zeroes() {
    let fixture = fixture("sklearn_logistic.json");
    let data = dataset(&fixture["x"], &fixture["y"]);
    let fit = &fixture["fits"][1];
    assert_eq!(fit["penalty"], "l1");
    let c = fit["C"].as_f64().unwrap();
    let coef = numbers(&fit["coef"]);
    let zeros: Vec<bool> = coef.iter().map(|&v| v == 0.0).collect();
    assert!(
        zeros.iter().any(|&z| z) && zeros.iter().any(|&z| !z),
        "{coef:?}"
    );
    let trainer = Trainer::new()
        .lr(2.0)
        .epochs(3000)
        .log_every(3000)
        .l1(1.0 / (c * data.rows() as f64));
    for (name, backend) in common::all_backends() {
        let backend = backend.as_ref();
        let got = downhill::fit(backend, &data, Objective::logistic(), &trainer).unwrap();
        let w = got.params.weights();
        for (j, (&ours, &theirs)) in w.iter().zip(&coef).enumerate() {
            assert_eq!(
                ours == 0.0,
                theirs == 0.0,
                "{name}: W[{j}] = {ours}, saga {theirs}"
            );
            assert!(
                (ours - theirs).abs() < 1e-3,
                "{name}: W[{j}] = {ours}, saga {theirs}"
            );
        }
        let intercept = fit["intercept"].as_f64().unwrap();
        assert!((got.params.bias()[0] - intercept).abs() < 1e-3, "{name}: b");
    }
}

#[test]
fn warmup_scales_the_schedule() {
    let trainer = Trainer::new()
        .lr(1.0)
        .epochs(10)
        .schedule("step:4:0.5".parse::<Schedule>().unwrap())
        .warmup(4);
    let rates: Vec<f64> = (0..10).map(|e| trainer.epoch_rate(e)).collect();
    assert_eq!(
        rates,
        [0.25, 0.5, 0.75, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25]
    );
    let steps = Trainer::new()
        .lr(1.0)
        .epochs(4)
        .schedule(Schedule::Cosine)
        .batch_size(10);
    let epoch = steps.epoch_steps(2, 25);
    assert_eq!(epoch.iter().map(|s| s.t).collect::<Vec<_>>(), [7, 8, 9]);
    assert!(epoch.iter().all(|s| s.lr == 0.5));
}

/// 40 features on 60 rows: training loss keeps falling, held-out loss turns up. The fit
/// stops `patience` epochs after its best and returns the best epoch's parameters: those
/// of a fit told to stop there.
#[test]
fn early_stopping_restores_the_best_parameters() {
    let data = problem(60, 40, Objective::linear(), 5);
    let trainer = Trainer::new()
        .lr(0.05)
        .epochs(3000)
        .validation_fraction(0.25)
        .tol(0.0)
        .patience(5)
        .seed(9);
    for (name, backend) in common::all_backends() {
        let backend = backend.as_ref();
        let fit = downhill::fit(backend, &data, Objective::linear(), &trainer).unwrap();
        let StopReason::NoImprovement { best_epoch } = fit.stop else {
            panic!("{name}: ran every epoch");
        };
        assert_eq!(fit.epochs, best_epoch + 5, "{name}");
        assert!(
            best_epoch > 5 && best_epoch < 2995,
            "{name}: best at {best_epoch}"
        );
        let held_out = fit.configured.held_out_rows;
        assert!(
            (5..=25).contains(&held_out),
            "{name}: {held_out} rows held out"
        );
        let val = fit.last.validation.unwrap().loss;
        let seen = fit.log.iter().map(|e| e.validation.unwrap().loss);
        assert!(
            seen.clone().all(|v| v >= val - 1e-12),
            "{name}: a logged epoch beat the restored one"
        );
        let to_best = trainer.clone().epochs(best_epoch).patience(1_000_000);
        let direct = downhill::fit(backend, &data, Objective::linear(), &to_best).unwrap();
        assert_eq!(direct.stop, StopReason::Epochs);
        assert_eq!(
            flat(&direct.params),
            flat(&fit.params),
            "{name}: restored parameters"
        );
    }
}

/// Features on scales from 1 to 1000: standardized descent reaches the least-squares
/// solution of the raw features, with parameters reported on the raw scale.
#[test]
fn standardization_keeps_the_raw_models_predictions() {
    let base = problem(400, 4, Objective::linear(), 17);
    let x: Vec<f32> = base
        .x()
        .iter()
        .enumerate()
        .map(|(i, &v)| v * 10f32.powi((i % 4) as i32) + 3.0)
        .collect();
    let data = Dataset::new(x, base.y().to_vec(), 4).unwrap();
    let optimum = least_squares(&data);
    let trainer = Trainer::new().lr(0.3).epochs(400).standardize(true);
    for (name, backend) in common::all_backends() {
        let backend = backend.as_ref();
        let fit = downhill::fit(backend, &data, Objective::linear(), &trainer).unwrap();
        let tol = if name == "reference" { 1e-8 } else { 2e-4 };
        assert_close(&name, &flat(&fit.params), &optimum, tol);
        let st = fit.configured.standardization.as_ref().unwrap();
        assert!(
            (st.mean[3] - 3.0).abs() < 60.0 && (1.0 / st.scale[3] - 1000.0).abs() < 100.0,
            "{name}: {st:?}"
        );
    }
    // The same descent on the raw scales diverges.
    let raw = downhill::fit(
        &Reference,
        &data,
        Objective::linear(),
        &trainer.clone().standardize(false),
    );
    assert!(matches!(raw, Err(Error::Diverged { .. })));
}

/// A sample weight of 2 counts a row twice, 0 drops it; balanced class weights equal per-row
/// weights of n / (2 n_c).
#[test]
fn weights_act_as_repeated_rows() {
    let base = problem(300, 5, Objective::logistic(), 23);
    let weights: Vec<f32> = (0..300).map(|i| (i % 3) as f32).collect();
    let weighted = base.clone().with_weights(weights.clone()).unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (i, &w) in weights.iter().enumerate() {
        for _ in 0..w as usize {
            x.extend_from_slice(base.row(i));
            y.push(base.y()[i]);
        }
    }
    let repeated = Dataset::new(x, y, 5).unwrap();
    let params = common::random_params(5, 1, 0.5, 3);
    let objective = Objective::logistic();
    let expected = downhill::gradient(&Reference, &repeated, objective, Some(&params)).unwrap();
    let ones = base.y().iter().filter(|&&v| v == 1.0).count() as f64;
    let class = [300.0 / (2.0 * (300.0 - ones)), 300.0 / (2.0 * ones)];
    let per_row: Vec<f32> = base.y().iter().map(|&v| class[v as usize] as f32).collect();
    let by_row = base.clone().with_weights(per_row).unwrap();
    let trainer = Trainer::new().epochs(3).lr(0.5);
    for (name, backend) in common::all_backends() {
        let backend = backend.as_ref();
        let got = downhill::gradient(backend, &weighted, objective, Some(&params)).unwrap();
        common::assert_gradients_close(&name, &got, &expected, 1e-5);
        let balanced = downhill::fit(
            backend,
            &base,
            objective,
            &trainer.clone().class_weights(ClassWeights::Balanced),
        )
        .unwrap();
        let cw = balanced.configured.class_weights.clone().unwrap();
        assert_close(&format!("{name}: class weights"), &cw, &class, 1e-6);
        let rows = downhill::fit(backend, &by_row, objective, &trainer).unwrap();
        assert_close(
            &format!("{name}: balanced"),
            &flat(&balanced.params),
            &flat(&rows.params),
            1e-5,
        );
    }
}

/// Accuracy and R² against their definitions, computed here from the parameters.
#[test]
fn metrics_match_their_definitions() {
    for objective in [
        Objective::logistic(),
        Objective::softmax(4).unwrap(),
        Objective::linear(),
    ] {
        let data = problem(500, 6, objective, 31);
        let params = common::random_params(6, objective.outputs(), 0.7, 8);
        let k = objective.outputs();
        let (mut correct, mut ss_res, mut ss_tot) = (0.0, 0.0, 0.0);
        let mean_y = data.y().iter().map(|&v| f64::from(v)).sum::<f64>() / 500.0;
        for i in 0..500 {
            let z: Vec<f64> = (0..k)
                .map(|c| {
                    params.bias()[c]
                        + (0..6)
                            .map(|j| f64::from(data.row(i)[j]) * params.weights()[j * k + c])
                            .sum::<f64>()
                })
                .collect();
            let y = f64::from(data.y()[i]);
            let predicted = if k == 1 {
                f64::from(u8::from(z[0] > 0.0))
            } else {
                z.iter()
                    .enumerate()
                    .fold((0, f64::MIN), |b, (c, &v)| if v > b.1 { (c, v) } else { b })
                    .0 as f64
            };
            correct += f64::from(u8::from(predicted == y));
            ss_res += (z[0] - y).powi(2);
            ss_tot += (y - mean_y).powi(2);
        }
        let mut backends: Vec<(String, Box<dyn Backend>)> =
            vec![("reference".into(), Box::new(Reference))];
        backends.extend(common::fast_backends());
        for (name, backend) in common::all_backends() {
            let backend = backend.as_ref();
            let mut session = backend.open(Data::Host(&data), objective).unwrap();
            session.set_params(&params).unwrap();
            let e = session.evaluate(RowSet::All).unwrap();
            assert!((e.weight - 500.0).abs() < 1e-3, "{name}");
            match objective.model() {
                Model::Linear => {
                    let r2 = e.r2.unwrap();
                    assert!(
                        (r2 - (1.0 - ss_res / ss_tot)).abs() < 1e-4,
                        "{name}: R² {r2}"
                    );
                }
                _ => assert!(
                    (e.accuracy.unwrap() - correct / 500.0).abs() < 1e-9,
                    "{name}: {objective}"
                ),
            }
        }
    }
}

/// Everything at once, mini-batches included, step by step against the reference.
#[test]
fn all_options_together_follow_the_reference() {
    let objective = Objective::softmax(3).unwrap();
    let data = problem(900, 7, objective, 41);
    let weights: Vec<f32> = (0..900).map(|i| 0.5 + (i % 4) as f32 * 0.25).collect();
    let data = data.with_weights(weights).unwrap();
    let trainer = Trainer::new()
        .lr(0.05)
        .optimizer(OptimizerKind::Adam)
        .l2(0.01)
        .l1(0.002)
        .standardize(true)
        .validation_fraction(0.2)
        .class_weights(ClassWeights::Balanced)
        .batch_size(128)
        .seed(4)
        .schedule(Schedule::Cosine)
        .epochs(6);
    let mut reference = Reference.open(Data::Host(&data), objective).unwrap();
    let expected = trajectory(reference.as_mut(), &trainer, 6);
    for (name, backend) in common::fast_backends() {
        let mut session = backend.open(Data::Host(&data), objective).unwrap();
        let got = trajectory(session.as_mut(), &trainer, 6);
        for (e, (g, r)) in got.iter().zip(&expected).enumerate() {
            assert_close(&format!("{name}, epoch {}", e + 1), g, r, 1e-4);
        }
        let (a, b) = (
            session.evaluate(RowSet::Validation).unwrap(),
            reference.evaluate(RowSet::Validation).unwrap(),
        );
        assert!(
            (a.loss - b.loss).abs() < 1e-4 && (a.weight - b.weight).abs() < 1e-3,
            "{name}: {a:?} vs {b:?}"
        );
    }
}

#[test]
fn invalid_combinations_are_refused_before_any_work() {
    let cases: Vec<(Trainer, &str)> = vec![
        (
            Trainer::new().optimizer(OptimizerKind::Adam).momentum(0.9),
            "momentum",
        ),
        (Trainer::new().beta1(0.9), "beta1"),
        (Trainer::new().l2(-1.0), "l2"),
        (Trainer::new().l1(f64::NAN), "l1"),
        (
            Trainer::new().validation_fraction(1.5),
            "validation fraction",
        ),
        (
            Trainer::new().validation_fraction(0.0),
            "validation fraction",
        ),
        (
            Trainer::new()
                .optimizer(OptimizerKind::Momentum)
                .momentum(1.0),
            "momentum",
        ),
        (
            Trainer::new().optimizer(OptimizerKind::Adam).eps(0.0),
            "eps",
        ),
        (Trainer::new().patience(0), "patience"),
        (Trainer::new().tol(-1.0), "tol"),
    ];
    for (trainer, name) in cases {
        match trainer.validate() {
            Err(Error::InvalidOption { name: got, .. }) => assert_eq!(got, name),
            other => panic!("{name}: {other:?}"),
        }
    }
    let linear = Trainer::new().class_weights(ClassWeights::Balanced);
    assert!(linear.validate_for(&Objective::linear()).is_err());
    assert!(linear.validate_for(&Objective::logistic()).is_ok());
}

/// A session that counts the evaluations asked of it and, unless `fold`, answers
/// `evaluate_and_run` as two separate passes (the trait's own way).
struct Counted<'a> {
    inner: Box<dyn Session + 'a>,
    fold: bool,
    evaluations: usize,
}

impl Session for Counted<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn objective(&self) -> Objective {
        self.inner.objective()
    }
    fn rows(&self) -> usize {
        self.inner.rows()
    }
    fn features(&self) -> usize {
        self.inner.features()
    }
    fn set_params(&mut self, params: &Params) -> downhill::Result<()> {
        self.inner.set_params(params)
    }
    fn params(&mut self) -> downhill::Result<Params> {
        self.inner.params()
    }
    fn gradient(&mut self) -> downhill::Result<downhill::Gradient> {
        self.inner.gradient()
    }
    fn loss(&mut self) -> downhill::Result<f64> {
        self.inner.loss()
    }
    fn predict(&mut self) -> downhill::Result<Vec<f64>> {
        self.inner.predict()
    }
    fn run(&mut self, steps: &[Step]) -> downhill::Result<RunOutcome> {
        self.inner.run(steps)
    }
    fn evaluate_and_run(
        &mut self,
        steps: &[Step],
        held_out: bool,
    ) -> downhill::Result<(Evaluations, Option<RunOutcome>)> {
        if self.fold {
            self.inner.evaluate_and_run(steps, held_out)
        } else {
            downhill::backend::evaluate_then_run(self, steps, held_out)
        }
    }
    fn configure(&mut self, setup: &Setup) -> downhill::Result<Configured> {
        self.inner.configure(setup)
    }
    fn evaluate(&mut self, rows: RowSet) -> downhill::Result<Evaluation> {
        self.evaluations += 1;
        self.inner.evaluate(rows)
    }
    fn pass_sums(&mut self, step: &Step, rows: RowSet) -> downhill::Result<PassSums> {
        self.inner.pass_sums(step, rows)
    }
    fn column_sums(&mut self, center: &[f64]) -> downhill::Result<Vec<f64>> {
        self.inner.column_sums(center)
    }
    fn snapshot(&mut self) -> downhill::Result<Snapshot> {
        self.inner.snapshot()
    }
    fn restore(&mut self, snapshot: &Snapshot) -> downhill::Result<()> {
        self.inner.restore(snapshot)
    }
}

/// An observer that asks for the parameters of every logged epoch, which keeps each
/// evaluation a pass of its own (the parameters logged are those of the epoch).
struct WantsParams;

impl Observer for WantsParams {
    fn wants_params(&self) -> bool {
        true
    }
}

/// A logged epoch's evaluation comes from the next step's pass: fits ask for fewer separate
/// evaluations, and their logs, parameters, stopping epochs and reasons are bit for bit
/// those of evaluating separately (with logging only, early stopping on the training loss,
/// and early stopping on held-out rows, whose evaluation comes from the same pass).
#[test]
fn logged_losses_come_from_the_next_steps_pass() {
    let logging = Trainer::new().lr(0.05).epochs(12).log_every(3);
    let stopping = Trainer::new().lr(0.05).epochs(200).tol(0.02).patience(2);
    let held_out = stopping.clone().validation_fraction(0.2);
    for (model, k) in [
        (Model::Linear, 1),
        (Model::Logistic, 1),
        (Model::Softmax, 3),
    ] {
        let objective = Objective::new(model, None, k).unwrap();
        let data = problem(3000, 7, objective, 11);
        for (name, backend) in common::all_backends() {
            // (fit, separate evaluations asked) with the session folding or not, and with
            // an observer that wants parameters (the trainer then never folds).
            let fit = |trainer: &Trainer, fold: bool, observed: bool| {
                let mut session = Counted {
                    inner: backend.open(Data::Host(&data), objective).unwrap(),
                    fold,
                    evaluations: 0,
                };
                let fit = if observed {
                    trainer.fit_with(&mut session, &mut WantsParams)
                } else {
                    trainer.fit(&mut session)
                };
                (fit.unwrap(), session.evaluations)
            };
            for (case, trainer) in [
                ("logging", &logging),
                ("early stopping", &stopping),
                ("held-out rows", &held_out),
            ] {
                let what = format!("{model:?}, {name}, {case}");
                let (folded, asked) = fit(trainer, true, false);
                let (separate, asked_separately) = fit(trainer, false, false);
                let (unfolded, asked_unfolded) = fit(trainer, true, true);
                for other in [&separate, &unfolded] {
                    assert_eq!(
                        (
                            folded.stop,
                            folded.epochs,
                            &folded.log,
                            flat(&folded.params)
                        ),
                        (other.stop, other.epochs, &other.log, flat(&other.params)),
                        "{what}"
                    );
                }
                assert_eq!(asked_separately, asked_unfolded, "{what}");
                let epochs = folded.epochs as usize;
                match case {
                    "logging" => {
                        assert_eq!(folded.history_epochs, vec![0, 3, 6, 9, 12], "{what}");
                        assert_eq!((asked, asked_separately), (2, 5), "{what}");
                    }
                    _ => {
                        assert!(
                            matches!(folded.stop, StopReason::NoImprovement { .. }) && epochs < 200,
                            "{what}: {:?} after {epochs} epochs",
                            folded.stop,
                        );
                        // At each epoch from 1 to the stop, the training evaluation is
                        // saved, and the held-out one with held-out rows.
                        let saved = if case == "held-out rows" { 2 } else { 1 };
                        assert_eq!(asked_separately - asked, saved * epochs, "{what}");
                    }
                }
                if case == "early stopping" {
                    // The step after the stopping epoch is undone: the parameters are
                    // those of as many epochs run one by one.
                    let mut plain = backend.open(Data::Host(&data), objective).unwrap();
                    let trajectory = trajectory(plain.as_mut(), trainer, folded.epochs);
                    let at_stop = trajectory.last().cloned().unwrap_or_default();
                    assert_eq!(
                        flat(&folded.params),
                        at_stop,
                        "{what}: the stopping epoch's"
                    );
                }
            }
        }
    }
}

/// The evaluations from a step's pass (of the training rows, and of the held-out rows
/// when asked) equal separate evaluations, and the step lands where a plain run puts it; a
/// mini-batch step is not over every row, so its evaluations are passes of their own, with
/// the same results. With held-out rows, unweighted and with class weights.
#[test]
fn a_steps_pass_evaluates_what_evaluate_does() {
    let objective = Objective::logistic();
    let data = problem(5000, 9, objective, 5);
    let held_out = Trainer::new().lr(0.2).validation_fraction(0.25);
    for (name, backend) in common::fast_backends() {
        for (case, trainer) in [
            ("full batch", Trainer::new().lr(0.2)),
            ("batch 512", Trainer::new().lr(0.2).batch_size(512)),
            ("held-out rows", held_out.clone()),
            (
                "held-out rows, class weights",
                held_out.clone().class_weights(ClassWeights::Balanced),
            ),
            ("held-out rows, batch 512", held_out.clone().batch_size(512)),
        ] {
            let steps = trainer.epoch_steps(0, data.rows());
            let mut one = backend.open(Data::Host(&data), objective).unwrap();
            let mut two = backend.open(Data::Host(&data), objective).unwrap();
            for s in [&mut one, &mut two] {
                // Away from θ = 0, where every row's loss is ln 2.
                s.configure(&trainer.setup()).unwrap();
                assert_eq!(s.run(&steps).unwrap(), RunOutcome::Completed);
            }
            let with_held_out = case.starts_with("held-out");
            let expected = Evaluations {
                training: one.evaluate(RowSet::Training).unwrap(),
                validation: with_held_out.then(|| one.evaluate(RowSet::Validation).unwrap()),
            };
            assert_eq!(one.run(&steps).unwrap(), RunOutcome::Completed);
            let (evaluations, outcome) = two.evaluate_and_run(&steps, with_held_out).unwrap();
            let what = format!("{name}, {case}");
            assert_eq!(evaluations, expected, "{what}");
            if let Some(v) = expected.validation {
                // About a quarter of the rows, and not the training rows' loss.
                assert!((1000.0..1500.0).contains(&v.weight), "{what}: {v:?}");
                assert_ne!(v.loss, expected.training.loss, "{what}");
            }
            assert_eq!(outcome, Some(RunOutcome::Completed), "{what}");
            assert_eq!(
                flat(&one.params().unwrap()),
                flat(&two.params().unwrap()),
                "{what}"
            );
        }
    }
}

/// The library's errors say what failed in its own terms; the flags that would fix them
/// are the command line's to add (`src/cli/hints.rs`).
#[test]
fn a_diverged_fit_is_told_in_library_terms() {
    let x: Vec<f32> = (0..20).map(|i| i as f32).collect();
    let y: Vec<f32> = x.iter().map(|v| 3.0 * v + 1.0).collect();
    let data = Dataset::new(x, y, 1).unwrap();
    let trainer = Trainer::new().lr(10.0).epochs(200);
    let e = downhill::fit(&Reference, &data, Objective::linear(), &trainer).unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, Error::Diverged { .. }), "{message}");
    assert!(
        message.contains("learning rate 10") && !message.contains("--"),
        "{message}"
    );
}

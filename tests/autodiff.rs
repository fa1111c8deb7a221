//! The tape against the kernels, custom losses on every backend, and the DOT pictures.

mod common;

use common::{assert_gradients_close, problem, random_params};
use downhill::autodiff::{Tape, Var, central_difference};
use downhill::backend::reference::Reference;
use downhill::backend::{Backend, Data};
use downhill::custom::{CustomLoss, LossKind};
use downhill::{Dataset, Gradient, Loss, Model, Objective, Params};

/// J(W, b) of a built-in model on `data`, recorded on a tape from the rows up, and its
/// gradient by `backward`.
fn tape_gradient(data: &Dataset, objective: &Objective, params: &Params) -> Gradient {
    let tape = Tape::new();
    let (d, k) = (data.features(), objective.outputs());
    let w: Vec<Var<'_>> = params.weights().iter().map(|&v| tape.var(v)).collect();
    let b: Vec<Var<'_>> = params.bias().iter().map(|&v| tape.var(v)).collect();
    let mut total = tape.constant(0.0);
    for i in 0..data.rows() {
        let x = data.row(i);
        let y = f64::from(data.y()[i]);
        let z: Vec<Var<'_>> = (0..k)
            .map(|c| (0..d).fold(b[c], |acc, j| acc + w[j * k + c] * f64::from(x[j])))
            .collect();
        let loss = match (objective.model(), objective.loss()) {
            (Model::Linear, _) => (z[0] - y).powi(2),
            (Model::Logistic, Loss::Mse) => (z[0].sigmoid() - y).powi(2),
            // −[y ln σ + (1 − y) ln(1 − σ)] = ln(1 + e^z) − y z
            (Model::Logistic, _) => (z[0].exp() + 1.0).ln() - z[0] * y,
            // ln Σ e^z_c − z_y
            _ => z.iter().fold(tape.constant(0.0), |s, zc| s + zc.exp()).ln() - z[y as usize],
        };
        total = total + loss;
    }
    let j = total / data.rows() as f64;
    tape.backward(j);
    Gradient {
        loss: j.value(),
        weights: w.iter().map(|v| v.grad()).collect(),
        bias: b.iter().map(|v| v.grad()).collect(),
    }
}

fn objectives() -> Vec<Objective> {
    vec![
        Objective::linear(),
        Objective::new(Model::Logistic, Some(Loss::Mse), 1).unwrap(),
        Objective::logistic(),
        Objective::softmax(4).unwrap(),
    ]
}

#[test]
fn the_tape_agrees_with_the_reference_and_the_kernels() {
    for objective in objectives() {
        let data = problem(50, 4, objective, 2);
        let params = random_params(4, objective.outputs(), 0.5, 6);
        let tape = tape_gradient(&data, &objective, &params);
        let reference = downhill::gradient(&Reference, &data, objective, Some(&params)).unwrap();
        assert_gradients_close(&format!("reference, {objective}"), &reference, &tape, 1e-12);
        for (name, backend) in common::fast_backends() {
            let got =
                downhill::gradient(backend.as_ref(), &data, objective, Some(&params)).unwrap();
            assert_gradients_close(&format!("{name}, {objective}"), &got, &tape, 1e-4);
        }
    }
}

/// mse and bce written as custom losses run through the generated code and match the
/// built-in kernels on every backend.
#[test]
fn custom_mse_and_bce_match_the_built_in_losses() {
    let mse = CustomLoss::new("test mse", LossKind::Output, |z, y| (z - y).powi(2))
        .unwrap()
        .register();
    let bce = CustomLoss::parse("ln(1 + exp(z)) - y * z", LossKind::Output)
        .unwrap()
        .register();
    let ce = CustomLoss::parse("-t * ln(p)", LossKind::Class)
        .unwrap()
        .register();
    let pairs = [
        (
            Objective::linear(),
            Objective::new(Model::Linear, Some(mse), 1).unwrap(),
        ),
        (
            Objective::logistic(),
            Objective::new(Model::Logistic, Some(bce), 1).unwrap(),
        ),
        (
            Objective::softmax(3).unwrap(),
            Objective::new(Model::Softmax, Some(ce), 3).unwrap(),
        ),
    ];
    let backends = common::all_backends();
    for (built_in, custom) in pairs {
        let data = problem(2000, 6, built_in, 8);
        let params = random_params(6, built_in.outputs(), 0.4, 2);
        let expected = downhill::gradient(&Reference, &data, built_in, Some(&params)).unwrap();
        for (name, backend) in &backends {
            let got = downhill::gradient(backend.as_ref(), &data, custom, Some(&params)).unwrap();
            assert_gradients_close(&format!("{name}, {custom}"), &got, &expected, 1e-4);
        }
    }
}

/// Losses the built-ins lack, checked against central differences of the loss itself:
/// pseudo-Huber for regression, and the focal loss −t (1 − p)² ln p for softmax.
#[test]
fn losses_the_built_ins_lack_match_finite_differences() {
    let huber = CustomLoss::parse("2^2 * (sqrt(1 + ((z - y) / 2)^2) - 1)", LossKind::Output)
        .unwrap()
        .register();
    let focal = CustomLoss::parse("-t * (1 - p)^2 * ln(p)", LossKind::Class)
        .unwrap()
        .register();
    for objective in [
        Objective::new(Model::Linear, Some(huber), 1).unwrap(),
        Objective::new(Model::Softmax, Some(focal), 3).unwrap(),
    ] {
        let base = if objective.model() == Model::Linear {
            Objective::linear()
        } else {
            Objective::softmax(3).unwrap()
        };
        let data = problem(60, 3, base, 4);
        let params = random_params(3, objective.outputs(), 0.6, 1);
        let mut session = Reference.open(Data::Host(&data), objective).unwrap();
        session.set_params(&params).unwrap();
        let analytic = session.gradient().unwrap();
        let flat: Vec<f64> = params
            .weights()
            .iter()
            .chain(params.bias())
            .copied()
            .collect();
        let dk = params.weights().len();
        let numeric = central_difference(
            |p| {
                let trial = Params::new(3, objective.outputs(), p[..dk].to_vec(), p[dk..].to_vec())
                    .unwrap();
                session.set_params(&trial).unwrap();
                session.loss().unwrap()
            },
            &flat,
            1e-6,
        );
        let got: Vec<f64> = analytic
            .weights
            .iter()
            .chain(&analytic.bias)
            .copied()
            .collect();
        common::assert_close(&format!("{objective} vs differences"), &got, &numeric, 1e-6);
        for (name, backend) in common::fast_backends() {
            let g = downhill::gradient(backend.as_ref(), &data, objective, Some(&params)).unwrap();
            assert_gradients_close(&format!("{name}, {objective}"), &g, &analytic, 1e-4);
        }
    }
}

/// A custom loss trains like a built-in one: Huber fits through an outlier that drags mse.
#[test]
fn a_custom_loss_trains_on_every_backend() {
    let huber = CustomLoss::parse("sqrt(1 + (z - y)^2) - 1", LossKind::Output)
        .unwrap()
        .register();
    let objective = Objective::new(Model::Linear, Some(huber), 1).unwrap();
    let mut y: Vec<f32> = (0..50).map(|i| 2.0 * i as f32 / 50.0 + 1.0).collect();
    y[10] = 100.0;
    let x: Vec<f32> = (0..50).map(|i| i as f32 / 50.0).collect();
    let data = Dataset::new(x, y, 1).unwrap();
    let trainer = downhill::Trainer::new()
        .lr(0.5)
        .epochs(3000)
        .log_every(3000);
    for (name, backend) in common::all_backends() {
        let fit = downhill::fit(backend.as_ref(), &data, objective, &trainer).unwrap();
        let (w, b) = (fit.params.weights()[0], fit.params.bias()[0]);
        assert!(
            (w - 2.0).abs() < 0.15 && (b - 1.0).abs() < 0.15,
            "{name}: w {w}, b {b}"
        );
    }
    let mse = downhill::fit(&Reference, &data, Objective::linear(), &trainer).unwrap();
    assert!(mse.params.bias()[0] > 2.0, "mse is dragged by the outlier");
}

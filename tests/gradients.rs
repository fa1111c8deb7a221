//! Gradients: the GPU kernels (fused and unfused) against the f64 CPU reference, the
//! reference against central finite differences, and the teaching notes' worked numbers.

mod common;

use common::{assert_close, assert_gradients_close, problem, random_params};
use downhill::backend::reference::Reference;
use downhill::backend::{Backend, Data, Session};
use downhill::{Dataset, Loss, Model, Objective};

/// Every model/loss pair the crate supports, softmax with k = 2 and k = 10.
fn objectives() -> Vec<Objective> {
    vec![
        Objective::linear(),
        Objective::new(Model::Logistic, Some(Loss::Mse), 1).unwrap(),
        Objective::logistic(),
        Objective::softmax(2).unwrap(),
        Objective::softmax(10).unwrap(),
    ]
}

/// (rows, features): one row, one feature, rows not a multiple of the workgroup size,
/// 100 000 rows, 300 features.
const SHAPES: [(usize, usize); 5] = [(1, 3), (257, 1), (1001, 7), (100_000, 5), (600, 300)];

#[test]
fn gpu_and_cpu_gradients_match_the_reference_for_every_model_loss_and_shape() {
    let backends = common::fast_backends();
    for objective in objectives() {
        for (i, &(rows, features)) in SHAPES.iter().enumerate() {
            let data = problem(rows, features, objective, i as u64);
            // Small enough weights that softmax and sigmoid are not saturated everywhere.
            let params = random_params(
                features,
                objective.outputs(),
                1.0 / (features as f64).sqrt(),
                7,
            );
            let mut reference = Reference.open(Data::Host(&data), objective).unwrap();
            reference.set_params(&params).unwrap();
            let expected = reference.gradient().unwrap();
            for (name, backend) in &backends {
                let what = format!("{objective}, {rows}×{features}, {name}");
                let mut session = backend.open(Data::Host(&data), objective).unwrap();
                session.set_params(&params).unwrap();
                assert_gradients_close(&what, &session.gradient().unwrap(), &expected, 1e-4);
                let loss = session.loss().unwrap();
                assert!(
                    (loss - expected.loss).abs() <= 1e-4 * expected.loss.max(1.0),
                    "{what}"
                );
            }
        }
    }
}

#[test]
fn unfused_gpu_kernels_match_the_reference() {
    for (tuning, gpu) in common::gpu_tunings() {
        for objective in objectives() {
            for (i, &(rows, features)) in SHAPES.iter().enumerate() {
                let data = problem(rows, features, objective, i as u64);
                let params = random_params(
                    features,
                    objective.outputs(),
                    1.0 / (features as f64).sqrt(),
                    7,
                );
                let expected =
                    downhill::gradient(&Reference, &data, objective, Some(&params)).unwrap();
                let mut session = gpu.session(Data::Host(&data), objective).unwrap();
                session.set_params(&params).unwrap();
                let what = format!("unfused, {objective}, {rows}×{features}, {tuning}");
                assert_gradients_close(
                    &what,
                    &session.gradient_unfused().unwrap(),
                    &expected,
                    1e-4,
                );
            }
        }
    }
}

#[test]
fn reference_gradients_match_central_finite_differences() {
    let h = 1e-6;
    for objective in objectives() {
        let (rows, features) = (40, 3);
        let data = problem(rows, features, objective, 5);
        let params = random_params(features, objective.outputs(), 0.8, 3);
        let mut session = Reference.open(Data::Host(&data), objective).unwrap();
        session.set_params(&params).unwrap();
        let grad = session.gradient().unwrap();
        let analytic: Vec<f64> = grad.weights.iter().chain(&grad.bias).copied().collect();

        let mut numeric = Vec::new();
        let count = params.weights().len() + params.bias().len();
        for i in 0..count {
            let mut shifted = |delta: f64| {
                let mut p = params.clone();
                let w = p.weights().len();
                if i < w {
                    p.weights_mut()[i] += delta;
                } else {
                    p.bias_mut()[i - w] += delta;
                }
                session.set_params(&p).unwrap();
                session.loss().unwrap()
            };
            numeric.push((shifted(h) - shifted(-h)) / (2.0 * h));
        }
        assert_close(&format!("{objective}"), &analytic, &numeric, 1e-6);
    }
}

/// The teaching notes' neuron: x = [1, 2, 3], y = 1, w = [0.5, 0.3, 0.1], b = −1, a sigmoid
/// with squared error. PyTorch's autograd prints ∇w = [−0.1928, −0.3857, −0.5785] and
/// ∇b = −0.1928.
#[test]
fn one_neuron_matches_pytorchs_printed_gradient() {
    let data = Dataset::from_slices(&[1.0, 2.0, 3.0], &[1.0], 3).unwrap();
    let objective = Objective::new(Model::Logistic, Some(Loss::Mse), 1).unwrap();
    let params = downhill::Params::new(3, 1, vec![0.5, 0.3, 0.1], vec![-1.0]).unwrap();
    let expected_w = [-0.1928, -0.3857, -0.5785];
    let fast = common::fast_backends();
    let mut backends: Vec<&dyn Backend> = vec![&Reference];
    backends.extend(fast.iter().map(|(_, b)| b.as_ref()));
    for backend in backends {
        let grad = downhill::gradient(backend, &data, objective, Some(&params)).unwrap();
        for (g, e) in grad.weights.iter().zip(expected_w) {
            assert!((g - e).abs() < 1e-4, "{}: {g} vs {e}", backend.name());
        }
        assert!(
            (grad.bias[0] - -0.1928).abs() < 1e-4,
            "{}: {}",
            backend.name(),
            grad.bias[0]
        );
        // σ(0.4) = 0.598688, so J = (σ − 1)² = 0.161051.
        assert!(
            (grad.loss - 0.161051).abs() < 1e-5,
            "{}: {}",
            backend.name(),
            grad.loss
        );
    }
}

/// z = x·w + b with x = [1, 2, 3], w = [2, 4, 8], b = 3 is 37; with y = 36.5 and squared
/// error, J = (z − y)² = 0.25 and dJ/dz = 2(z − y) = 1, so the gradient is ∂z/∂w = x and
/// ∂z/∂b = 1.
#[test]
fn linear_unit_gradient_is_x_and_one() {
    let data = Dataset::from_slices(&[1.0, 2.0, 3.0], &[36.5], 3).unwrap();
    let params = downhill::Params::new(3, 1, vec![2.0, 4.0, 8.0], vec![3.0]).unwrap();
    let fast = common::fast_backends();
    let mut backends: Vec<&dyn Backend> = vec![&Reference];
    backends.extend(fast.iter().map(|(_, b)| b.as_ref()));
    for backend in backends {
        let grad = downhill::gradient(backend, &data, Objective::linear(), Some(&params)).unwrap();
        assert_eq!(grad.loss, 0.25, "{}", backend.name());
        assert_eq!(grad.weights, vec![1.0, 2.0, 3.0], "{}", backend.name());
        assert_eq!(grad.bias, vec![1.0], "{}", backend.name());
    }
}

/// Logits in the thousands: the losses stay finite and the gradients exact.
#[test]
fn extreme_logits_stay_finite() {
    let data = Dataset::from_slices(&[1.0, -1.0, 2.0, -2.0], &[0.0, 1.0, 1.0, 0.0], 1).unwrap();
    let params = downhill::Params::new(1, 1, vec![3000.0], vec![0.0]).unwrap();
    let fast = common::fast_backends();
    let mut backends: Vec<&dyn Backend> = vec![&Reference];
    backends.extend(fast.iter().map(|(_, b)| b.as_ref()));
    for backend in backends {
        let grad =
            downhill::gradient(backend, &data, Objective::logistic(), Some(&params)).unwrap();
        // z = 3000, −3000, 6000, −6000: the first two rows are wrong by 3000 each, the
        // others right, so J = (3000 + 3000) / 4.
        assert!(
            (grad.loss - 1500.0).abs() < 1e-3,
            "{}: {}",
            backend.name(),
            grad.loss
        );
        // δ = σ(z) − y = 1, −1, 0, 0: ∇w = (1·1 + (−1)(−1)) / 4 = 0.5, ∇b = 0.
        assert!(
            (grad.weights[0] - 0.5).abs() < 1e-6 && grad.bias[0].abs() < 1e-6,
            "{}",
            backend.name()
        );
    }
    let labels = [0.0, 1.0, 1.0, 2.0];
    let data = Dataset::from_slices(&[1.0, -1.0, 2.0, -2.0], &labels, 1).unwrap();
    let params = downhill::Params::new(1, 3, vec![5000.0, 0.0, -5000.0], vec![0.0; 3]).unwrap();
    let objective = Objective::softmax(3).unwrap();
    let expected = downhill::gradient(&Reference, &data, objective, Some(&params)).unwrap();
    assert!(expected.loss.is_finite());
    for (name, backend) in common::fast_backends() {
        let got = downhill::gradient(backend.as_ref(), &data, objective, Some(&params)).unwrap();
        assert_gradients_close(
            &format!("softmax, |z| = 10000, {name}"),
            &got,
            &expected,
            1e-4,
        );
    }
}

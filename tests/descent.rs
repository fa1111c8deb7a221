//! The descent loop: known optima, GPU against the reference step by step, mini-batches,
//! shards, reproducibility and divergence.

mod common;

use common::{assert_close, gpu, least_squares, problem, random_params};
use downhill::backend::reference::Reference;
use downhill::backend::{Backend, Batch, Data, RunOutcome, Session, Step};
use downhill::gpu::GpuOptions;
use downhill::{Error, Objective, Params, Trainer};

fn flat(p: &Params) -> Vec<f64> {
    p.weights().iter().chain(p.bias()).copied().collect()
}

#[test]
fn linear_fit_reaches_the_least_squares_solution() {
    let data = problem(500, 4, Objective::linear(), 21);
    let optimum = least_squares(&data);
    let trainer = Trainer::new().lr(0.2).epochs(500);
    let fast = common::fast_backends();
    let mut backends: Vec<&dyn Backend> = vec![&Reference];
    backends.extend(fast.iter().map(|(_, b)| b.as_ref()));
    for backend in backends {
        let fit = downhill::fit(backend, &data, Objective::linear(), &trainer).unwrap();
        assert_close(backend.name(), &flat(&fit.params), &optimum, 1e-4);
        assert_eq!(fit.history.len(), 51);
        assert_eq!(fit.history_epochs.last(), Some(&500));
    }
}

#[test]
fn fifty_steps_follow_the_reference_step_for_step() {
    for (name, backend) in common::fast_backends() {
        for objective in [
            Objective::logistic(),
            Objective::linear(),
            Objective::softmax(4).unwrap(),
        ] {
            let data = problem(3000, 10, objective, 4);
            let start = random_params(10, objective.outputs(), 0.3, 1);
            let mut reference = Reference.open(Data::Host(&data), objective).unwrap();
            let mut device = backend.open(Data::Host(&data), objective).unwrap();
            reference.set_params(&start).unwrap();
            device.set_params(&start).unwrap();
            let trainer = Trainer::new().lr(0.3);
            for epoch in 0..50 {
                let steps = trainer.epoch_steps(epoch, data.rows());
                assert_eq!(reference.run(&steps).unwrap(), RunOutcome::Completed);
                assert_eq!(device.run(&steps).unwrap(), RunOutcome::Completed);
                let (r, g) = (reference.params().unwrap(), device.params().unwrap());
                let what = format!("{name}, {objective}, step {}", epoch + 1);
                assert_close(&what, &flat(&g), &flat(&r), 1e-5);
            }
        }
    }
}

#[test]
fn a_batch_of_all_rows_is_the_full_batch() {
    let data = problem(1000, 6, Objective::logistic(), 8);
    let full = Trainer::new().lr(0.5).epochs(20);
    let batched = full.clone().batch_size(1000);
    let big = full.clone().batch_size(5000);
    let fast = common::fast_backends();
    let mut backends: Vec<&dyn Backend> = vec![&Reference];
    backends.extend(fast.iter().map(|(_, b)| b.as_ref()));
    for backend in backends {
        let a = downhill::fit(backend, &data, Objective::logistic(), &full).unwrap();
        let b = downhill::fit(backend, &data, Objective::logistic(), &batched).unwrap();
        let c = downhill::fit(backend, &data, Objective::logistic(), &big).unwrap();
        assert_eq!(a.params, b.params, "{}", backend.name());
        assert_eq!(a.params, c.params, "{}", backend.name());
    }
}

#[test]
fn mini_batches_follow_the_reference_permutation() {
    let objective = Objective::softmax(3).unwrap();
    let data = problem(2000, 5, objective, 12);
    let trainer = Trainer::new().lr(0.2).batch_size(96).seed(77);
    for (name, backend) in common::fast_backends() {
        let mut reference = Reference.open(Data::Host(&data), objective).unwrap();
        let mut device = backend.open(Data::Host(&data), objective).unwrap();
        for epoch in 0..3 {
            let steps = trainer.epoch_steps(epoch, data.rows());
            assert_eq!(
                steps.len(),
                21,
                "2000 rows in batches of 96: 20 full and one of 80"
            );
            assert_eq!(steps[20].batch.len, 80);
            reference.run(&steps).unwrap();
            device.run(&steps).unwrap();
            let (r, g) = (reference.params().unwrap(), device.params().unwrap());
            assert_close(
                &format!("{name}, epoch {}", epoch + 1),
                &flat(&g),
                &flat(&r),
                1e-5,
            );
        }
    }
}

#[test]
fn mini_batch_descent_converges_and_repeats_bit_for_bit() {
    let objective = Objective::logistic();
    let data = problem(4000, 8, objective, 30);
    let trainer = Trainer::new().lr(0.1).epochs(15).batch_size(64).seed(5);
    let fast = common::fast_backends();
    let mut backends: Vec<&dyn Backend> = vec![&Reference];
    backends.extend(fast.iter().map(|(_, b)| b.as_ref()));
    let full = downhill::fit(
        &Reference,
        &data,
        objective,
        &Trainer::new().lr(1.0).epochs(300),
    )
    .unwrap();
    for backend in backends {
        let a = downhill::fit(backend, &data, objective, &trainer).unwrap();
        let b = downhill::fit(backend, &data, objective, &trainer).unwrap();
        assert_eq!(
            a.params,
            b.params,
            "{}: same seed, same bits",
            backend.name()
        );
        assert!(
            a.loss < full.loss + 0.01,
            "{}: {} vs optimum {}",
            backend.name(),
            a.loss,
            full.loss
        );
        let other = downhill::fit(backend, &data, objective, &trainer.clone().seed(6)).unwrap();
        assert_ne!(
            a.params,
            other.params,
            "{}: another seed, another order",
            backend.name()
        );
    }
}

#[test]
fn sharded_rows_give_the_unsharded_result() {
    let objective = Objective::softmax(3).unwrap();
    let data = problem(10_000, 12, objective, 2);
    let params = random_params(12, 3, 0.5, 9);
    for (tuning, gpu) in common::gpu_tunings() {
        let small = gpu.with_options(GpuOptions {
            max_shard_bytes: Some(48 * 1024),
            ..gpu.options()
        });
        let mut sharded = small.session(Data::Host(&data), objective).unwrap();
        // (48 KiB − 16 bytes of vec4 padding) / 48 bytes per row = 1023 rows per shard.
        assert_eq!(sharded.shard_count(), 10);
        let mut whole = gpu.session(Data::Host(&data), objective).unwrap();
        assert_eq!(whole.shard_count(), 1);
        sharded.set_params(&params).unwrap();
        whole.set_params(&params).unwrap();
        let (a, b) = (sharded.gradient().unwrap(), whole.gradient().unwrap());
        common::assert_gradients_close(&format!("{tuning}: sharded"), &a, &b, 1e-5);
        for trainer in [
            Trainer::new().lr(0.5),
            Trainer::new().lr(0.1).batch_size(500).seed(3),
        ] {
            for epoch in 0..3 {
                let steps = trainer.epoch_steps(epoch, data.rows());
                sharded.run(&steps).unwrap();
                whole.run(&steps).unwrap();
            }
            let (a, b) = (sharded.params().unwrap(), whole.params().unwrap());
            assert_close(
                &format!("{tuning}: sharded descent"),
                &flat(&a),
                &flat(&b),
                1e-5,
            );
        }
    }
}

#[test]
fn divergence_stops_with_the_last_finite_parameters() {
    let data = problem(200, 3, Objective::linear(), 1);
    let trainer = Trainer::new().lr(50.0).epochs(1000).log_every(100);
    let fast = common::fast_backends();
    let mut backends: Vec<&dyn Backend> = vec![&Reference];
    backends.extend(fast.iter().map(|(_, b)| b.as_ref()));
    for backend in backends {
        match downhill::fit(backend, &data, Objective::linear(), &trainer) {
            Err(Error::Diverged {
                epoch, last_finite, ..
            }) => {
                assert!(last_finite.is_finite(), "{}", backend.name());
                assert!(
                    (1..=1000).contains(&epoch),
                    "{}: epoch {epoch}",
                    backend.name()
                );
                assert!(
                    last_finite.norm() > 1e10,
                    "{}: it did grow first",
                    backend.name()
                );
            }
            other => panic!("{}: expected divergence, got {other:?}", backend.name()),
        }
    }
}

#[test]
fn a_diverged_step_is_not_applied() {
    let Some(gpu) = gpu() else { return };
    let data = problem(100, 2, Objective::linear(), 1);
    let mut session = gpu.session(Data::Host(&data), Objective::linear()).unwrap();
    let start = Params::new(2, 1, vec![1.0, 2.0], vec![3.0]).unwrap();
    session.set_params(&start).unwrap();
    let step = |lr| Step {
        epoch: 0,
        t: 1,
        batch: Batch {
            start: 0,
            len: 100,
            order: None,
        },
        lr,
    };
    // The second step's learning rate overflows f32 in θ − η∇J.
    let outcome = session.run(&[step(0.01), step(3e38), step(0.01)]).unwrap();
    assert_eq!(outcome, RunOutcome::Diverged { step: 1 });
    let mut reference = Reference
        .open(Data::Host(&data), Objective::linear())
        .unwrap();
    reference.set_params(&start).unwrap();
    reference.run(&[step(0.01)]).unwrap();
    assert_close(
        "after one step",
        &flat(&session.params().unwrap()),
        &flat(&reference.params().unwrap()),
        1e-6,
    );
}

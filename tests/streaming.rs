//! Rows past the device budget stream through two slots and give the in-memory result.

mod common;

use common::{assert_close, problem};
use downhill::backend::cpu::Cpu;
use downhill::backend::{Backend, Data, RowSet, Session};
use downhill::gpu::GpuOptions;
use downhill::{Error, Objective, Params, Synthetic, Trainer};

fn flat(p: &Params) -> Vec<f64> {
    p.weights().iter().chain(p.bias()).copied().collect()
}

/// Bytes of one chunk slot when streaming `budget`: half of it.
fn run_descent(session: &mut dyn Session, trainer: &Trainer, epochs: u64) -> Params {
    for epoch in 0..epochs {
        session
            .run(&trainer.epoch_steps(epoch, session.rows()))
            .unwrap();
    }
    session.params().unwrap()
}

#[test]
fn streamed_host_rows_equal_resident_rows_bit_for_bit() {
    // 7 features: rows are padded to 8 floats on the device, so the slots are refilled
    // through the padding path. 20 000 rows of 36 bytes: 720 000 bytes.
    let objective = Objective::softmax(3).unwrap();
    let data = problem(20_000, 7, objective, 8);
    let budget = 200_000;
    for (tuning, gpu) in common::gpu_tunings() {
        let streamed = gpu.with_options(GpuOptions {
            max_device_bytes: Some(budget),
            ..gpu.options()
        });
        let mut a = streamed.session(Data::Host(&data), objective).unwrap();
        // The same row ranges resident: shards as large as the streamed chunks (rows of 8
        // padded floats, plus the 16 bytes of vec4 padding a buffer may take).
        let chunk = a.row_ranges()[0].len() as u64;
        let resident = gpu.with_options(GpuOptions {
            max_shard_bytes: Some(chunk * 32 + 16),
            ..gpu.options()
        });
        let mut b = resident.session(Data::Host(&data), objective).unwrap();
        assert!(a.is_streamed() && !b.is_streamed(), "{tuning}");
        assert_eq!(a.row_ranges(), b.row_ranges(), "{tuning}");
        assert!(a.shard_count() >= 7, "{tuning}: {} chunks", a.shard_count());
        let trainer = Trainer::new().lr(0.5);
        let (pa, pb) = (
            run_descent(&mut a, &trainer, 5),
            run_descent(&mut b, &trainer, 5),
        );
        assert_eq!(pa, pb, "{tuning}: streamed and resident descent");
        assert_eq!(
            a.gradient().unwrap(),
            b.gradient().unwrap(),
            "{tuning}: gradient"
        );
        // Predictions, chunk by chunk and shard by shard, are the same numbers, and the
        // reference's within f32 rounding.
        let (za, zb) = (a.predict().unwrap(), b.predict().unwrap());
        assert_eq!(za, zb, "{tuning}: predictions");
        assert_eq!(za.len(), 20_000 * 3);
        let mut oracle = downhill::backend::reference::Reference
            .open(Data::Host(&data), objective)
            .unwrap();
        oracle.set_params(&pa).unwrap();
        assert_close(
            &format!("{tuning}: z"),
            &za,
            &oracle.predict().unwrap(),
            1e-5,
        );
        // And the default resident layout (one shard) agrees within f32 rounding.
        let mut c = gpu.session(Data::Host(&data), objective).unwrap();
        let pc = run_descent(&mut c, &trainer, 5);
        assert_close(
            &format!("{tuning}: one shard"),
            &flat(&pa),
            &flat(&pc),
            1e-5,
        );
        // A logged epoch's evaluation taken from a streamed step's pass.
        let steps = trainer.epoch_steps(5, data.rows());
        let before = b.evaluate(RowSet::Training).unwrap();
        let (ea, eb) = (
            a.evaluate_and_run(&steps, false).unwrap(),
            b.evaluate_and_run(&steps, false).unwrap(),
        );
        assert_eq!(ea, eb, "{tuning}: evaluation from the step");
        assert_eq!(ea.0.training, before, "{tuning}: evaluation");
        assert_eq!(a.params().unwrap(), b.params().unwrap(), "{tuning}");
        // And the held-out rows' evaluation from the same pass.
        let held_out = trainer.clone().validation_fraction(0.3);
        for s in [&mut a, &mut b] {
            s.configure(&held_out.setup()).unwrap();
        }
        let before = (
            b.evaluate(RowSet::Training).unwrap(),
            b.evaluate(RowSet::Validation).unwrap(),
        );
        // The rows each shard and chunk holds out are the reference's.
        oracle.configure(&held_out.setup()).unwrap();
        oracle.set_params(&b.params().unwrap()).unwrap();
        for (rows, evaluation) in [(RowSet::Training, before.0), (RowSet::Validation, before.1)] {
            let expected = oracle.evaluate(rows).unwrap();
            assert_eq!(evaluation.weight, expected.weight, "{tuning}: {rows:?}");
            assert_close(
                &format!("{tuning}: {rows:?} loss"),
                &[evaluation.loss],
                &[expected.loss],
                1e-5,
            );
        }
        assert!((5_000.0..7_000.0).contains(&before.1.weight), "{tuning}");
        let (ea, eb) = (
            a.evaluate_and_run(&steps, true).unwrap(),
            b.evaluate_and_run(&steps, true).unwrap(),
        );
        assert_eq!(ea, eb, "{tuning}: evaluations from the step");
        assert_eq!(
            (ea.0.training, ea.0.validation),
            (before.0, Some(before.1)),
            "{tuning}: held-out evaluation"
        );
        assert_eq!(a.params().unwrap(), b.params().unwrap(), "{tuning}");
    }
}

#[test]
fn streamed_synthetic_rows_are_generated_chunk_by_chunk() {
    let objective = Objective::logistic();
    let synthetic = Synthetic::new(30_000, 13, objective, 4).unwrap();
    let expected = synthetic.generate().unwrap();
    for (tuning, gpu) in common::gpu_tunings() {
        let streamed = gpu.with_options(GpuOptions {
            max_device_bytes: Some(300_000),
            ..gpu.options()
        });
        let mut session = streamed
            .session(Data::Synthetic(synthetic), objective)
            .unwrap();
        assert!(session.is_streamed(), "{tuning}");
        let got = session.read_rows().unwrap();
        assert!(
            got == expected,
            "{tuning}: streamed generation differs from the CPU's rows"
        );
        let trainer = Trainer::new().lr(1.0);
        let streamed_params = run_descent(&mut session, &trainer, 4);
        let mut resident = gpu.session(Data::Synthetic(synthetic), objective).unwrap();
        let resident_params = run_descent(&mut resident, &trainer, 4);
        assert_close(
            tuning,
            &flat(&streamed_params),
            &flat(&resident_params),
            1e-5,
        );
    }
}

#[test]
fn streamed_rows_refuse_mini_batches_with_a_reason() {
    let Some(gpu) = common::gpu() else { return };
    let data = problem(5000, 4, Objective::linear(), 1);
    let streamed = gpu.with_options(GpuOptions {
        max_device_bytes: Some(20_000),
        ..gpu.options()
    });
    let mut session = streamed
        .session(Data::Host(&data), Objective::linear())
        .unwrap();
    let steps = Trainer::new().batch_size(100).epoch_steps(0, 5000);
    match session.run(&steps) {
        Err(Error::InvalidOption { name, reason, .. }) => {
            assert_eq!(name, "batch size");
            assert!(
                reason.contains("mini-batches need every row in device memory"),
                "{reason}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let tiny = gpu.with_options(GpuOptions {
        max_device_bytes: Some(40),
        ..gpu.options()
    });
    let err = tiny
        .session(Data::Host(&data), Objective::linear())
        .err()
        .unwrap();
    assert!(err.to_string().contains("--max-device-bytes"), "{err}");
}

/// 3 000 000 × 32: 384 MB of X, three times lavapipe's 128 MiB storage binding. Resident
/// in shards, streamed through 64 MiB, and on the CPU: the same parameters.
#[test]
fn a_problem_larger_than_one_binding_trains_the_same_everywhere() {
    let Some(gpu) = common::gpu() else { return };
    let objective = Objective::logistic();
    let synthetic = Synthetic::new(3_000_000, 32, objective, 77).unwrap();
    let trainer = Trainer::new().lr(2.0).epochs(8).log_every(8);
    let fit = |backend: &dyn Backend| {
        let mut session = backend.open(Data::Synthetic(synthetic), objective).unwrap();
        trainer.fit(session.as_mut()).unwrap().params
    };
    let resident = fit(gpu);
    let streamed = fit(&gpu.with_options(GpuOptions {
        max_device_bytes: Some(67_108_864),
        ..gpu.options()
    }));
    let cpu = fit(&Cpu::default());
    let scale = resident.norm();
    assert!(scale > 0.5, "the fit moved: |θ| = {scale}");
    for (name, other) in [("streamed", &streamed), ("cpu", &cpu)] {
        let relative = resident.distance(other) / scale;
        assert!(relative < 1e-3, "{name}: relative distance {relative}");
    }
    let gpu_sharded = gpu.session(Data::Synthetic(synthetic), objective).unwrap();
    assert_eq!(gpu_sharded.shard_count(), 3, "384 MB in 128 MiB shards");
}

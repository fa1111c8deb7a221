//! Wide rows and many classes: the GPU's loss, gradient and one descent step against the
//! f64 reference over a sweep of shapes that meets every limit of the fused kernel (tiles
//! that fill workgroup memory, class tiles, class blocks, slices under the device's loop
//! limit, the quads of a row), on both kernel tunings, with the rows resident in one
//! buffer, in shards, and streamed. A shape the device cannot take must be refused with an
//! error that names the limit, never answered with a wrong number.

mod common;

use common::{assert_gradients_close, problem, random_params};
use downhill::backend::reference::Reference;
use downhill::backend::{Backend, Data, Session};
use downhill::custom::{CustomLoss, LossKind};
use downhill::gpu::kernels::Tuning;
use downhill::gpu::{Gpu, GpuOptions};
use downhill::{Error, Loss, Model, Objective, Params, Trainer, verify};

const FEATURES: [usize; 14] = [
    1, 3, 4, 5, 63, 64, 65, 511, 512, 513, 1023, 2048, 3000, 8192,
];
const CLASSES: [usize; 10] = [2, 3, 31, 32, 33, 64, 100, 128, 512, 1000];

/// How the rows sit on the device.
#[derive(Clone, Copy, Debug)]
enum Residency {
    Resident,
    /// At least three shards.
    Sharded,
    /// Streamed through two slots, in at least three chunks.
    Streamed,
}

/// Classes of the sharded and streamed sweeps: what changes with the rows' placement is
/// the shards' and chunks' partials, which every number of classes adds alike; these three
/// take one class block, several class blocks, and several class tiles.
const PLACED_CLASSES: [usize; 3] = [3, 33, 100];

/// Every objective at `d` features: the one-output models with each of their losses,
/// softmax with each of `classes`, and custom losses on a few shapes.
fn objectives(d: usize, classes: &[usize]) -> Vec<Objective> {
    let mut all = vec![
        Objective::linear(),
        Objective::logistic(),
        Objective::new(Model::Logistic, Some(Loss::Mse), 1).unwrap(),
    ];
    all.extend(classes.iter().map(|&k| Objective::softmax(k).unwrap()));
    if [5, 513, 2048].contains(&d) {
        let huber = CustomLoss::parse("sqrt(1 + (z - y)^2) - 1", LossKind::Output)
            .unwrap()
            .register();
        let focal = CustomLoss::parse("-t * (1 - p)^2 * ln(p)", LossKind::Class)
            .unwrap()
            .register();
        all.push(Objective::new(Model::Linear, Some(huber), 1).unwrap());
        all.push(Objective::new(Model::Softmax, Some(focal), 33).unwrap());
    }
    all
}

/// Rows for a shape: a few hundred where that is cheap, down to `least` where lavapipe needs
/// seconds per pass (each class tile computes every z and softmax: about (d + 16)·k² per
/// row).
fn rows_for(d: usize, k: usize, least: usize) -> usize {
    (2e8 / ((d + 16) as f64 * (k * k) as f64)).clamp(least as f64, 400.0) as usize
}

/// The GPU under `gpu`'s tuning with the rows of `rows` × `d` placed as `residency` says.
fn placed(gpu: &Gpu, residency: Residency, rows: usize, d: usize) -> Gpu {
    // Rows are padded to whole vec4s on the device; a buffer may take 16 bytes more.
    let row_bytes = 4 * d.next_multiple_of(4) as u64;
    let third = rows.div_ceil(3) as u64;
    let options = match residency {
        Residency::Resident => gpu.options(),
        Residency::Sharded => GpuOptions {
            max_shard_bytes: Some(third * row_bytes + 16),
            ..gpu.options()
        },
        // Two slots of X and y rows: a third of the rows each (and room for padding).
        Residency::Streamed => GpuOptions {
            max_device_bytes: Some(2 * (third * (row_bytes + 4) + 64)),
            ..gpu.options()
        },
    };
    gpu.with_options(options)
}

/// One full-batch descent step from `params` at learning rate 0.5: what it moved each
/// entry by.
fn one_step(session: &mut dyn Session, params: &Params) -> Vec<f64> {
    let trainer = Trainer::new().lr(0.5);
    session.set_params(params).unwrap();
    session.configure(&trainer.setup()).unwrap();
    session
        .run(&trainer.epoch_steps(0, session.rows()))
        .unwrap();
    let flat = |p: &Params| -> Vec<f64> { p.weights().iter().chain(p.bias()).copied().collect() };
    let after = flat(&session.params().unwrap());
    after.iter().zip(flat(params)).map(|(a, b)| a - b).collect()
}

/// Each entry moved by half its gradient: a skipped or misplaced entry is off by its whole
/// move, f32 rounding by about a millionth of the largest.
fn assert_moves_match(what: &str, got: &[f64], expected: &[f64]) {
    let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in got.iter().zip(expected).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * scale,
            "{what}: one step, entry {i}: moved {x} vs {y} (largest move {scale})"
        );
    }
}

/// Sweeps every shape on both tunings with the rows placed as `residency` says; returns
/// the shapes refused (with a limit named) as `d × k` strings.
fn sweep(residency: Residency) -> Vec<String> {
    let mut refused = Vec::new();
    // Three shards or chunks need three rows.
    let (classes, least) = match residency {
        Residency::Resident => (&CLASSES[..], 1),
        _ => (&PLACED_CLASSES[..], 3),
    };
    for (tuning, gpu) in common::gpu_tunings() {
        for d in FEATURES {
            for objective in objectives(d, classes) {
                let k = objective.outputs();
                let rows = rows_for(d, k, least);
                let what = format!("{residency:?}, {tuning}, {objective}, {rows} × {d}");
                let started = std::time::Instant::now();
                let data = problem(rows, d, objective, (d * 31 + k) as u64);
                // Small weights, so that softmax spreads its mass over the classes.
                let params = random_params(d, k, 1.0 / (d as f64).sqrt(), 5);
                let gpu = placed(&gpu, residency, rows, d);
                let mut session = match gpu.session(Data::Host(&data), objective) {
                    Ok(s) => s,
                    Err(e @ (Error::TooLarge { .. } | Error::LoopLimit { .. })) => {
                        let text = e.to_string();
                        assert!(text.contains("limit") || text.contains("max_"), "{text}");
                        refused.push(format!("{tuning} {d}×{k}: {text}"));
                        continue;
                    }
                    Err(e) => panic!("{what}: {e}"),
                };
                match residency {
                    Residency::Resident => assert_eq!(session.shard_count(), 1, "{what}"),
                    Residency::Sharded => {
                        assert!(
                            !session.is_streamed() && session.shard_count() >= 3,
                            "{what}"
                        )
                    }
                    Residency::Streamed => {
                        assert!(
                            session.is_streamed() && session.shard_count() >= 3,
                            "{what}"
                        )
                    }
                }
                let mut reference = Reference.open(Data::Host(&data), objective).unwrap();
                reference.set_params(&params).unwrap();
                session.set_params(&params).unwrap();
                let expected = reference.gradient().unwrap();
                assert_gradients_close(&what, &session.gradient().unwrap(), &expected, 1e-4);
                let loss = session.loss().unwrap();
                assert!(
                    (loss - expected.loss).abs() <= 1e-4 * expected.loss.abs().max(1.0),
                    "{what}: loss {loss} vs {}",
                    expected.loss
                );
                let (a, b) = (
                    one_step(&mut session, &params),
                    one_step(reference.as_mut(), &params),
                );
                assert_moves_match(&what, &a, &b);
                println!("{what}: {:.2} s", started.elapsed().as_secs_f64());
            }
        }
    }
    refused
}

/// Every shape is answered: rows wider than a staged tile go in column blocks, so nothing
/// in the sweep meets a limit on lavapipe.
fn check_refusals(residency: Residency, refused: &[String]) {
    assert!(
        refused.is_empty(),
        "{residency:?}: shapes the device should take were refused: {refused:#?}"
    );
}

#[test]
fn resident_wide_rows_and_many_classes_match_the_reference() {
    let refused = sweep(Residency::Resident);
    check_refusals(Residency::Resident, &refused);
}

#[test]
fn sharded_wide_rows_and_many_classes_match_the_reference() {
    let refused = sweep(Residency::Sharded);
    check_refusals(Residency::Sharded, &refused);
}

#[test]
fn streamed_wide_rows_and_many_classes_match_the_reference() {
    let refused = sweep(Residency::Streamed);
    check_refusals(Residency::Streamed, &refused);
}

/// Rows far wider than workgroup memory, under the tuning that stages them (in column
/// blocks of a few hundred quads on lavapipe's 32 KiB): the gradient, and three epochs of
/// shuffled mini-batches with a held-out split (whose rows are gathered block by block),
/// against the reference; resident and in shards. Rows of 50 001 features are more than
/// one workgroup may read for the column moments of a tile of 256 rows under lavapipe's
/// loop limit: the moments pass takes blocks of fewer rows.
#[test]
fn rows_wider_than_workgroup_memory_go_in_column_blocks() {
    let Some((_, gpu)) = common::gpu_tunings()
        .into_iter()
        .find(|(t, _)| *t == "gpu tuning")
    else {
        return;
    };
    for (d, rows) in [(9_000, 120), (50_001, 24)] {
        for objective in [Objective::logistic(), Objective::softmax(5).unwrap()] {
            let k = objective.outputs();
            let data = problem(rows, d, objective, d as u64);
            let params = random_params(d, k, 1.0 / (d as f64).sqrt(), 7);
            for residency in [Residency::Resident, Residency::Sharded] {
                let what = format!("{residency:?}, {objective}, {rows} × {d}");
                let placed = placed(&gpu, residency, rows, d);
                let mut session = placed.session(Data::Host(&data), objective).unwrap();
                let mut reference = Reference.open(Data::Host(&data), objective).unwrap();
                session.set_params(&params).unwrap();
                reference.set_params(&params).unwrap();
                let expected = reference.gradient().unwrap();
                assert_gradients_close(&what, &session.gradient().unwrap(), &expected, 1e-4);
                let trainer = Trainer::new()
                    .lr(0.2)
                    .epochs(3)
                    .batch_size(rows / 4)
                    .seed(3)
                    .validation_fraction(0.25);
                let got = downhill::fit(&placed, &data, objective, &trainer).unwrap();
                let want = downhill::fit(&Reference, &data, objective, &trainer).unwrap();
                common::assert_close(&what, &got.params.flat(), &want.params.flat(), 1e-4);
            }
        }
    }
}

#[test]
fn the_loop_limit_is_measured() {
    let Some(gpu) = common::gpu() else { return };
    let ctx = gpu.context();
    let limit = ctx.loop_limit().unwrap();
    // llvmpipe's limit is 65 535 iterations; other drivers have none.
    if ctx.info().driver == "llvmpipe" {
        assert_eq!(limit, Some(65_535));
    } else {
        println!("{}: loop limit {limit:?}", ctx.describe());
    }
}

/// `--verify`'s check catches the bug this sweep is for: kernels planned as if the device
/// had no loop limit go wrong on one that has (here 100 000 rows make about twenty tiles a
/// workgroup, past llvmpipe's 65 535 iterations), and the check says so; the same rows with
/// the kernels planned for the limit pass.
#[test]
fn verification_catches_kernels_that_overrun_the_loop_limit() {
    let Some(gpu) = common::gpu() else { return };
    let objective = Objective::softmax(100).unwrap();
    let data = problem(100_000, 64, objective, 3);
    let rows = Data::Host(&data);
    let cpu_tuning = GpuOptions {
        tuning: Some(Tuning::CPU),
        ..gpu.options()
    };
    let planned = gpu.with_options(cpu_tuning);
    let verified = verify::verify(&planned, &rows, objective, None).unwrap();
    assert_eq!(verified.rows, 100_000);
    assert!(
        verified.loss < 1e-5 && verified.gradient < 1e-5,
        "{verified:?}"
    );
    if gpu.context().loop_limit().unwrap().is_none() {
        println!("{}: no loop limit to overrun", gpu.context().describe());
        return;
    }
    let blind = gpu.with_options(GpuOptions {
        loop_limit: Some(None),
        ..cpu_tuning
    });
    let mut session = blind.session(rows.clone(), objective).unwrap();
    let e = verify::verify_session(&mut session, &rows, objective, None, "gpu").unwrap_err();
    assert!(matches!(e, Error::Verification { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("100000 rows") && text.contains("cannot be trusted"),
        "{text}"
    );
}

/// Planned for a small loop limit, a pass takes several dispatches (slices of its tiles,
/// each adding to the partials of the one before) and still gives the reference's numbers:
/// on every device, with or without a limit of its own. Four workgroups per shard, so that
/// a few thousand rows make many tiles a workgroup.
#[test]
fn sliced_passes_match_the_reference() {
    let Some(gpu) = common::gpu() else { return };
    for base in [Tuning::GPU, Tuning::CPU] {
        for (objective, d, rows) in [
            (Objective::logistic(), 64, 20_000),
            (Objective::softmax(33).unwrap(), 65, 8_000),
            (Objective::softmax(100).unwrap(), 513, 3_000),
        ] {
            let k = objective.outputs();
            let data = problem(rows, d, objective, 4);
            let params = random_params(d, k, 1.0 / (d as f64).sqrt(), 6);
            // The smallest limit the kernels can be planned for: the most slices.
            let planned: Vec<(u32, Gpu)> = [500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000]
                .into_iter()
                .map(|limit| {
                    let options = GpuOptions {
                        loop_limit: Some(Some(limit)),
                        tuning: Some(Tuning {
                            max_groups: 4,
                            ..base
                        }),
                        ..gpu.options()
                    };
                    (limit, gpu.with_options(options))
                })
                .collect();
            let (limit, mut session) = planned
                .iter()
                .find_map(
                    |(limit, small)| match small.session(Data::Host(&data), objective) {
                        Ok(s) => Some((limit, s)),
                        Err(Error::LoopLimit { .. }) => None,
                        Err(e) => panic!("{e}"),
                    },
                )
                .expect("some limit can be planned for");
            let what = format!("{base:?}, {objective}, {rows} × {d}, limit {limit}");
            assert!(session.slices_per_shard() > 1, "{what}: one slice");
            let mut reference = Reference.open(Data::Host(&data), objective).unwrap();
            reference.set_params(&params).unwrap();
            session.set_params(&params).unwrap();
            let expected = reference.gradient().unwrap();
            assert_gradients_close(&what, &session.gradient().unwrap(), &expected, 1e-4);
            let (a, b) = (
                one_step(&mut session, &params),
                one_step(reference.as_mut(), &params),
            );
            assert_moves_match(&what, &a, &b);
        }
    }
}

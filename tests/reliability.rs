//! Reliability: bit-identical reruns, checkpoints that resume exactly, GPU faults as
//! errors, many fits in one process, several threads on one device.

mod common;

use downhill::backend::{Backend, Data};
use downhill::train::OptimizerKind;
use downhill::{Dataset, Fit, Objective, Trainer};

/// Two trainers that exercise every stateful part of the loop: permuted mini-batches,
/// Adam's moments and step count, held-out rows and best-parameter restore,
/// standardization, L1's soft threshold; and full-batch momentum on softmax.
fn demanding() -> Vec<(&'static str, Objective, Trainer)> {
    vec![
        (
            "logistic, adam, mini-batches, validation, standardize, l1",
            Objective::logistic(),
            Trainer::new()
                .optimizer(OptimizerKind::Adam)
                .lr(0.05)
                .epochs(12)
                .batch_size(97)
                .seed(11)
                .validation_fraction(0.25)
                .standardize(true)
                .l1(1e-3),
        ),
        (
            "softmax, momentum, full batch, cosine",
            Objective::softmax(4).unwrap(),
            Trainer::new()
                .optimizer(OptimizerKind::Momentum)
                .lr(0.2)
                .epochs(25)
                .schedule("cosine".parse().unwrap())
                .seed(3),
        ),
    ]
}

fn fit_on(backend: &dyn Backend, data: &Dataset, objective: Objective, trainer: &Trainer) -> Fit {
    fit_rows(backend, Data::Host(data), objective, trainer)
}

fn fit_rows(backend: &dyn Backend, rows: Data<'_>, objective: Objective, trainer: &Trainer) -> Fit {
    let mut session = backend.open(rows, objective).unwrap();
    trainer.fit(session.as_mut()).unwrap()
}

fn bits(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn the_same_run_twice_gives_the_same_bits_on_every_backend() {
    for (what, objective, trainer) in demanding() {
        let data = common::problem(3_000, 9, objective, 21);
        for (name, backend) in common::all_backends() {
            let first = fit_on(backend.as_ref(), &data, objective, &trainer);
            let second = fit_on(backend.as_ref(), &data, objective, &trainer);
            let label = format!("{what} on {name}");
            assert_eq!(
                bits(first.params.weights()),
                bits(second.params.weights()),
                "{label}: weights"
            );
            assert_eq!(
                bits(first.params.bias()),
                bits(second.params.bias()),
                "{label}"
            );
            assert_eq!(
                bits(&first.history),
                bits(&second.history),
                "{label}: history"
            );
            assert_eq!(first.stop, second.stop, "{label}");
        }
    }
}

/// Interrupts (raised from the observer at a chosen epoch) write a checkpoint; resuming it
/// ends with the same bits as the fit that never stopped, on every backend, on dense rows
/// and on sparse ones.
#[test]
fn resuming_a_checkpoint_gives_the_uninterrupted_bits() {
    use downhill::Params;
    use downhill::checkpoint::Checkpoint;
    use downhill::train::{Interrupt, LogEntry, Observer};

    struct StopAt(u64, Interrupt);
    impl Observer for StopAt {
        fn progress(&mut self, epoch: u64) {
            if epoch >= self.0 {
                self.1.raise();
            }
        }
        fn logged(&mut self, _: &LogEntry, _: Option<&Params>) {}
    }

    let dir = common::cli::scratch("resume");
    for (what, objective, trainer) in demanding() {
        let trainer = trainer.log_every(2);
        let data = common::problem(2_000, 6, objective, 5);
        let sparse = common::sparse_problem(2_000, 6, objective, 5);
        let kinds = [
            ("dense", Data::Host(&data)),
            ("sparse", Data::Sparse(&sparse)),
        ];
        for ((kind, rows), (name, backend)) in kinds.iter().flat_map(|(kind, rows)| {
            let backends = common::all_backends().into_iter();
            backends.map(move |backend| ((*kind, rows), backend))
        }) {
            let id = rows.fingerprint();
            let label = format!("{what} on {name}, {kind} rows");
            let whole = fit_rows(backend.as_ref(), rows.clone(), objective, &trainer);
            for stop_at in [3, 5, 8] {
                let path =
                    dir.join(format!("{name}-{kind}-{stop_at}.json").replace([' ', ','], "_"));
                let interrupt = Interrupt::new();
                let writing = trainer
                    .clone()
                    .checkpoint(&path, 3)
                    .data_id(id.clone())
                    .interrupt(interrupt.clone());
                let mut session = backend.open(rows.clone(), objective).unwrap();
                let stopped = writing
                    .fit_with(session.as_mut(), &mut StopAt(stop_at, interrupt))
                    .unwrap();
                if stopped.epochs == whole.epochs {
                    continue; // early stopping came first
                }
                let checkpoint = Checkpoint::load(&path).unwrap();
                assert_eq!(checkpoint.epoch, stop_at, "{label}");
                let resumed = fit_rows(
                    backend.as_ref(),
                    rows.clone(),
                    objective,
                    &trainer.clone().data_id(id.clone()).resume(checkpoint),
                );
                let at = format!("{label}, resumed at {stop_at}");
                assert_eq!(
                    bits(resumed.params.weights()),
                    bits(whole.params.weights()),
                    "{at}"
                );
                assert_eq!(
                    bits(resumed.params.bias()),
                    bits(whole.params.bias()),
                    "{at}"
                );
                assert_eq!(
                    bits(&resumed.history),
                    bits(&whole.history),
                    "{at}: history"
                );
                assert_eq!(resumed.history_epochs, whole.history_epochs, "{at}");
                assert_eq!(resumed.stop, whole.stop, "{at}");
            }
        }
    }
}

#[test]
fn a_checkpoint_of_another_fit_is_refused() {
    use downhill::checkpoint::Checkpoint;
    let dir = common::cli::scratch("resume-mismatch");
    let path = dir.join("ck.json");
    let objective = Objective::logistic();
    let data = common::problem(500, 3, objective, 1);
    let id = Data::Host(&data).fingerprint();
    let trainer = Trainer::new()
        .epochs(6)
        .checkpoint(&path, 2)
        .data_id(id.clone());
    fit_on(
        &downhill::backend::cpu::Cpu::default(),
        &data,
        objective,
        &trainer,
    );
    let checkpoint = Checkpoint::load(&path).unwrap();
    // A finished fit leaves its last state, to be resumed with more epochs.
    assert_eq!(checkpoint.epoch, 6, "the checkpoint at the end");
    let cpu = downhill::backend::cpu::Cpu::default();
    let resume = |trainer: Trainer, data: &Dataset, objective: Objective| {
        let mut session = cpu.open(Data::Host(data), objective).unwrap();
        trainer
            .resume(checkpoint.clone())
            .fit(session.as_mut())
            .unwrap_err()
            .to_string()
    };
    let e = resume(Trainer::new().epochs(6).lr(0.2), &data, objective);
    assert!(
        e.contains("options differ (lr 0.1 in the checkpoint, lr 0.2 here)"),
        "{e}"
    );
    let other = common::problem(501, 3, objective, 1);
    let e = resume(Trainer::new().epochs(6), &other, objective);
    assert!(
        e.contains("500 rows × 3 features, this fit's 501 × 3"),
        "{e}"
    );
    let e = resume(Trainer::new().epochs(6), &data, Objective::linear());
    assert!(e.contains("the checkpoint is of logistic"), "{e}");
    // The same shape, other values.
    let moved = common::problem(500, 3, objective, 2);
    let moved_id = Data::Host(&moved).fingerprint();
    let e = resume(
        Trainer::new().epochs(6).data_id(moved_id.clone()),
        &moved,
        objective,
    );
    assert!(
        e.contains(&format!(
            "the rows differ from the checkpoint's (fingerprint {moved_id}, not {id})"
        )),
        "{e}"
    );
    let mut text = std::fs::read_to_string(&path).unwrap();
    text = text.replace("downhill checkpoint 1", "downhill checkpoint 0");
    std::fs::write(&path, text).unwrap();
    let e = Checkpoint::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("this build reads \"downhill checkpoint 1\""),
        "{e}"
    );
}

/// A fit killed (SIGKILL) mid-run and resumed from its last checkpoint ends with the bits
/// of the fit that ran straight through, on the CPU and the GPU.
#[test]
fn a_killed_fit_resumes_to_the_same_bits() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let dir = common::cli::scratch("killed");
    let mut backends = vec!["cpu"];
    if common::gpu().is_some() {
        backends.push("gpu");
    }
    for backend in backends {
        let checkpoint = dir.join(format!("{backend}.json"));
        let job = format!(
            "fit --model logistic --rows 100000 --features 8 --epochs 150 --batch-size 5000 \
             --optimizer adam --lr 0.01 --standardize --l2 0.001 --backend {backend} --json"
        );
        let args: Vec<&str> = job.split(' ').collect();
        let straight = common::cli::json(&args);

        let mut child = Command::new(env!("CARGO_BIN_EXE_downhill"))
            .args(&args)
            .arg("--checkpoint")
            .arg(&checkpoint)
            .args(["--checkpoint-every", "5"])
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill it once a checkpoint past epoch 20 is on disk (the file is replaced
        // atomically, so it is always whole).
        let started = Instant::now();
        let killed_at = loop {
            if let Ok(ck) = downhill::checkpoint::Checkpoint::load(&checkpoint)
                && ck.epoch >= 20
            {
                child.kill().unwrap();
                break ck.epoch;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "{backend}: the fit ended before it could be killed"
            );
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{backend}: no checkpoint"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        child.wait().unwrap();
        let ck = downhill::checkpoint::Checkpoint::load(&checkpoint).unwrap();
        assert!(
            ck.epoch >= killed_at && ck.epoch < 150,
            "{backend}: {}",
            ck.epoch
        );

        let mut resume = args.clone();
        let path = checkpoint.display().to_string();
        resume.extend(["--resume", &path]);
        let resumed = common::cli::json(&resume);
        for field in [
            "weights",
            "bias",
            "loss",
            "history",
            "history_epochs",
            "epochs",
        ] {
            assert_eq!(
                resumed[field], straight[field],
                "{backend}, killed at epoch {}: {field}",
                ck.epoch
            );
        }
    }
}

/// A device of its own, for tests that break it.
fn own_gpu() -> Option<downhill::gpu::Gpu> {
    common::gpu()?;
    Some(downhill::gpu::Gpu::new(
        downhill::gpu::GpuContext::open().unwrap(),
    ))
}

#[test]
fn out_of_memory_is_an_error_that_says_what_to_try() {
    use downhill::gpu::InjectedFaults;
    let Some(gpu) = own_gpu() else { return };
    let objective = Objective::logistic();
    let data = common::problem(20_000, 10, objective, 3);
    gpu.context().inject(InjectedFaults {
        out_of_memory_above: Some(100_000),
    });
    let e = match gpu.open(Data::Host(&data), objective) {
        Ok(_) => panic!("no out-of-memory"),
        Err(e) => e,
    };
    assert!(e.is_out_of_memory(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("ran out of memory allocating downhill.x")
            && text.contains("--max-device-bytes")
            && text.contains("--backend cpu"),
        "{text}"
    );
}

/// With auto, an out-of-memory while loading rows streams them instead, or uses the CPU;
/// either way the fit is the one the CPU makes.
#[test]
fn auto_falls_back_to_streaming_then_to_the_cpu() {
    use downhill::Selected;
    use downhill::gpu::InjectedFaults;
    let Some(gpu) = own_gpu() else { return };
    let objective = Objective::logistic();
    let data = common::problem(20_000, 10, objective, 3);
    let trainer = Trainer::new().epochs(5).lr(0.5);
    let expected = fit_on(
        &downhill::backend::cpu::Cpu::default(),
        &data,
        objective,
        &trainer,
    );
    // 20 000 rows × 48 bytes: about 1 MB resident. Allow 300 kB buffers: streaming fits.
    for (limit, expect) in [(300_000, "streaming the rows"), (1_000, "using the CPU")] {
        gpu.context().inject(InjectedFaults {
            out_of_memory_above: Some(limit),
        });
        let selected = Selected::auto_gpu(gpu.clone()).with_fallbacks(&Data::Host(&data));
        let (mut session, notices) = selected.open(Data::Host(&data), objective).unwrap();
        assert!(
            notices.last().is_some_and(|n| n.contains(expect)),
            "{limit}: {notices:?}"
        );
        assert!(notices[0].contains("ran out of memory"), "{notices:?}");
        if limit == 300_000 {
            assert!(
                session.describe().contains("streamed"),
                "{}",
                session.describe()
            );
        }
        let fit = trainer.fit(session.as_mut()).unwrap();
        common::assert_close(
            expect,
            fit.params.weights(),
            expected.params.weights(),
            1e-4,
        );
    }
    // Without auto there is no fallback: the error comes back as it is.
    let plain = downhill::select(downhill::BackendKind::Cpu, Default::default())
        .unwrap()
        .with_fallbacks(&Data::Host(&data));
    assert!(plain.open(Data::Host(&data), objective).is_ok());
}

/// A device lost mid-fit (destroyed, as a driver reset does) ends the fit with an error
/// that says so; nothing panics.
#[test]
fn a_lost_device_is_an_error_not_a_panic() {
    let Some(gpu) = own_gpu() else { return };
    let objective = Objective::softmax(3).unwrap();
    let data = common::problem(5_000, 6, objective, 9);
    let mut session = gpu.open(Data::Host(&data), objective).unwrap();
    let trainer = Trainer::new().epochs(3);
    trainer.fit(session.as_mut()).unwrap();
    gpu.context().lose_device();
    let e = trainer.fit(session.as_mut()).unwrap_err().to_string();
    assert!(
        e.contains("device was lost") && e.contains("--resume"),
        "{e}"
    );
    // And every later call says the same, without panicking.
    let again = session.gradient().unwrap_err().to_string();
    assert!(again.contains("device was lost"), "{again}");
    let e = match gpu.open(Data::Host(&data), objective) {
        Ok(_) => panic!("a session on a lost device"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("device was lost"), "{e}");
}

/// A command the device rejects surfaces at the next check as an error naming it.
#[test]
fn a_rejected_command_is_an_error_at_the_next_check() {
    let Some(gpu) = own_gpu() else { return };
    let ctx = gpu.context();
    // MAP_READ with STORAGE is not a valid combination.
    let _bad = ctx.device().create_buffer(&wgpu::BufferDescriptor {
        label: Some("invalid on purpose"),
        size: 64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let e = ctx.check().unwrap_err().to_string();
    assert!(
        e.contains("rejected a command") && e.contains("invalid on purpose"),
        "{e}"
    );
    assert!(ctx.check().is_ok(), "reported once");
}

/// Resident memory of this process, in bytes (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// 100 fits in a row, each opening and dropping its session, leave resident memory where
/// the first ten left it (within 24 MiB: allocator slack, not one session per fit).
/// Resident memory is the whole process's, so the fits run in a process of their own, away
/// from the tests that run beside this one.
#[test]
fn a_hundred_fits_keep_memory_flat() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "hundred_fits_in_a_process_of_their_own",
        ])
        .args(["--nocapture", "--test-threads=1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("1 passed"),
        "the measurement did not run: {text}"
    );
}

#[test]
#[ignore = "run by a_hundred_fits_keep_memory_flat, in a process of its own"]
fn hundred_fits_in_a_process_of_their_own() {
    if resident_bytes().is_none() {
        println!("skipped: no /proc/self/statm on this system");
        return;
    }
    let objective = Objective::logistic();
    let data = common::problem(20_000, 16, objective, 4);
    let trainer = Trainer::new().epochs(3).batch_size(4_000);
    for (name, backend) in common::fast_backends() {
        let fit = || fit_on(backend.as_ref(), &data, objective, &trainer);
        let first = fit();
        for _ in 0..9 {
            fit();
        }
        let before = resident_bytes().unwrap();
        for _ in 0..100 {
            assert_eq!(fit().params, first.params, "{name}");
        }
        let after = resident_bytes().unwrap();
        let grown = after.saturating_sub(before);
        println!(
            "{name}: resident {} MiB → {} MiB",
            before >> 20,
            after >> 20
        );
        // One session holds X (1.3 MB) and its buffers: 100 leaked ones would be > 130 MB.
        assert!(
            grown < 24 << 20,
            "{name}: grew {} MiB over 100 fits",
            grown >> 20
        );
    }
}

/// Several threads fitting different problems on one device at once each get the fit they
/// get alone.
#[test]
fn threads_sharing_one_device_each_get_their_own_fit() {
    let mut backends = common::fast_backends();
    backends.retain(|(name, _)| name != "cpu");
    if backends.is_empty() {
        return;
    }
    let (_, gpu) = &backends[0];
    let problems: Vec<(Objective, Dataset)> = (0..4)
        .map(|i| {
            let objective = if i % 2 == 0 {
                Objective::logistic()
            } else {
                Objective::softmax(3).unwrap()
            };
            (
                objective,
                common::problem(3_000 + 500 * i, 5 + i, objective, i as u64),
            )
        })
        .collect();
    let trainer = Trainer::new().epochs(8).batch_size(700).lr(0.3);
    let alone: Vec<Fit> = problems
        .iter()
        .map(|(o, d)| fit_on(gpu.as_ref(), d, *o, &trainer))
        .collect();
    let shared = gpu.as_ref();
    let together: Vec<Fit> = std::thread::scope(|scope| {
        let handles: Vec<_> = problems
            .iter()
            .map(|(o, d)| {
                let trainer = &trainer;
                scope.spawn(move || fit_on(shared, d, *o, trainer))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (a, b)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(a.params, b.params, "problem {i}");
        assert_eq!(bits(&a.history), bits(&b.history), "problem {i}");
    }
}

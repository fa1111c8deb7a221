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
    let mut session = backend.open(Data::Host(data), objective).unwrap();
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
/// ends with the same bits as the fit that never stopped, on every backend.
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
        let id = Data::Host(&data).fingerprint();
        for (name, backend) in common::all_backends() {
            let label = format!("{what} on {name}");
            let whole = fit_on(backend.as_ref(), &data, objective, &trainer);
            for stop_at in [3, 5, 8] {
                let path = dir.join(format!("{name}-{stop_at}.json").replace([' ', ','], "_"));
                let interrupt = Interrupt::new();
                let writing = trainer
                    .clone()
                    .checkpoint(&path, 3)
                    .data_id(id.clone())
                    .interrupt(interrupt.clone());
                let mut session = backend.open(Data::Host(&data), objective).unwrap();
                let stopped = writing
                    .fit_with(session.as_mut(), &mut StopAt(stop_at, interrupt))
                    .unwrap();
                if stopped.epochs == whole.epochs {
                    continue; // early stopping came first
                }
                let checkpoint = Checkpoint::load(&path).unwrap();
                assert_eq!(checkpoint.epoch, stop_at, "{label}");
                let resumed = fit_on(
                    backend.as_ref(),
                    &data,
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
    fit_on(&downhill::backend::cpu::Cpu, &data, objective, &trainer);
    let checkpoint = Checkpoint::load(&path).unwrap();
    assert_eq!(checkpoint.epoch, 4, "the last checkpoint before the end");
    let resume = |trainer: Trainer, data: &Dataset, objective: Objective| {
        let mut session = downhill::backend::cpu::Cpu
            .open(Data::Host(data), objective)
            .unwrap();
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
        let report = |out: std::process::Output| -> serde_json::Value {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).unwrap()
        };
        let straight = report(common::cli::downhill(&args));

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
        let resumed = report(common::cli::downhill(&resume));
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

//! A careless or unlucky user: closed pipes, links, FIFOs and devices as outputs, outputs
//! onto inputs, shapes beyond memory, stray labels, damaged checkpoints, picture names,
//! resuming to train longer, and the small messages. Each case through the command line:
//! its exit code, its message, and the files before and after.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::cli::{downhill, fails, scratch, write};
use serde_json::Value;

/// A command line split at spaces (the scratch paths hold none).
fn argv(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// Runs `downhill LINE`.
fn run(line: &str) -> Output {
    downhill(&argv(line))
}

/// Runs `downhill LINE`, which must succeed.
fn ok(line: &str) -> Output {
    let out = run(line);
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `downhill LINE … --json`, which must succeed: its report.
fn report(line: &str) -> Value {
    serde_json::from_slice(&ok(&format!("{line} --json")).stdout).expect("one JSON object")
}

/// Runs `downhill LINE`, which must fail with status 1 and no panic: its message.
fn refused(line: &str) -> String {
    fails(&argv(line))
}

/// A CSV of `rows` rows, features a, b and a label y in {0, 1, 2}.
fn three_classes(dir: &Path, name: &str, rows: usize) -> String {
    let mut text = String::from("a,b,y\n");
    for i in 0..rows {
        let a = ((i * 37) % 101) as f32 / 50.0 - 1.0;
        let b = ((i * 53) % 89) as f32 / 44.0 - 1.0;
        let y = usize::from(a > 0.0) + usize::from(b > 0.0);
        text += &format!("{a},{b},{y}\n");
    }
    write(dir, name, &text)
}

fn text(p: &Path) -> String {
    p.display().to_string()
}

fn is_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// `fit` of softmax on `data` (label y) on the reference, then `extra`.
fn softmax_fit(data: &str, extra: &str) -> String {
    format!("fit --model softmax --data {data} --target y --backend reference {extra}")
}

/// Fits a softmax model on `data` into `out`.
fn softmax_model(data: &str, out: &Path) {
    ok(&softmax_fit(
        data,
        &format!("--epochs 5 -q --out {}", text(out)),
    ));
}

#[test]
fn a_closed_pipe_ends_predict_quietly() {
    let dir = scratch("pipe");
    let data = three_classes(&dir, "d.csv", 20_000);
    let model = dir.join("m.json");
    softmax_model(&data, &model);
    // Far more than a pipe's buffer: the reader stops after one line, as `| head -1`.
    let line = format!(
        "predict --model-file {} --data {data} --proba --backend cpu",
        text(&model)
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args(argv(&line))
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "class,p0,p1,p2\n");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 141)),
        "{:?}: {stderr}",
        out.status
    );
    assert!(stderr.is_empty(), "a closed pipe is not an error: {stderr}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_stdout_is_an_error_not_a_panic() {
    let dir = scratch("full-stdout");
    let data = three_classes(&dir, "d.csv", 50);
    let out = Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args(argv(&softmax_fit(&data, "--epochs 2 -q")))
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("stdout") && stderr.contains("No space left"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn a_closed_stderr_is_no_panic() {
    let dir = scratch("closed-stderr");
    let data = three_classes(&dir, "d.csv", 30);
    // The message has nowhere to go; the exit status still says what happened.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} fit --model softmax --data {data} --target nothing 2>&-; echo $?",
            env!("CARGO_BIN_EXE_downhill")
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
}

#[cfg(unix)]
#[test]
fn outputs_through_links_fifos_and_devices_keep_what_is_there() {
    use std::os::unix::fs::FileTypeExt;
    let dir = scratch("outputs");
    let data = three_classes(&dir, "d.csv", 60);
    let fit_to = |out: &str| run(&softmax_fit(&data, &format!("--epochs 3 -q --out {out}")));
    // A link: its target is written, the link kept.
    let target = dir.join("real.json");
    std::fs::write(&target, "old").unwrap();
    let link = dir.join("link.json");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink("real.json", &link).unwrap();
    assert!(fit_to(&text(&link)).status.success());
    assert!(is_link(&link));
    let model: Value = serde_json::from_slice(&std::fs::read(&target).unwrap()).unwrap();
    assert_eq!(model["model"], "softmax");

    // A FIFO: its reader gets the model; the FIFO stays a FIFO.
    let fifo = dir.join("model.fifo");
    let _ = std::fs::remove_file(&fifo);
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let done = fit_to(&text(&fifo));
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let got: Value = serde_json::from_slice(&reader.join().unwrap()).unwrap();
    assert_eq!(got["model"], "softmax");
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());

    // A device: written directly; /dev/full's error is reported and the device kept.
    let full = fit_to("/dev/full");
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert_eq!(full.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/dev/full") && stderr.contains("No space left"),
        "{stderr}"
    );
    assert!(
        std::fs::metadata("/dev/full")
            .unwrap()
            .file_type()
            .is_char_device()
    );

    // predict --out /dev/stdout and --out - print the predictions.
    let model = dir.join("m.json");
    softmax_model(&data, &model);
    for out in ["/dev/stdout", "-"] {
        let printed = ok(&format!(
            "predict --model-file {} --data {data} --out {out} --backend reference",
            text(&model)
        ));
        let text = String::from_utf8_lossy(&printed.stdout);
        assert_eq!(text.lines().count(), 61, "{out}: {text}");
        assert!(text.starts_with("class\n"), "{out}");
    }
    assert!(is_link(Path::new("/dev/stdout")));
    // No temporary file is left beside any of them.
    let stray: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn an_output_onto_an_input_is_refused_before_any_work() {
    let dir = scratch("onto-inputs");
    let data = three_classes(&dir, "plain.csv", 40);
    let before = std::fs::read(&data).unwrap();
    let model = dir.join("m.json");
    softmax_model(&data, &model);
    let model_bytes = std::fs::read(&model).unwrap();
    let (m, png) = (text(&model), data.replace(".csv", ".png"));
    let twice = text(&dir.join("twice.json"));
    for (extra, named) in [
        (format!("--out {data}"), ["--out", "--data"]),
        (format!("--checkpoint {data}"), ["--checkpoint", "--data"]),
        (
            format!("--plot {png} --out {data}"),
            ["same file", "--data"],
        ),
        (format!("--init {m} --out {m}"), ["--out", "--init"]),
        (
            format!("--out {twice} --checkpoint {twice}"),
            ["--checkpoint", "the output --out"],
        ),
    ] {
        let message = refused(&softmax_fit(&data, &format!("--epochs 2 {extra}")));
        assert!(
            named.iter().all(|n| message.contains(n)),
            "{extra}: {message}"
        );
    }
    let message = refused(&format!(
        "predict --model-file {m} --data {data} --out {data}"
    ));
    assert!(
        message.contains("--out") && message.contains("--data"),
        "{message}"
    );
    let message = refused(&format!("predict --model-file {m} --data {data} --out {m}"));
    assert!(message.contains("--model-file"), "{message}");
    // Through a link to the data, too.
    #[cfg(unix)]
    {
        let link = dir.join("alias.csv");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&data, &link).unwrap();
        let message = refused(&softmax_fit(&data, &format!("--out {}", text(&link))));
        assert!(message.contains("same file"), "{message}");
        assert!(is_link(&link));
    }
    assert_eq!(
        std::fs::read(&data).unwrap(),
        before,
        "the data were overwritten"
    );
    assert_eq!(
        std::fs::read(&model).unwrap(),
        model_bytes,
        "the model was overwritten"
    );
    assert!(!Path::new(&twice).exists());
}

#[test]
fn outputs_that_cannot_be_written_are_refused_before_any_work() {
    let dir = scratch("unwritable");
    let data = three_classes(&dir, "d.csv", 30);
    let checkpoint = dir.join("never-ck.json");
    let _ = std::fs::remove_file(&checkpoint);
    let mut cases = vec![
        (text(&dir.join("no-such-dir").join("m.json")), "no-such-dir"),
        (text(&dir), "is a directory"),
    ];
    if cfg!(target_os = "linux") {
        cases.push(("/proc/version".into(), "cannot create a file in /proc"));
    }
    for (out, expected) in &cases {
        let extra = format!("--checkpoint {} --out {out}", text(&checkpoint));
        let message = refused(&softmax_fit(&data, &extra));
        assert!(message.contains(expected), "{out}: {message}");
        assert!(!checkpoint.exists(), "{out}: the fit ran");
    }
}

#[test]
fn shapes_beyond_memory_are_refused_with_the_bytes_needed() {
    // 40 TB of synthetic rows on the CPU, and parameters of 2·10⁹ classes.
    let message = refused("fit --model logistic --rows 1000000000 --features 10000 --backend cpu");
    assert!(
        message.contains("bytes") && message.contains("host memory"),
        "{message}"
    );
    assert!(message.contains("Try fewer rows"), "{message}");
    assert!(!message.contains("memory allocation"), "{message}");
    let dir = scratch("memory");
    let data = write(&dir, "d.csv", "a,y\n1,0\n2,1\n3,2\n");
    let message = refused(&format!(
        "fit --model softmax --data {data} --target y --classes 2000000000 --backend cpu"
    ));
    assert!(
        message.contains("2000000000 outputs") && message.contains("bytes"),
        "{message}"
    );
}

#[test]
fn the_library_refuses_memory_it_cannot_have() {
    use downhill::{Backend, Data, Objective, Synthetic};
    let huge = Synthetic::new(1_000_000_000, 10_000, Objective::logistic(), 0).unwrap();
    for backend in [
        &downhill::backend::cpu::Cpu::default() as &dyn Backend,
        &downhill::backend::reference::Reference,
    ] {
        let e = backend
            .open(Data::Synthetic(huge), Objective::logistic())
            .err()
            .expect("40 TB of rows are refused");
        assert!(matches!(e, downhill::Error::OutOfMemory { .. }), "{e}");
    }
    let e = huge.generate().expect_err("refused");
    assert!(e.to_string().contains("synthetic rows"), "{e}");
}

#[test]
fn stray_labels_are_refused_naming_the_largest_and_the_empty_classes() {
    let dir = scratch("labels");
    let data = write(&dir, "d.csv", "a,y\n1,0\n2,1\n3,1000000\n");
    let message = refused(&softmax_fit(&data, ""));
    for expected in [
        "d.csv, line 4, column 2",
        "largest label is 1000000",
        "999998 of them have no rows",
        "--classes",
    ] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
    let message = refused(&softmax_fit(&data, "--classes 3"));
    assert!(message.contains("d.csv, line 4, column 2 (y)"), "{message}");
    // One empty class among few: the same refusal, by count.
    let gap = write(&dir, "gap.csv", "a,y\n1,0\n2,2\n3,0\n");
    let message = refused(&softmax_fit(&gap, ""));
    assert!(message.contains("1 of them has no rows"), "{message}");
    // Too many classes for the GPU's workgroup memory: the message names classes.
    if common::gpu().is_some() {
        let message = refused(&format!(
            "fit --model softmax --data {data} --target y --classes 1000001 --backend gpu"
        ));
        assert!(message.contains("1000001 classes"), "{message}");
        assert!(message.contains("for this many classes"), "{message}");
    }
}

/// A checkpoint, on `backend`, of a finished 6-epoch fit with `extra` options.
fn checkpoint_of(dir: &Path, data: &str, backend: &str, extra: &str) -> (PathBuf, Value) {
    let ck = dir.join("ck.json");
    let _ = std::fs::remove_file(&ck);
    ok(&format!(
        "fit --model softmax --data {data} --target y --epochs 6 --backend {backend} \
         --checkpoint {} --checkpoint-every 3 -q {extra}",
        text(&ck)
    ));
    let value = serde_json::from_slice(&std::fs::read(&ck).unwrap()).unwrap();
    (ck, value)
}

/// A change made to a checkpoint's JSON.
type Damage = Box<dyn Fn(&mut Value)>;

#[test]
fn damaged_checkpoints_are_refused_naming_the_field() {
    let dir = scratch("checkpoints");
    let data = three_classes(&dir, "d.csv", 30);
    let options = "--optimizer adam --batch-size 8";
    let (_, good) = checkpoint_of(&dir, &data, "reference", options);
    assert_eq!(good["epoch"], 6, "a finished fit leaves its last state");
    let reversed = |c: &mut Value| {
        let log: Vec<Value> = c["log"].as_array().unwrap().iter().rev().cloned().collect();
        c["log"] = log.into();
    };
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "step",
            Box::new(|c| c["step_in_epoch"] = 12345.into()),
            "step_in_epoch 12345",
        ),
        (
            "epoch",
            Box::new(|c| c["epoch"] = 999_999.into()),
            "epoch 999999",
        ),
        (
            "theta",
            Box::new(|c| c["snapshot"]["theta"][0] = 1e39.into()),
            "snapshot.theta[0] is 1e39",
        ),
        (
            "state",
            Box::new(|c| c["snapshot"]["state"] = vec![1.0].into()),
            "snapshot.state holds 1 number;",
        ),
        (
            "raw",
            Box::new(|c| c["snapshot"]["raw"] = vec![0.0; 2].into()),
            "snapshot.raw holds 2 numbers",
        ),
        ("log", Box::new(reversed), "log[0].epoch"),
        (
            "rng",
            Box::new(|c| c["rng"]["step"] = 3.into()),
            "rng.step 3",
        ),
        (
            "best",
            Box::new(|c| c["best"]["epoch"] = 7.into()),
            "best.epoch 7",
        ),
    ];
    for (name, damage, expected) in cases {
        let mut ck = good.clone();
        damage(&mut ck);
        let bad = write(&dir, &format!("{name}.json"), &ck.to_string());
        let message = refused(&softmax_fit(
            &data,
            &format!("--epochs 6 {options} --resume {bad}"),
        ));
        assert!(message.contains(expected), "{name}: {message}");
        assert!(!message.contains("smaller --lr"), "{name}: {message}");
    }
}

#[test]
fn resume_with_more_epochs_continues_to_the_uninterrupted_bits() {
    let dir = scratch("longer");
    let data = three_classes(&dir, "d.csv", 50);
    let gpu = common::gpu().is_some().then_some("gpu");
    for backend in ["reference", "cpu"].into_iter().chain(gpu) {
        for extra in [
            "--optimizer adam --log-every 4",
            "--batch-size 16 --optimizer momentum --lr-schedule exp:0.9",
        ] {
            let (ck, _) = checkpoint_of(&dir, &data, backend, extra);
            let fit = |epochs: u64, more: &str| {
                report(&format!(
                    "fit --model softmax --data {data} --target y --epochs {epochs} \
                     --backend {backend} -q {extra} {more}"
                ))
            };
            let resumed = fit(15, &format!("--resume {}", text(&ck)));
            let straight = fit(15, "");
            for key in [
                "weights",
                "bias",
                "history",
                "history_epochs",
                "epochs",
                "loss",
            ] {
                assert_eq!(resumed[key], straight[key], "{backend} {extra}: {key}");
            }
            assert_eq!(resumed["epochs"], 15);
            // Fewer epochs than the checkpoint has run: refused.
            let message = refused(&format!(
                "fit --model softmax --data {data} --target y --epochs 4 --backend {backend} \
                 {extra} --resume {}",
                text(&ck)
            ));
            assert!(message.contains("at epoch 6, past --epochs 4"), "{message}");
        }
    }
    // The cosine schedule depends on the number of epochs: it cannot be extended.
    let (ck, _) = checkpoint_of(&dir, &data, "reference", "--lr-schedule cosine");
    let message = refused(&softmax_fit(
        &data,
        &format!("--epochs 12 --lr-schedule cosine --resume {}", text(&ck)),
    ));
    assert!(
        message.contains("cosine") && message.contains("--epochs 6"),
        "{message}"
    );
}

#[test]
fn picture_names_are_checked_before_any_work() {
    let dir = scratch("pictures");
    let data = three_classes(&dir, "d.csv", 40);
    let out = dir.join("never.json");
    for (option, name, expected) in [
        ("--plot", "loss.bmp", ".png or .svg"),
        ("--plot", "loss", ".png or .svg"),
        ("--animate", "anim.png", ".gif"),
    ] {
        let picture = dir.join(name);
        let message = refused(&format!(
            "fit --model logistic --data {data} --target y --backend reference --out {} \
             {option} {}",
            text(&out),
            text(&picture)
        ));
        assert!(message.contains(expected), "{name}: {message}");
        assert!(!message.contains("ImageError"), "{name}: {message}");
        assert!(!out.exists() && !picture.exists(), "{name}: work was done");
    }
    let binary = write(&dir, "b.csv", "a,y\n0,0\n1,0\n2,1\n3,1\n");
    let svg = dir.join("loss.svg");
    ok(&format!(
        "fit --model logistic --data {binary} --target y --backend reference --epochs 30 \
         --plot {} -q",
        text(&svg)
    ));
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(
        drawn.starts_with("<svg") && drawn.contains("loss by epoch"),
        "{}",
        &drawn[..80]
    );
}

#[test]
fn messages_say_what_is_wrong_in_few_words() {
    let dir = scratch("messages");
    let data = three_classes(&dir, "d.csv", 30);
    let message = refused(&softmax_fit(&data, "--lr 1e308"));
    assert!(
        message.contains("1e308") && !message.contains("100000000000"),
        "{message}"
    );
    let message = refused(
        "fit --model logistic --rows 100 --features 2 --backend cpu --max-device-bytes 1000",
    );
    assert!(
        message.contains("max-device-bytes") && message.contains("CPU"),
        "{message}"
    );
    let linear = write(&dir, "l.csv", "x,y\n1,1\n2,2\n3,3\n");
    let message = refused(&format!(
        "fit --model linear --data {linear} --target y --loss-expr ln(z) --backend reference"
    ));
    assert!(message.contains("starting parameters"), "{message}");
    assert!(message.contains("expression is undefined"), "{message}");
    assert!(!message.contains("smaller --lr"), "{message}");
    // Singular where there is one.
    let one = ok(&format!(
        "fit --model linear --data {linear} --target y --backend reference --epochs 1"
    ));
    let summary = String::from_utf8_lossy(&one.stdout);
    assert!(summary.contains("3 rows × 1 feature\n"), "{summary}");
    // Another separator, and a repeated name.
    let semicolons = write(&dir, "s.csv", "a;b;y\n1;2;0\n");
    let message = refused(&format!(
        "fit --model logistic --data {semicolons} --target y"
    ));
    assert!(
        message.contains("semicolons") && message.contains("commas"),
        "{message}"
    );
    let repeated = write(&dir, "r.csv", "a,a,y\n1,2,0\n3,4,1\n");
    let message = refused(&format!(
        "fit --model logistic --data {repeated} --target y"
    ));
    assert!(
        message.contains("\"a\" twice (columns 1 and 2"),
        "{message}"
    );
}

#[test]
fn a_model_without_feature_names_takes_columns_by_position_only_when_they_match() {
    use downhill::{Objective, Params, SavedModel};
    let dir = scratch("unnamed");
    let params = Params::new(2, 1, vec![1.0, -1.0], vec![0.5]).unwrap();
    let mut model = SavedModel::new(&Objective::logistic(), params);
    let unnamed = dir.join("unnamed.json");
    model.save(&unnamed).unwrap();
    let labelled = write(&dir, "labelled.csv", "a,b,y\n1,0,1\n0,1,0\n");
    let features_only = write(&dir, "features.csv", "a,b\n1,0\n0,1\n");
    // Three columns for two features: refused, naming the count.
    let predict = |model: &Path, data: &str| {
        format!("predict --model-file {} --data {data} --proba", text(model))
    };
    let message = refused(&predict(&unnamed, &labelled));
    assert!(message.contains("2 feature columns"), "{message}");
    let by_position = ok(&predict(&unnamed, &features_only));
    // A model that names its target but not its features: the target column is not a
    // feature.
    model.target = Some("y".into());
    let with_target = dir.join("with_target.json");
    model.save(&with_target).unwrap();
    let labelled_out = ok(&predict(&with_target, &labelled));
    assert_eq!(labelled_out.stdout, by_position.stdout);
}

/// A benchmark asked for an impossible mini-batch is refused before it measures anything,
/// never a panic.
#[test]
fn a_bench_of_batch_size_zero_is_refused_before_it_starts() {
    let message =
        refused("bench --shapes 2000x4 --batch-sizes 0 --reps 1 --backends cpu --no-numpy");
    assert_eq!(
        message.trim(),
        "error: invalid batch size 0: must be at least 1"
    );
}

/// A benchmark to the optimum asked for what it cannot time is refused before it makes a
/// problem or looks for a Python, never a panic: the refusal names the option and the value.
#[test]
fn a_bench_to_the_optimum_refuses_what_it_cannot_time() {
    let message = refused("bench --to-optimum --solvers gd");
    assert!(
        message.contains("solvers gd") && message.contains("newton, newton-cg and lbfgs"),
        "{message}"
    );
    let message = refused("bench --to-optimum --c 0");
    assert!(
        message.contains("c 0") && message.contains("positive"),
        "{message}"
    );
    let message = refused("bench --to-optimum --rel=-1");
    assert!(message.contains("rel -1"), "{message}");
    // A malformed problem is the argument parser's usage error (exit status 2).
    for (option, problem, says) in [
        ("--problems", "1000x4x1", "at least 2 classes"),
        ("--problems", "1000", "ROWSxFEATURES"),
        ("--shapes", "1000x4x1", "at least 2 classes"),
        ("--shapes", "1000x0", "\"0\" is not a positive integer"),
    ] {
        let mut args = vec!["bench", option, problem];
        if option == "--problems" {
            args.insert(1, "--to-optimum");
        }
        let out = downhill(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(says) && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
    let message = refused("bench --to-optimum --backends tpu");
    assert!(message.contains("tpu"), "{message}");
}

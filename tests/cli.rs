//! The command line: its JSON contract, and one clear message for every user mistake.

mod common;

use common::cli::{downhill, downhill_with, fails, flat_weights, report, scratch, write};

use std::process::Command;

use serde_json::Value;

fn fit_csv(path: &str, target: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "fit",
        "--model",
        "logistic",
        "--data",
        path,
        "--target",
        target,
        "--backend",
        "reference",
    ];
    args.extend_from_slice(extra);
    fails(&args)
}

#[test]
fn fit_json_has_the_contracted_fields() {
    let dir = scratch("json");
    let data = write(&dir, "d.csv", "x,y\n0,-1\n1,1\n2,3\n3,5\n4,7\n");
    let out_path = dir.join("model.json");
    let out = downhill(&[
        "fit",
        "--model",
        "linear",
        "--data",
        &data,
        "--target",
        "y",
        "--lr",
        "0.05",
        "--epochs",
        "2000",
        "--log-every",
        "500",
        "--backend",
        "reference",
        "--json",
        "--out",
        out_path.to_str().unwrap(),
    ]);
    let v = report(&out);
    for key in [
        "model",
        "loss_fn",
        "backend",
        "weights",
        "bias",
        "loss",
        "history",
        "epochs",
        "train_seconds",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v}");
    }
    assert_eq!(v["model"], "linear");
    assert_eq!(v["loss_fn"], "mse");
    assert_eq!(v["epochs"], 2000);
    // y = 2x − 1 exactly.
    assert!(
        (v["weights"][0].as_f64().unwrap() - 2.0).abs() < 1e-3,
        "{v}"
    );
    assert!((v["bias"].as_f64().unwrap() + 1.0).abs() < 1e-3, "{v}");
    assert_eq!(v["history"].as_array().unwrap().len(), 5);
    // J at zero parameters: mean of y² = (1 + 1 + 9 + 25 + 49) / 5 = 17.
    assert!((v["history"][0].as_f64().unwrap() - 17.0).abs() < 1e-9);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
    assert_eq!(saved["weights"], v["weights"]);
    assert_eq!(saved["model"], "linear");

    // The saved parameters as a start: the gradient there is zero.
    let g = downhill(&[
        "grad",
        "--model",
        "linear",
        "--data",
        &data,
        "--target",
        "y",
        "--weights",
        out_path.to_str().unwrap(),
        "--backend",
        "reference",
        "--json",
    ]);
    let g = report(&g);
    assert!(g["loss"].as_f64().unwrap() < 1e-6, "{g}");
    assert!(g["grad_w"][0].as_f64().unwrap().abs() < 1e-3, "{g}");
    assert!(g["grad_b"].as_f64().unwrap().abs() < 1e-3, "{g}");
}

#[test]
fn no_intercept_fits_through_the_origin() {
    // y = 2x − 1 has no line through the origin; least squares through it is
    // w = Σxy / Σx² = 50 / 30.
    let dir = scratch("no-intercept");
    let data = write(&dir, "d.csv", "x,y\n0,-1\n1,1\n2,3\n3,5\n4,7\n");
    let out = downhill(&[
        "fit",
        "--model",
        "linear",
        "--data",
        &data,
        "--target",
        "y",
        "--no-intercept",
        "--backend",
        "reference",
        "--json",
    ]);
    let v = report(&out);
    assert_eq!(v["bias"], serde_json::json!(0.0), "{v}");
    let w = v["weights"][0].as_f64().unwrap();
    assert!((w - 50.0 / 30.0).abs() < 1e-9, "{w}");
}

#[test]
fn grad_prints_softmax_gradients_as_d_rows_of_k() {
    let dir = scratch("softgrad");
    let data = write(&dir, "d.csv", "a,b,label\n1,0,0\n0,1,1\n1,1,2\n");
    let weights = write(
        &dir,
        "w.json",
        r#"{"weights": [[0,0,0],[0,0,0]], "bias": [0,0,0]}"#,
    );
    let out = downhill(&[
        "grad",
        "--model",
        "softmax",
        "--data",
        &data,
        "--target",
        "label",
        "--weights",
        &weights,
        "--json",
        "--backend",
        "reference",
    ]);
    let v = report(&out);
    // Uniform probabilities: J = ln 3; ∇b_c = 1/3 − (share of label c) = 0.
    assert!((v["loss"].as_f64().unwrap() - 3f64.ln()).abs() < 1e-12);
    assert_eq!(v["grad_w"].as_array().unwrap().len(), 2);
    assert_eq!(v["grad_w"][0].as_array().unwrap().len(), 3);
    // ∇W[a, c] = (1/3) Σ x_a (1/3 − [y = c]): rows with a = 1 are labels 0 and 2.
    let expected = [
        (2.0 / 3.0 - 1.0) / 3.0,
        (2.0 / 3.0) / 3.0,
        (2.0 / 3.0 - 1.0) / 3.0,
    ];
    for (c, e) in expected.iter().enumerate() {
        assert!(
            (v["grad_w"][0][c].as_f64().unwrap() - e).abs() < 1e-12,
            "{v}"
        );
    }
}

#[test]
fn synthetic_fit_reports_the_distance_to_the_truth() {
    let out = downhill(&[
        "fit",
        "--model",
        "linear",
        "--rows",
        "2000",
        "--features",
        "4",
        "--lr",
        "0.3",
        "--epochs",
        "200",
        "--backend",
        "reference",
        "--json",
    ]);
    let v = report(&out);
    // Noise sd 0.125 over 2000 rows: the fit lands within a few hundredths of the truth.
    assert!(
        v["relative_distance_to_truth"].as_f64().unwrap() < 0.02,
        "{v}"
    );
    assert!(
        (v["loss"].as_f64().unwrap() - 0.125f64.powi(2)).abs() < 0.002,
        "{v}"
    );
}

#[test]
fn file_mistakes_name_file_line_and_column() {
    let dir = scratch("files");
    let missing = dir.join("nope.csv").display().to_string();
    assert!(fit_csv(&missing, "y", &[]).contains("nope.csv: No such file"));
    let cases = [
        ("empty.csv", "", "empty.csv: the file is empty"),
        (
            "header.csv",
            "a,y\n",
            "header.csv: the file has a header but no data rows",
        ),
        (
            "ragged.csv",
            "a,b,y\n1,2,0\n3,1\n",
            "ragged.csv, line 3: expected 3 fields (as in the header), found 2",
        ),
        (
            "text.csv",
            "a,b,y\n1,2,0\n3,abc,1\n",
            "text.csv, line 3, column 2 (b): not a number: \"abc\"",
        ),
        (
            "blank.csv",
            "a,b,y\n1,,0\n",
            "blank.csv, line 2, column 2 (b): empty cell: \"\"",
        ),
        (
            "nan.csv",
            "a,b,y\n1,2,0\n\n3,NaN,1\n",
            "nan.csv, line 4, column 2 (b): NaN or infinite value: \"NaN\"",
        ),
        (
            "inf.csv",
            "a,b,y\n1,inf,0\n",
            "inf.csv, line 2, column 2 (b): NaN or infinite value: \"inf\"",
        ),
        (
            "ok.csv",
            "a,b,y\n1,2,0\n",
            "no column named \"label\"; the columns are: a, b, y",
        ),
    ];
    for (name, text, expected) in cases {
        let path = write(&dir, name, text);
        let target = if name == "ok.csv" { "label" } else { "y" };
        let e = fit_csv(&path, target, &[]);
        assert!(e.contains(expected), "{name}: {e}");
    }
}

#[test]
fn label_mistakes_name_the_row_and_what_was_expected() {
    let dir = scratch("labels");
    let two = write(&dir, "two.csv", "a,y\n1,0\n2,2\n");
    let e = fit_csv(&two, "y", &[]);
    assert!(e.contains("two.csv, line 3, column 2 (y): logistic regression with bce needs labels 0 or 1, found 2"), "{e}");
    let half = write(&dir, "half.csv", "a,y\n1,0.5\n2,1.5\n");
    assert!(fit_csv(&half, "y", &["--loss", "mse"]).contains(
        "line 3, column 2 (y): logistic regression with mse needs labels in [0, 1], found 1.5"
    ));
    let args = |path: &str| {
        vec![
            "fit",
            "--model",
            "softmax",
            "--data",
            path.to_string().leak(),
            "--target",
            "y",
            "--backend",
            "reference",
        ]
    };
    let negative = write(&dir, "neg.csv", "a,y\n1,0\n2,-1\n");
    assert!(fails(&args(&negative)).contains("neg.csv, line 3, column 2 (y): softmax regression needs labels that are integers 0, 1, …, k−1, found -1"));
    let fraction = write(&dir, "frac.csv", "a,y\n1,0\n2,1.5\n");
    assert!(fails(&args(&fraction)).contains(
        "frac.csv, line 3, column 2 (y): softmax regression needs labels that are integers"
    ));
    let many = write(&dir, "many.csv", "a,y\n1,0\n2,3\n");
    let mut with_classes = args(&many);
    with_classes.extend(["--classes", "3"]);
    assert!(
        fails(&with_classes)
            .contains("line 3, column 2 (y): softmax regression (3 classes, ce) needs labels")
    );
    let e = fit_csv(&two, "y", &["--loss", "ce"]);
    assert!(
        e.contains("model logistic does not support loss ce; use mse or bce"),
        "{e}"
    );
}

#[test]
fn option_mistakes_are_refused_before_any_work() {
    let dir = scratch("options");
    let data = write(&dir, "d.csv", "a,y\n1,0\n2,1\n");
    for lr in ["0", "-0.5", "NaN", "inf"] {
        let e = fit_csv(&data, "y", &["--lr", lr]);
        assert!(
            e.contains(&format!(
                "invalid learning rate {}",
                lr.parse::<f64>().unwrap()
            )),
            "{lr}: {e}"
        );
        assert!(e.contains("must be a finite number > 0"), "{e}");
    }
    assert!(fit_csv(&data, "y", &["--batch-size", "0"]).contains("invalid batch size 0"));
    let e = fit_csv(&data, "y", &["--no-intercept", "--standardize"]);
    assert!(
        e.contains("--no-intercept") && e.contains("cannot go with standardize"),
        "{e}"
    );
    let e = fails(&["fit", "--model", "linear"]);
    assert!(
        e.contains(
            "give --data FILE (.csv, .npy, .parquet) with --target COL, or --rows N --features D"
        ),
        "{e}"
    );
}

#[test]
fn parameter_file_mistakes_name_the_file_and_the_shape() {
    let dir = scratch("params");
    let data = write(&dir, "d.csv", "a,b,y\n1,2,0\n2,1,1\n");
    let grad = |weights: &str| {
        fails(&[
            "grad",
            "--model",
            "logistic",
            "--data",
            &data,
            "--target",
            "y",
            "--weights",
            weights,
            "--backend",
            "reference",
        ])
    };
    let short = write(
        &dir,
        "short.json",
        r#"{"model": "logistic", "weights": [1], "bias": 0}"#,
    );
    assert!(grad(&short).contains("short.json: weights has 1 number, but the data has 2 features"));
    let broken = write(&dir, "broken.json", "{\"weights\": [1, 2],\n \"bias\": }");
    let e = grad(&broken);
    assert!(
        e.contains("broken.json: line 2, column 10: expected value"),
        "{e}"
    );
    let other = write(
        &dir,
        "other.json",
        r#"{"model": "linear", "weights": [1, 2], "bias": 0}"#,
    );
    assert!(
        grad(&other)
            .contains("other.json: the file holds a linear model, but the command fits logistic")
    );
    let soft = write(
        &dir,
        "soft.json",
        r#"{"weights": [[1, 2], [3]], "bias": [0, 0]}"#,
    );
    let e = fails(&[
        "fit",
        "--model",
        "softmax",
        "--data",
        &data,
        "--target",
        "y",
        "--init",
        &soft,
        "--backend",
        "reference",
    ]);
    assert!(
        e.contains("soft.json: weights[1] has 1 numbers, but there are 2 classes"),
        "{e}"
    );
}

#[test]
fn divergence_names_the_epoch_and_keeps_finite_parameters() {
    let dir = scratch("diverge");
    let out_path = dir.join("last.json");
    let mut backends = vec!["reference"];
    if common::gpu().is_some() {
        backends.push("gpu");
    }
    for backend in backends {
        let e = fails(&[
            "fit",
            "--model",
            "linear",
            "--rows",
            "500",
            "--features",
            "3",
            "--lr",
            "40",
            "--epochs",
            "500",
            "--backend",
            backend,
            "--out",
            out_path.to_str().unwrap(),
        ]);
        assert!(
            e.contains("the loss became non-finite at epoch"),
            "{backend}: {e}"
        );
        assert!(e.contains("try a smaller --lr"), "{e}");
        let saved: Value =
            serde_json::from_str(&std::fs::read_to_string(&out_path).unwrap()).unwrap();
        let w = saved["weights"].as_array().unwrap();
        assert_eq!(w.len(), 3);
        assert!(
            w.iter().all(|v| v.as_f64().is_some_and(f64::is_finite)),
            "{backend}: {saved}"
        );
        std::fs::remove_file(&out_path).unwrap();
    }
}

/// `DOWNHILL_GPU_TUNING` forces the kernels' tuning on any adapter (so lavapipe runs the
/// staged GPU kernels): `-v` says so, both tunings fit the same parameters within f32
/// rounding, and a value that is not a tuning is refused naming the variable.
#[test]
fn the_gpu_tuning_can_be_forced_and_a_wrong_one_is_refused() {
    if common::gpu().is_none() {
        return;
    }
    let args: Vec<&str> = "-v fit --model softmax --classes 3 --rows 3000 --features 5 \
                           --backend gpu --solver gd --epochs 5 --json"
        .split_whitespace()
        .collect();
    let weights = |tuning: &str| -> Vec<f64> {
        let out = downhill_with(&args, &[("DOWNHILL_GPU_TUNING", tuning)]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            stderr.contains(&format!("DOWNHILL_GPU_TUNING={tuning}")),
            "{stderr}"
        );
        flat_weights(&report(&out))
    };
    let (gpu, cpu) = (weights("gpu"), weights("cpu"));
    assert_eq!(gpu.len(), 15);
    for (a, b) in gpu.iter().zip(&cpu) {
        assert!(
            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
            "{gpu:?} vs {cpu:?}"
        );
    }
    let out = downhill_with(&args, &[("DOWNHILL_GPU_TUNING", "tpu")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("DOWNHILL_GPU_TUNING")
            && stderr.contains("tpu")
            && stderr.contains("gpu or cpu"),
        "{stderr}"
    );
}

#[test]
fn gpu_backend_runs_the_main_job_shape() {
    if common::gpu().is_none() {
        return;
    }
    let run = |backend: &str| {
        let out = downhill(&[
            "-v",
            "fit",
            "--model",
            "logistic",
            "--rows",
            "20000",
            "--features",
            "16",
            "--epochs",
            "30",
            "--lr",
            "0.5",
            "--backend",
            backend,
            "--json",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (report(&out), stderr)
    };
    let (gpu, stderr) = run("gpu");
    assert_eq!(gpu["backend"], "gpu");
    assert!(stderr.contains("backend: gpu"), "{stderr}");
    let (reference, _) = run("reference");
    let (a, b) = (
        gpu["loss"].as_f64().unwrap(),
        reference["loss"].as_f64().unwrap(),
    );
    assert!((a - b).abs() < 1e-5, "gpu {a} vs reference {b}");
}

#[test]
fn without_an_adapter_gpu_fails_clearly_and_auto_uses_the_cpu() {
    let run = |backend: &str, var: &str, value: &str| {
        Command::new(env!("CARGO_BIN_EXE_downhill"))
            .args([
                "-v",
                "fit",
                "--model",
                "linear",
                "--rows",
                "50",
                "--features",
                "2",
                "--epochs",
                "3",
            ])
            .args(["--backend", backend])
            .env(var, value)
            .output()
            .unwrap()
    };
    // No adapter of the named kind: DX12 does not exist on Linux, and no adapter has this name.
    for (var, value, reason) in [
        (
            "WGPU_BACKEND",
            "dx12",
            "no GPU adapter: wgpu found no Vulkan, Metal or DX12 adapter",
        ),
        (
            "WGPU_ADAPTER_NAME",
            "no-such-gpu",
            "no GPU adapter: WGPU_ADAPTER_NAME=\"no-such-gpu\" matches none of the adapters",
        ),
    ] {
        if var == "WGPU_BACKEND" && cfg!(windows) {
            continue;
        }
        let out = run("gpu", var, value);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(reason), "{var}={value}: {stderr}");
    }
    let out = run("auto", "WGPU_BACKEND", "dx12");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("backend: cpu (auto: no GPU adapter found)"),
        "{stderr}"
    );
}

#[test]
fn training_options_reach_the_json() {
    let out = downhill(&[
        "-v",
        "fit",
        "--model",
        "logistic",
        "--rows",
        "3000",
        "--features",
        "5",
        "--epochs",
        "300",
        "--lr",
        "0.05",
        "--optimizer",
        "adam",
        "--standardize",
        "--validation-fraction",
        "0.2",
        "--patience",
        "3",
        "--class-weight",
        "balanced",
        "--l2",
        "0.001",
        "--lr-schedule",
        "cosine",
        "--backend",
        "reference",
        "--json",
    ]);
    let v = report(&out);
    assert_eq!(v["optimizer"], "adam");
    let stop = v["stop_reason"].as_str().unwrap();
    assert!(stop == "no_improvement" || stop == "epochs", "{v}");
    let held_out = v["held_out_rows"].as_u64().unwrap();
    assert!((450..750).contains(&held_out), "{held_out}");
    assert_eq!(
        v["val_history"].as_array().unwrap().len(),
        v["history"].as_array().unwrap().len()
    );
    assert!(v["metrics"]["val_accuracy"].as_f64().unwrap() > 0.6, "{v}");
    assert_eq!(v["standardization"]["mean"].as_array().unwrap().len(), 5);
    // Named as in model files: std, with scale = 1/std as before.
    let (std, scale) = (&v["standardization"]["std"], &v["standardization"]["scale"]);
    for (s, c) in std
        .as_array()
        .unwrap()
        .iter()
        .zip(scale.as_array().unwrap())
    {
        let (s, c) = (s.as_f64().unwrap(), c.as_f64().unwrap());
        assert!((s * c - 1.0).abs() < 1e-12, "std {s}, scale {c}");
    }
    assert_eq!(v["class_weights"].as_array().unwrap().len(), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("val_loss") && stderr.contains("accuracy"),
        "{stderr}"
    );
}

#[test]
fn weight_columns_and_option_mistakes() {
    let dir = scratch("weights");
    // Row weights of 2 count the row twice: the same fit as the repeated file.
    let weighted = write(&dir, "w.csv", "x,y,w\n0,1,2\n1,3,1\n2,4,0\n3,7,1\n");
    let repeated = write(&dir, "r.csv", "x,y\n0,1\n0,1\n1,3\n3,7\n");
    let fit = |path: &str, extra: &[&str]| {
        let mut args = vec![
            "fit",
            "--model",
            "linear",
            "--data",
            path,
            "--target",
            "y",
            "--epochs",
            "500",
            "--lr",
            "0.05",
            "--backend",
            "reference",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = downhill(&args);
        report(&out)
    };
    let a = fit(&weighted, &["--weight-column", "w"]);
    let b = fit(&repeated, &[]);
    assert_eq!(a["features"], 1);
    assert!((a["weights"][0].as_f64().unwrap() - b["weights"][0].as_f64().unwrap()).abs() < 1e-9);
    let negative = write(&dir, "n.csv", "x,y,w\n0,1,-2\n");
    let e = fit_csv(&negative, "y", &["--weight-column", "w"]);
    assert!(
        e.contains("n.csv, line 2, column 3 (w): negative sample weight: \"-2\""),
        "{e}"
    );
    let data = write(&dir, "d.csv", "a,y\n1,0\n2,1\n");
    for (extra, expected) in [
        (
            vec!["--optimizer", "adam", "--momentum", "0.9"],
            "invalid momentum 0.9: applies to --optimizer momentum or nesterov, not adam",
        ),
        (
            vec!["--l2", "-1"],
            "invalid l2 -1: must be a finite number ≥ 0",
        ),
        (
            vec!["--validation-fraction", "1.5"],
            "invalid validation fraction 1.5: must be in (0, 1)",
        ),
        (
            vec!["--beta1", "0.5"],
            "invalid beta1 0.5: applies to --optimizer adam, not sgd",
        ),
        (
            vec!["--class-weight", "even"],
            "invalid class weight even: expected balanced",
        ),
    ] {
        let e = fit_csv(&data, "y", &extra);
        assert!(e.contains(expected), "{extra:?}: {e}");
    }
    let lin = fails(&[
        "fit",
        "--model",
        "linear",
        "--data",
        &data,
        "--target",
        "y",
        "--class-weight",
        "balanced",
        "--backend",
        "reference",
    ]);
    assert!(lin.contains("class weights"), "{lin}");
    let out = downhill(&[
        "fit",
        "--model",
        "linear",
        "--data",
        &data,
        "--target",
        "y",
        "--lr-schedule",
        "step:0:1",
    ]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("EVERY must be a whole number of epochs ≥ 1"),
        "{e}"
    );
}

#[test]
fn loss_expressions_compile_or_say_where_they_fail() {
    let out = downhill(&[
        "fit",
        "--model",
        "linear",
        "--rows",
        "500",
        "--features",
        "3",
        "--epochs",
        "200",
        "--lr",
        "0.5",
        "--loss-expr",
        "sqrt(1 + (z - y)^2) - 1",
        "--backend",
        "reference",
        "--json",
    ]);
    let v = report(&out);
    assert_eq!(v["loss_fn"], "custom:sqrt(1 + (z - y)^2) - 1");
    assert!(
        v["relative_distance_to_truth"].as_f64().unwrap() < 0.05,
        "{v}"
    );
    let e = fails(&[
        "fit",
        "--model",
        "softmax",
        "--rows",
        "50",
        "--features",
        "2",
        "--loss-expr",
        "-t * ln(q)",
    ]);
    assert!(e.contains("invalid --loss-expr -t * ln(q): column 9: unknown name \"q\"; the variables are p and t"), "{e}");
    let e = fails(&[
        "fit",
        "--model",
        "linear",
        "--rows",
        "50",
        "--features",
        "2",
        "--loss-expr",
        "(z - y",
    ]);
    assert!(e.contains("column 7: expected ')'"), "{e}");
}

/// `DOWNHILL_CPU_SIMD` picks the CPU backend's loop: every level this CPU has fits the same
/// problem to the reference's parameters within f32 rounding and says which loop ran; a
/// value that is not a level is refused by name.
#[test]
fn the_cpu_loop_level_comes_from_the_environment() {
    use downhill::backend::cpu::Simd;
    let args = [
        "fit",
        "--model",
        "logistic",
        "--rows",
        "3000",
        "--features",
        "37",
        "--epochs",
        "40",
        "--lr",
        "0.5",
        "--json",
        "--quiet",
        "--backend",
    ];
    let fit = |backend: &str, vars: &[(&str, &str)]| {
        let mut all = args.to_vec();
        all.push(backend);
        report(&downhill_with(&all, vars))
    };
    let exact = fit("reference", &[]);
    let expected: Vec<f64> = exact["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_f64().unwrap())
        .collect();
    for (simd, device) in [
        (Simd::Portable, "portable loops"),
        (Simd::Avx2, "AVX2+FMA"),
        (Simd::Avx512, "AVX-512"),
        (Simd::Amx, "AVX-512 and AMX"),
    ] {
        let vars = [("DOWNHILL_CPU_SIMD", simd.name())];
        if !simd.available() {
            eprintln!("skipped {}: not on this CPU", simd.name());
            continue;
        }
        let v = fit("cpu", &vars);
        assert!(
            v["device"].as_str().unwrap().contains(device),
            "{}: {}",
            simd.name(),
            v["device"]
        );
        for (got, want) in v["weights"].as_array().unwrap().iter().zip(&expected) {
            let got = got.as_f64().unwrap();
            assert!(
                (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                "{}: {got} vs {want}",
                simd.name()
            );
        }
    }
    let out = downhill_with(
        &[&args[..], &["cpu"]].concat(),
        &[("DOWNHILL_CPU_SIMD", "avx3")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("DOWNHILL_CPU_SIMD") && stderr.contains("avx3"),
        "{stderr}"
    );
}

#[test]
fn verify_compares_the_backend_with_the_reference_before_the_fit() {
    let backends: &[&str] = if common::gpu().is_some() {
        &["cpu", "gpu"]
    } else {
        &["cpu"]
    };
    // 3 000 rows: all of them compared; 150 000: the first 100 000 of the synthetic rows.
    for (rows, compared) in [("3000", 3000), ("150000", 100_000)] {
        for backend in backends {
            let args = [
                "fit",
                "--model",
                "softmax",
                "--classes",
                "40",
                "--rows",
                rows,
                "--features",
                "70",
                "--epochs",
                "2",
                "--backend",
                backend,
                "--verify",
                "--json",
            ];
            let out = report(&downhill(&args));
            let v = &out["verified"];
            assert_eq!(v["rows"], compared, "{backend}: {v}");
            for what in ["loss", "gradient"] {
                let e = v[what].as_f64().unwrap();
                assert!(
                    (0.0..1e-5).contains(&e),
                    "{backend}, {rows} rows: {what} {e}"
                );
            }
        }
    }
    let plain = report(&downhill(&[
        "fit",
        "--model",
        "linear",
        "--rows",
        "100",
        "--features",
        "2",
        "--json",
    ]));
    assert!(plain.get("verified").is_none());
}

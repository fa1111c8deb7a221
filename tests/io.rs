//! Data in and results out: every input format gives the same fit, a saved model predicts
//! what the fitted one did, pictures decode with the promised size and frames, progress
//! stays off pipes, and Ctrl-C leaves a valid model file.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::cli::{downhill, fails, fit_fails, json, scratch, write};
use downhill::backend::reference::Reference;
use downhill::input::{self, Columns, Target};
use downhill::{Backend, Dataset, Model, Objective, Predictions, SavedModel, Trainer};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats")
        .join(name)
}

fn read(name: &str, target: Target) -> Dataset {
    let spec = Columns {
        target,
        features: None,
        weights: None,
    };
    input::read(fixture(name), &spec).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The rows of make_formats.py: (age, dose, score) and the label, in that order.
#[test]
fn every_format_reads_the_same_rows() {
    let csv = input::read(
        fixture("data.csv"),
        &Columns {
            target: Target::Column("outcome".into()),
            features: Some(vec!["age".into(), "dose".into(), "score".into()]),
            weights: None,
        },
    )
    .unwrap();
    assert_eq!((csv.rows(), csv.features()), (240, 3));
    // The CSV's own column order is age, dose, outcome, score: the default takes the
    // features in file order, which is the same order here.
    assert_eq!(
        read("data.csv", Target::Column("outcome".into())).x(),
        csv.x()
    );
    let npy = read("X.npy", Target::File(fixture("y.npy")));
    let one_array = read("Xy.npy", Target::Index(1));
    let parquet = read("data.parquet", Target::Column("outcome".into()));
    for (name, d) in [
        ("X.npy", &npy),
        ("Xy.npy", &one_array),
        ("parquet", &parquet),
    ] {
        assert_eq!(d.x(), csv.x(), "{name}: X");
        assert_eq!(d.y(), csv.y(), "{name}: y");
    }
    assert_eq!(parquet.feature_names(), ["age", "dose", "score"]);
    assert_eq!(one_array.feature_names(), ["x0", "x2", "x3"]);
    // A value from the first data line of data.csv: 70.0,0.6941624,0,1.5248793e+00.
    assert_eq!(csv.row(0), [70.0, 0.694_162_4, 1.524_879_3]);
}

#[test]
fn every_format_trains_to_the_same_parameters_from_the_command_line() {
    let fit = |extra: &[&str]| {
        let mut args = vec![
            "fit",
            "--model",
            "logistic",
            "--epochs",
            "150",
            "--lr",
            "0.1",
            "--standardize",
            "--backend",
            "cpu",
            "--json",
        ];
        args.extend_from_slice(extra);
        let v = json(&args);
        (v["weights"].clone(), v["bias"].clone(), v["loss"].clone())
    };
    let (csv, npy, xy, parquet) = (
        fixture("data.csv"),
        fixture("X.npy"),
        fixture("Xy.npy"),
        fixture("data.parquet"),
    );
    let y = fixture("y.npy");
    let s = |p: &Path| p.display().to_string();
    let reference = fit(&["--data", &s(&csv), "--target", "outcome"]);
    assert!(reference.2.as_f64().unwrap() < 0.6, "{reference:?}");
    for extra in [
        vec!["--data", &s(&npy), "--target", &s(&y)],
        vec!["--data", &s(&xy), "--target-index", "1"],
        vec!["--data", &s(&parquet), "--target", "outcome"],
    ] {
        assert_eq!(fit(&extra), reference, "{extra:?}");
    }
    // --features picks and orders columns: reversed order, reversed weights.
    let reversed = fit(&[
        "--data",
        &s(&csv),
        "--target",
        "outcome",
        "--features",
        "score,dose,age",
    ]);
    let forward: Vec<f64> = serde_json::from_value(reference.0).unwrap();
    let mut backward: Vec<f64> = serde_json::from_value(reversed.0).unwrap();
    backward.reverse();
    for (a, b) in forward.iter().zip(&backward) {
        assert!(
            (a - b).abs() < 1e-5 * a.abs().max(1.0),
            "{forward:?} vs {backward:?}"
        );
    }
}

#[test]
fn input_mistakes_name_the_file_and_the_place() {
    let dir = scratch("io-mistakes");
    let csv = fixture("data.csv").display().to_string();
    let e = fit_fails("logistic", &csv, &[]);
    assert!(e.contains("needs its labels named: --target COLUMN"), "{e}");
    let outcome = |features: &str| {
        fit_fails(
            "logistic",
            &csv,
            &["--target", "outcome", "--features", features],
        )
    };
    let e = outcome("age,,dose");
    assert!(e.contains("name 2 is empty"), "{e}");
    let e = outcome("age,weight");
    assert!(
        e.contains("no column named \"weight\"") && e.contains("age, dose, outcome, score"),
        "{e}"
    );
    let e = outcome("age,outcome");
    assert!(
        e.contains("outcome") && e.contains("also the target"),
        "{e}"
    );
    let e = outcome("age,dose,age");
    assert!(e.contains("age is named twice"), "{e}");

    let bad = write(&dir, "bad.csv", "a,b,y\n1,2,0\n3,x4,1\n");
    let e = fit_fails("logistic", &bad, &["--target", "y"]);
    assert!(e.contains("line 3") && e.contains("column 2"), "{e}");

    // A .npy file cut short, one of the wrong rank, and an X without a label choice.
    let whole = std::fs::read(fixture("X.npy")).unwrap();
    let cut = dir.join("cut.npy");
    std::fs::write(&cut, &whole[..whole.len() - 100]).unwrap();
    let e = fit_fails(
        "logistic",
        &cut.display().to_string(),
        &["--target-index", "0"],
    );
    assert!(
        e.contains("cut.npy") && e.contains("ends before its 720 elements"),
        "{e}"
    );
    let x = fixture("X.npy").display().to_string();
    let e = fit_fails("logistic", &x, &["--target", "outcome"]);
    assert!(e.contains("has no named columns"), "{e}");
    let e = fit_fails("logistic", &x, &["--target-index", "3"]);
    assert!(
        e.contains("target index 3") && e.contains("has 3 columns"),
        "{e}"
    );

    let parquet = fixture("data.parquet").display().to_string();
    let e = fit_fails("logistic", &parquet, &["--target", "label"]);
    assert!(
        e.contains("no column named \"label\"") && e.contains("age, dose, score, outcome"),
        "{e}"
    );
    let e = fails(&[
        "fit",
        "--model",
        "linear",
        "--rows",
        "10",
        "--features",
        "a,b",
    ]);
    assert!(e.contains("number of synthetic features"), "{e}");
}

/// A float32 X in C order, every column a feature and the labels in their own file, is
/// mapped rather than read (on Linux): the same rows as the copying readers, the same fit,
/// and a bad cell still named by row and column.
#[test]
fn a_float32_npy_is_mapped_and_reads_the_same_rows() {
    let csv = read("data.csv", Target::Column("outcome".into()));
    let dir = scratch("io-mapped");
    let (x, y) = (dir.join("X32.npy"), dir.join("y32.npy"));
    input::npy::write(&x, csv.x(), 3, false).unwrap();
    input::npy::write(&y, csv.y(), 1, true).unwrap();
    let spec = |features: Option<Vec<String>>| Columns {
        target: Target::File(y.clone()),
        features,
        weights: None,
    };
    let mapped = input::read(&x, &spec(None)).unwrap();
    assert_eq!(mapped.x_is_mapped(), cfg!(target_os = "linux"));
    assert_eq!((mapped.x(), mapped.y()), (csv.x(), csv.y()));
    let trainer = Trainer::new().epochs(50).lr(0.1);
    let fit = |data: &Dataset| {
        downhill::fit(
            &downhill::backend::cpu::Cpu::default(),
            data,
            Objective::logistic(),
            &trainer,
        )
        .unwrap()
        .params
    };
    assert_eq!(fit(&mapped), fit(&csv));
    // A choice of columns is copied out.
    let two = input::read(&x, &spec(Some(vec!["x0".into(), "x2".into()]))).unwrap();
    assert!(!two.x_is_mapped());
    assert_eq!(two.row(5), [csv.row(5)[0], csv.row(5)[2]]);
    let mut bad = csv.x().to_vec();
    bad[7 * 3 + 1] = f32::NAN;
    input::npy::write(&x, &bad, 3, false).unwrap();
    let e = input::read(&x, &spec(None)).unwrap_err().to_string();
    assert!(
        e.contains("X32.npy") && e.contains("row 7, column 1"),
        "{e}"
    );
}

/// The readers of `impl Read` (standard input, a network stream, bytes in memory) read
/// what the file readers read, and name the source as they are told in their messages.
#[test]
fn readers_of_bytes_read_what_the_file_readers_read() {
    let csv = read("data.csv", Target::Column("outcome".into()));
    let text = std::fs::read(fixture("data.csv")).unwrap();
    let spec = Columns::target("outcome");
    let from = input::csv::read_from(text.as_slice(), "-", &spec).unwrap();
    assert_eq!(
        (from.x(), from.y(), from.feature_names()),
        (csv.x(), csv.y(), csv.feature_names())
    );
    let bad = "a,outcome\n1,0\n2,x\n";
    let e = input::csv::read_from(bad.as_bytes(), "stdin", &spec).unwrap_err();
    assert_eq!(
        e.to_string(),
        "stdin, line 3, column 2 (outcome): not a number: \"x\""
    );

    let dir = scratch("io-npy-bytes");
    let x = dir.join("X.npy");
    // X with the label as a fourth column: row i is its three features, then its label.
    let rows: Vec<f32> = (0..csv.rows())
        .flat_map(|i| csv.row(i).iter().copied().chain([csv.y()[i]]))
        .collect();
    input::npy::write(&x, &rows, 4, false).unwrap();
    let spec = Columns {
        target: Target::Index(3),
        features: None,
        weights: None,
    };
    let file = input::read(&x, &spec).unwrap();
    let bytes = std::fs::read(&x).unwrap();
    let memory = input::npy::read_from(bytes.as_slice(), "X.npy", &spec).unwrap();
    assert_eq!((memory.x(), memory.y()), (file.x(), file.y()));
    assert_eq!((memory.x(), memory.y()), (csv.x(), csv.y()));
    let e = input::npy::read_from(&bytes[..bytes.len() - 1], "X.npy", &spec).unwrap_err();
    assert!(e.to_string().starts_with("X.npy: "), "{e}");
}

/// The model a fit returns carries the rows' columns and the descent's standardization,
/// and predicts and scores what its session would, on every backend.
#[test]
fn a_fit_returns_a_model_that_predicts_scores_and_saves() {
    let data = read("data.csv", Target::Column("outcome".into()));
    let objective = Objective::logistic();
    let trainer = Trainer::new().epochs(100).lr(0.1).standardize(true);
    let fit = downhill::fit(&Reference, &data, objective, &trainer).unwrap();
    let model = &fit.model;
    assert_eq!(model.params, fit.params);
    assert_eq!(model.features.as_deref(), Some(data.feature_names()));
    assert_eq!(model.target.as_deref(), Some("outcome"));
    assert_eq!(model.standardization, fit.configured.standardization);
    assert_eq!(model.objective().unwrap(), objective);
    // The score of the final parameters is the fit's final evaluation.
    let score = model.score(&Reference, &data).unwrap();
    assert_eq!(score.loss, fit.loss);
    assert_eq!(score.accuracy, fit.last.training.accuracy);
    let path = scratch("io-fitted").join("model.json");
    model.save(&path).unwrap();
    let loaded = downhill::FittedModel::load(&path).unwrap();
    assert_eq!(&loaded, model);
    let mut session = Reference
        .open(downhill::Data::Host(&data), objective)
        .unwrap();
    let expected = Predictions::of(session.as_mut(), &fit.params).unwrap();
    for (name, backend) in common::all_backends() {
        let p = loaded.predict(backend.as_ref(), &data).unwrap();
        common::assert_close(&name, p.logits(), expected.logits(), 1e-4);
        let s = loaded.score(backend.as_ref(), &data).unwrap();
        assert!(
            (s.loss - fit.loss).abs() < 1e-5,
            "{name}: {} vs {}",
            s.loss,
            fit.loss
        );
    }
    // Rows of other columns are refused, naming what the model expects.
    let two = Dataset::new(vec![0.0; 4], vec![0.0, 1.0], 2).unwrap();
    let e = loaded.predict(&Reference, &two).unwrap_err().to_string();
    assert!(e.contains("expected 3 feature columns"), "{e}");
}

/// fit → save → load → predict gives what the fitted parameters predict in memory, on every
/// backend.
#[test]
fn saved_models_predict_what_the_fit_predicted() {
    let dir = scratch("io-predict");
    let data = read("data.parquet", Target::Column("outcome".into()));
    let objective = Objective::logistic();
    let fit = downhill::fit(
        &Reference,
        &data,
        objective,
        &Trainer::new().epochs(200).lr(0.1).standardize(true),
    )
    .unwrap();
    let mut model = SavedModel::new(&objective, fit.params.clone());
    model.features = Some(data.feature_names().to_vec());
    model.target = Some("outcome".into());
    model.standardization = fit.configured.standardization.clone();
    let path = dir.join("model.json");
    model.save(&path).unwrap();
    let loaded = SavedModel::load(&path).unwrap();
    assert_eq!(loaded, model);

    let mut session = Reference
        .open(downhill::Data::Host(&data), objective)
        .unwrap();
    let in_memory = Predictions::of(session.as_mut(), &fit.params).unwrap();
    // z = x·w + b by hand for row 0, in f64.
    let x0 = data.row(0);
    let z0: f64 = fit.params.bias()[0]
        + x0.iter()
            .zip(fit.params.weights())
            .map(|(&x, &w)| f64::from(x) * w)
            .sum::<f64>();
    assert!((in_memory.logits()[0] - z0).abs() < 1e-12);
    for (name, backend) in common::all_backends() {
        let mut session = backend
            .open(
                downhill::Data::Host(&data),
                loaded.prediction_objective().unwrap(),
            )
            .unwrap();
        let p = Predictions::of(session.as_mut(), &loaded.params).unwrap();
        common::assert_close(&name, p.logits(), in_memory.logits(), 1e-4);
        assert_eq!(p.classes(), in_memory.classes(), "{name}");
    }

    // The same through the command line, with the model file the CLI writes.
    let cli_model = dir.join("cli.json");
    let predictions = dir.join("p.csv");
    let s = |p: &Path| p.display().to_string();
    let parquet = s(&fixture("data.parquet"));
    let report = json(&[
        "fit",
        "--model",
        "logistic",
        "--data",
        &parquet,
        "--target",
        "outcome",
        "--epochs",
        "200",
        "--lr",
        "0.1",
        "--standardize",
        "--backend",
        "reference",
        "--out",
        &s(&cli_model),
        "--json",
    ]);
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&cli_model).unwrap()).unwrap();
    assert_eq!(
        saved["features"],
        serde_json::json!(["age", "dose", "score"])
    );
    assert_eq!(saved["target"], "outcome");
    assert_eq!(saved["weights"], report["weights"]);
    assert_eq!(
        saved["standardization"]["mean"].as_array().unwrap().len(),
        3
    );
    for backend in ["reference", "cpu", "gpu"] {
        if backend == "gpu" && common::gpu().is_none() {
            continue;
        }
        let out = downhill(&[
            "predict",
            "--model-file",
            &s(&cli_model),
            "--data",
            &parquet,
            "--proba",
            "--backend",
            backend,
            "--out",
            &s(&predictions),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(&predictions).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("class,probability"));
        let rows: Vec<(usize, f64)> = lines
            .map(|l| {
                let (c, p) = l.split_once(',').unwrap();
                (c.parse().unwrap(), p.parse().unwrap())
            })
            .collect();
        assert_eq!(rows.len(), 240);
        let probabilities = in_memory.values();
        for (i, (class, p)) in rows.iter().enumerate() {
            assert_eq!(*class, usize::from(p > &0.5), "{backend} row {i}");
            assert!(
                (p - probabilities[i]).abs() < 1e-5,
                "{backend} row {i}: {p}"
            );
        }
    }
    // Scoring the training rows gives the fit's own loss and accuracy.
    let score = json(&[
        "score",
        "--model-file",
        &s(&cli_model),
        "--data",
        &parquet,
        "--backend",
        "reference",
        "--json",
    ]);
    let loss = score["loss"].as_f64().unwrap();
    assert!(
        (loss - report["loss"].as_f64().unwrap()).abs() < 1e-12,
        "{score}"
    );
    assert_eq!(score["accuracy"], report["metrics"]["accuracy"]);
    assert_eq!(score["rows"], 240);
    // The npy file names its columns x0…: a model fitted on Xy.npy predicts from it.
    let xy_model = dir.join("xy.json");
    let xy = s(&fixture("Xy.npy"));
    json(&[
        "fit",
        "--model",
        "logistic",
        "--data",
        &xy,
        "--target-index",
        "1",
        "--epochs",
        "100",
        "--standardize",
        "--backend",
        "cpu",
        "--out",
        &s(&xy_model),
        "--json",
    ]);
    let out = downhill(&["predict", "--model-file", &s(&xy_model), "--data", &xy]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 241);
    let score = json(&[
        "score",
        "--model-file",
        &s(&xy_model),
        "--data",
        &xy,
        "--json",
    ]);
    assert!(score["accuracy"].as_f64().unwrap() > 0.7, "{score}");
}

#[test]
fn softmax_and_linear_predictions_have_their_own_columns() {
    let dir = scratch("io-columns");
    let s = |p: &Path| p.display().to_string();
    let data = write(
        &dir,
        "three.csv",
        "x,label\n-2,0\n-1.5,0\n-1,0\n0,1\n0.2,1\n0.4,1\n1.5,2\n2,2\n2.5,2\n",
    );
    let model = dir.join("softmax.json");
    json(&[
        "fit",
        "--model",
        "softmax",
        "--data",
        &data,
        "--target",
        "label",
        "--epochs",
        "400",
        "--lr",
        "0.5",
        "--backend",
        "cpu",
        "--out",
        &s(&model),
        "--json",
    ]);
    let out = downhill(&[
        "predict",
        "--model-file",
        &s(&model),
        "--data",
        &data,
        "--proba",
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("class,p0,p1,p2"));
    for (i, line) in lines.enumerate() {
        let cells: Vec<f64> = line.split(',').map(|c| c.parse().unwrap()).collect();
        assert_eq!(cells[0] as usize, i / 3, "row {i}: {line}");
        assert!(
            (cells[1..].iter().sum::<f64>() - 1.0).abs() < 1e-12,
            "{line}"
        );
    }
    let linear = dir.join("linear.json");
    std::fs::write(
        &linear,
        r#"{"model": "linear", "weights": [2.0], "bias": -1.0, "features": ["x"]}"#,
    )
    .unwrap();
    let out = downhill(&["predict", "--model-file", &s(&linear), "--data", &data]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let values: Vec<&str> = text.lines().collect();
    assert_eq!(values[..3], ["prediction", "-5", "-4"]);
    let e = fails(&["score", "--model-file", &s(&linear), "--data", &data]);
    assert!(e.contains("names no target column"), "{e}");
    let e = fails(&["predict", "--model-file", &data, "--data", &data]);
    assert!(
        e.contains("three.csv") && e.contains("line 1, column 1"),
        "{e}"
    );
}

#[cfg(feature = "ndarray")]
#[test]
fn ndarray_views_in_and_arrays_out() {
    use ndarray::{Array2, array};
    let x: Array2<f32> = array![[0.0], [1.0], [2.0], [3.0]];
    let y = array![1.0f32, 3.0, 5.0, 7.0];
    let data = Dataset::from_arrays(x.view(), y.view()).unwrap();
    assert_eq!(data.x_array(), x.view());
    // Column-major input is read in row order.
    let xt = array![[1.0f32, 2.0], [3.0, 4.0]].reversed_axes();
    let d2 = Dataset::from_arrays(xt.view(), array![0.0f32, 1.0].view()).unwrap();
    assert_eq!(d2.x(), [1.0, 3.0, 2.0, 4.0]);
    let fit = downhill::fit(
        &Reference,
        &data,
        Objective::linear(),
        &Trainer::new().lr(0.05).epochs(3000),
    )
    .unwrap();
    let mut session = Reference
        .open(downhill::Data::Host(&data), Objective::linear())
        .unwrap();
    let p = Predictions::of(session.as_mut(), &fit.params).unwrap();
    let values = p.to_array1();
    for (v, t) in values.iter().zip([1.0, 3.0, 5.0, 7.0]) {
        assert!((v - t).abs() < 1e-3, "{values}");
    }
    let logistic = Predictions::from_logits(Model::Logistic, 1, vec![0.0, 1.0]);
    let both = logistic.to_array2();
    assert_eq!(both.dim(), (2, 2));
    assert!((both[[1, 1]] - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-15);
    assert_eq!(logistic.class_array().unwrap().to_vec(), vec![0, 1]);
}

#[test]
fn pictures_decode_with_their_size_and_frames() {
    let dir = scratch("io-pictures");
    let s = |p: &Path| p.display().to_string();
    let (png, gif) = (dir.join("loss.png"), dir.join("fit.gif"));
    json(&[
        "fit",
        "--model",
        "logistic",
        "--rows",
        "3000",
        "--features",
        "1",
        "--epochs",
        "40",
        "--log-every",
        "5",
        "--lr",
        "0.5",
        "--validation-fraction",
        "0.2",
        "--backend",
        "cpu",
        "--plot",
        &s(&png),
        "--animate",
        &s(&gif),
        "--json",
    ]);
    let image = image::open(&png).expect("the PNG decodes");
    assert_eq!(
        (image.width(), image.height()),
        downhill::plot::LOSS_PLOT_SIZE
    );
    // Not a blank page: the curves and text put many colours on it.
    let rgb = image.to_rgb8();
    let distinct: std::collections::HashSet<[u8; 3]> = rgb.pixels().map(|p| p.0).collect();
    assert!(distinct.len() > 20, "{} colours", distinct.len());

    use image::AnimationDecoder;
    let decoder = image::codecs::gif::GifDecoder::new(std::fs::File::open(&gif).unwrap()).unwrap();
    let frames = decoder
        .into_frames()
        .collect_frames()
        .expect("the GIF decodes");
    // Epochs 0, 5, …, 40: nine logged epochs, one frame each.
    assert_eq!(frames.len(), 9);
    let first = frames[0].buffer();
    assert_eq!(first.dimensions(), downhill::plot::ANIMATION_SIZE);
    assert_ne!(first, frames[8].buffer(), "the fitted curve moves");

    let e = fails(&[
        "fit",
        "--model",
        "linear",
        "--rows",
        "100",
        "--features",
        "2",
        "--animate",
        &s(&dir.join("no.gif")),
    ]);
    assert!(
        e.contains("one-feature problems; this one has 2 features"),
        "{e}"
    );
    assert!(!dir.join("no.gif").exists());
}

#[test]
fn nothing_on_stderr_when_it_is_not_a_terminal() {
    let job = "fit --model linear --rows 2000 --features 4 --epochs 30 --backend cpu";
    let run = |flags: &[&str]| {
        let args: Vec<&str> = flags.iter().copied().chain(job.split(' ')).collect();
        let out = downhill(&args);
        assert!(out.status.success(), "{flags:?}");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let plain = run(&[]);
    assert!(plain.is_empty(), "{plain}");
    // -v turns the epoch lines on, and still draws no bar on a pipe.
    let verbose = run(&["-v"]);
    assert!(verbose.contains("epoch 30: loss"), "{verbose}");
    assert!(
        !verbose.contains('\r') && !verbose.contains("rows/s"),
        "a bar on a pipe: {verbose}"
    );
    assert!(run(&["--quiet"]).is_empty());
}

/// On a terminal (a pseudo-terminal from util-linux's `script`) the bar is drawn; with
/// --quiet it is not.
#[test]
fn a_progress_bar_on_a_terminal() {
    let bin = env!("CARGO_BIN_EXE_downhill");
    let run = |quiet: &str| {
        let command = format!(
            "{bin} {quiet} fit --model logistic --rows 200000 --features 8 --epochs 60 \
             --backend cpu 1>/dev/null"
        );
        let out = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .output()
            .expect("util-linux's script runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let drawn = run("");
    assert!(
        drawn.contains("epoch") && drawn.contains("rows/s") && drawn.contains("/60"),
        "{drawn:?}"
    );
    assert_eq!(run("--quiet").trim(), "");
}

/// SIGINT stops the fit after its current step, writes --out with those parameters, and
/// exits 130 saying so.
#[test]
fn ctrl_c_writes_the_last_parameters_and_exits_non_zero() {
    let dir = scratch("io-sigint");
    let out = dir.join("model.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args([
            "-v",
            "fit",
            "--model",
            "logistic",
            "--rows",
            "20000",
            "--features",
            "4",
            "--epochs",
            "100000000",
            "--log-every",
            "1",
            "--backend",
            "cpu",
            "--out",
        ])
        .arg(&out)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let started = Instant::now();
    // Wait until training is under way (a few logged epochs), then interrupt.
    while seen.matches("epoch ").count() < 3 {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 || started.elapsed() > Duration::from_secs(60)
        {
            let _ = child.kill();
            panic!("the fit never got going: {seen}");
        }
        seen += &line;
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest}");
    assert!(rest.contains("interrupted after step"), "{rest}");
    assert!(
        rest.contains(&format!("written to {}", out.display())),
        "{rest}"
    );
    let model = SavedModel::load(&out).expect("a valid model file");
    assert_eq!(model.model, Model::Logistic);
    assert!(model.params.is_finite());
    assert!(model.params.norm() > 0.0, "trained at least one step");
    assert!(!dir.join("model.json.tmp").exists());
}

//! The libsvm reader: index bases as scikit-learn's `load_svmlight_file` decides them,
//! blank and comment lines, `qid:`, rows listing their columns out of order or twice, and
//! every malformed pair named with its file, line and column; and `downhill fit` on a
//! libsvm file.

mod common;

use common::cli::{downhill, fails, report, scratch, write};
use downhill::SparseDataset;
use downhill::input::libsvm::{self, IndexBase, LibsvmOptions};

fn read(text: &str, options: LibsvmOptions) -> downhill::Result<SparseDataset> {
    let dir = std::env::temp_dir().join(format!("downhill-libsvm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{:x}.svm", fingerprint(text, &options)));
    std::fs::write(&path, text).unwrap();
    libsvm::read(&path, &options)
}

fn fingerprint(text: &str, options: &LibsvmOptions) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (text, format!("{options:?}")).hash(&mut h);
    h.finish()
}

fn dense(s: &SparseDataset) -> Vec<Vec<f32>> {
    let d = s.to_dense(0..s.rows()).unwrap();
    (0..s.rows()).map(|i| d.row(i).to_vec()).collect()
}

fn auto() -> LibsvmOptions {
    LibsvmOptions::default()
}

#[test]
fn one_based_files_are_shifted_and_zero_based_ones_kept() {
    // No index 0: one-based, as scikit-learn's zero_based="auto" reads it.
    let s = read("1 1:0.5 3:2\n0 2:1\n", auto()).unwrap();
    assert_eq!(s.features(), 3);
    assert_eq!(dense(&s), vec![vec![0.5, 0.0, 2.0], vec![0.0, 1.0, 0.0]]);
    assert_eq!(s.y(), &[1.0, 0.0]);
    // An index 0 anywhere: zero-based.
    let s = read("1 1:0.5 3:2\n0 0:1\n", auto()).unwrap();
    assert_eq!(
        dense(&s),
        vec![vec![0.0, 0.5, 0.0, 2.0], vec![1.0, 0.0, 0.0, 0.0]]
    );
    // Forced either way.
    let zero = LibsvmOptions {
        base: IndexBase::Zero,
        features: None,
    };
    assert_eq!(read("1 1:0.5\n", zero).unwrap().features(), 2);
    let one = LibsvmOptions {
        base: IndexBase::One,
        features: Some(4),
    };
    let s = read("1 1:0.5\n", one).unwrap();
    assert_eq!(dense(&s), vec![vec![0.5, 0.0, 0.0, 0.0]]);
}

#[test]
fn comments_blank_lines_qid_empty_rows_and_repeats() {
    let text = "# a header comment\n\n+1 qid:3 4:1 2:1 4:2 # four twice\n-1\n\t\n0.25 1:-3e-1\r\n";
    let mut s = read(text, auto()).unwrap();
    assert_eq!(s.rows(), 3);
    assert_eq!(s.y(), &[1.0, -1.0, 0.25]);
    // Columns put in order, the repeated one summed (scipy's sum_duplicates); the second
    // row has no entries.
    assert_eq!(s.offsets(), &[0, 2, 2, 3]);
    assert_eq!(s.indices(), &[1, 3, 0]);
    assert_eq!(s.values().unwrap(), &[1.0, 3.0, -0.3]);
    assert!(!s.binary_labels_from_signs(), "0.25 is neither sign");
    // All-ones values are not stored.
    let s = read("1 1:1 5:1\n0 2:1\n", auto()).unwrap();
    assert!(s.values().is_none());
    assert_eq!(s.nnz(), 3);
}

#[test]
fn malformed_pairs_name_the_file_line_and_column() {
    let cases = [
        (
            "1 1:2\n0 3:abc\n",
            2,
            5,
            "the value of \"3:abc\" is not a finite number",
        ),
        (
            "1 1:2\n0 -1:2\n",
            2,
            3,
            "the index of \"-1:2\" is not a non-negative integer",
        ),
        (
            "1 1:2\n0 2:1 3:\n",
            2,
            7,
            "\"3:\" has no value after the colon",
        ),
        ("1:2 3:4\n", 1, 1, "expected a label first, found \"1:2\""),
        (
            "1 1:2\n\n# c\nyes 1:1\n",
            4,
            1,
            "the label \"yes\" is not a finite number",
        ),
        ("1 1:2 7\n", 1, 7, "expected index:value, found \"7\""),
        ("1 1:nan\n", 1, 5, "not a finite number"),
    ];
    for (text, line, column, message) in cases {
        let e = read(text, auto()).unwrap_err().to_string();
        let at = format!(".svm, line {line}, column {column}: ");
        assert!(e.contains(&at) && e.contains(message), "{text:?}: {e}");
    }
    let e = read(
        "1 1:2\n0 0:1\n",
        LibsvmOptions {
            base: IndexBase::One,
            features: None,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("line 2, column 3: index 0 in a file read as one-based"),
        "{e}"
    );
    let e = read(
        "1 1:2\n0 9:1\n",
        LibsvmOptions {
            base: IndexBase::Auto,
            features: Some(5),
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("line 2, column 3: index 9 is beyond the 5 features"),
        "{e}"
    );
    let e = read("# only a comment\n\n", auto())
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty"), "{e}");
}

#[test]
fn files_longer_than_a_chunk_keep_their_rows_and_line_numbers() {
    // About 40 MiB: two chunks of text (a bad value is reported where the value starts), the cut between them inside some row.
    let rows = 600_000;
    let mut text = String::with_capacity(48 << 20);
    for i in 0..rows {
        let a = i % 1000 + 1;
        text.push_str(&format!(
            "{} {a}:{}.5 {}:0.125 {}:-2 # row {i} of the test\n",
            i % 2,
            i % 7,
            a + 1000,
            a + 2000
        ));
    }
    let s = read(&text, auto()).unwrap();
    assert_eq!((s.rows(), s.nnz(), s.features()), (rows, 3 * rows, 3000));
    let last = s.row(rows - 1);
    assert_eq!(last.indices, &[999u32, 1999, 2999]);
    assert_eq!(
        last.values.unwrap(),
        &[((rows - 1) % 7) as f32 + 0.5, 0.125, -2.0]
    );
    text.push_str("1 4:x\n");
    let e = read(&text, auto()).unwrap_err().to_string();
    assert!(e.contains(&format!("line {}, column 5", rows + 1)), "{e}");
}

#[test]
fn the_command_line_fits_libsvm_files_and_names_their_mistakes() {
    let dir = scratch("libsvm-cli");
    let rows = "+1 1:1 2:0.5\n-1 1:-1 3:2\n+1 2:1 # a comment\n-1 3:1 1:-0.5\n";
    let data = write(&dir, "rows.svm", rows);
    let out = downhill(&[
        "fit", "--model", "logistic", "--data", &data, "--l2", "0.1", "--json",
    ]);
    let v = report(&out);
    assert_eq!(
        (v["rows"].as_u64(), v["features"].as_u64()),
        (Some(4), Some(3)),
        "{v}"
    );
    assert_eq!(
        v["backend"], "cpu",
        "auto takes the CPU for sparse rows: {v}"
    );
    assert_eq!(v["stop_reason"], "converged", "{v}");
    let bad = write(&dir, "bad.svm", "1 1:2\n0 3:abc\n");
    let e = fails(&["fit", "--model", "logistic", "--data", &bad]);
    assert!(
        e.contains("bad.svm, line 2, column 5: the value of \"3:abc\""),
        "{e}"
    );
    let e = fails(&[
        "fit",
        "--model",
        "logistic",
        "--data",
        &data,
        "--num-features",
        "2",
    ]);
    assert!(
        e.contains("line 2, column 9: index 3 is beyond the 2 features"),
        "{e}"
    );
    let e = fails(&[
        "fit", "--model", "logistic", "--data", &data, "--target", "y",
    ]);
    assert!(
        e.contains("labels are the first number of each line"),
        "{e}"
    );
    if common::gpu().is_some() {
        // The GPU's sparse session fits the same rows to the same optimum.
        let on_gpu = report(&downhill(&[
            "fit",
            "--model",
            "logistic",
            "--data",
            &data,
            "--l2",
            "0.1",
            "--backend",
            "gpu",
            "--json",
        ]));
        assert_eq!(on_gpu["backend"], "gpu", "{on_gpu}");
        common::assert_close(
            "gpu against cpu",
            &common::cli::flat_weights(&on_gpu),
            &common::cli::flat_weights(&v),
            1e-4,
        );
    }
    let csv = write(&dir, "rows.csv", "a,y\n1,0\n2,1\n");
    let e = fails(&[
        "fit",
        "--model",
        "logistic",
        "--data",
        &csv,
        "--target",
        "y",
        "--zero-based",
    ]);
    assert!(e.contains("read libsvm files"), "{e}");
}

/// σ(x·w + b) for a libsvm row's pairs, zero-based.
fn probability(pairs: &[(usize, f64)], w: &[f64], b: f64) -> f64 {
    let z: f64 = pairs.iter().map(|&(j, x)| x * w[j]).sum::<f64>() + b;
    1.0 / (1.0 + (-z).exp())
}

#[test]
fn predict_and_score_read_libsvm_files_as_the_model_was_fitted() {
    let dir = scratch("libsvm-predict");
    // Zero-based (index 0 appears): the model records it.
    let train = "1 0:1 2:0.5\n0 0:-1 1:2\n1 1:1 # a comment\n0 2:1 0:-0.5\n";
    let train = write(&dir, "train.svm", train);
    let model = dir.join("model.json").display().to_string();
    let out = downhill(&[
        "fit", "--model", "logistic", "--data", &train, "--l2", "0.1", "--out", &model,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (saved, w, b) = common::cli::saved_model(&model);
    assert_eq!(saved["libsvm"]["one_based"], false, "{saved}");
    // No index 0 here: detected alone it would be one-based; the model reads it zero-based.
    let new = write(&dir, "new.svm", "-1 1:1 2:2\n+1 2:-1\n");
    let p = common::cli::probabilities(&downhill(&[
        "predict",
        "--model-file",
        &model,
        "--data",
        &new,
        "--proba",
    ]));
    let expected = [
        probability(&[(1, 1.0), (2, 2.0)], &w, b),
        probability(&[(2, -1.0)], &w, b),
    ];
    common::assert_close("libsvm predictions", &p, &expected, 1e-6);
    // Score: labels ±1 read as 0 and 1; the loss is the mean cross-entropy of those rows.
    let v = report(&downhill(&[
        "score",
        "--model-file",
        &model,
        "--data",
        &new,
        "--json",
    ]));
    let loss = -((1.0 - expected[0]).ln() + expected[1].ln()) / 2.0;
    assert!(
        (v["loss"].as_f64().unwrap() - loss).abs() < 1e-5,
        "{v} vs {loss}"
    );
    assert_eq!(v["rows"], 2, "{v}");
    let wide = write(&dir, "wide.svm", "1 0:1\n0 7:1\n");
    let e = fails(&["predict", "--model-file", &model, "--data", &wide]);
    assert!(
        e.contains("wide.svm, line 2, column 3: index 7 is beyond the 3 features"),
        "{e}"
    );
}

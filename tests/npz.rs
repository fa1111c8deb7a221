//! The scipy CSR reader: every data and index type scipy writes, deflated and stored
//! archives, rows out of order and repeated, what the fixtures' dense twin says each matrix
//! means (tests/fixtures/sparse/make_npz.py made both), and the mistakes: CSC, a truncated
//! or damaged archive, labels that do not match, a label file missing; and `downhill fit`
//! on an `.npz`.

mod common;

use std::path::{Path, PathBuf};

use common::cli::{downhill, fails, report};
use downhill::SparseDataset;
use downhill::input::npz;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sparse")
        .join(name)
}

/// The fixtures' dense twin, rows of 9 values.
fn dense_twin() -> Vec<Vec<f32>> {
    let d = downhill::Dataset::read(
        fixture("dense.npy"),
        &downhill::input::Columns::target(fixture("y.npy").to_str().unwrap()),
    )
    .unwrap();
    (0..d.rows()).map(|i| d.row(i).to_vec()).collect()
}

fn dense(s: &SparseDataset) -> Vec<Vec<f32>> {
    let d = s.to_dense(0..s.rows()).unwrap();
    (0..s.rows()).map(|i| d.row(i).to_vec()).collect()
}

#[test]
fn every_data_and_index_type_reads_as_its_dense_twin() {
    let twin = dense_twin();
    for name in [
        "csr_f4_i4.npz",
        "csr_f8_i4.npz",
        "csr_f4_i8.npz",
        "csr_f8_i8.npz",
    ] {
        let s = npz::read(&fixture(name), Some(&fixture("y.npy"))).unwrap();
        assert_eq!((s.rows(), s.features()), (6, 9), "{name}");
        // Row 2 lists column 5 twice: summed into one entry, so 11 of the 12 remain.
        assert_eq!(s.nnz(), 11, "{name}");
        assert_eq!(s.row(2).indices, &[1, 5, 6], "{name}: in column order");
        assert_eq!(dense(&s), twin, "{name}");
        assert_eq!(s.y(), &[0.0, 1.0, 1.0, 0.0, 1.0, 0.0], "{name}");
        assert!(s.values().is_some(), "{name}");
    }
    let binary = npz::read(&fixture("binary.npz"), Some(&fixture("y.npy"))).unwrap();
    assert!(binary.values().is_none(), "all-ones values are not kept");
    assert_eq!(
        dense(&binary)[2],
        vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    );
}

#[test]
fn mistakes_are_named_with_the_file() {
    let y = fixture("y.npy");
    let e = npz::read(&fixture("csc.npz"), Some(&y))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("csc.npz") && e.contains("in csc form") && e.contains("X.tocsr()"),
        "{e}"
    );
    let bytes = std::fs::read(fixture("csr_f4_i4.npz")).unwrap();
    // Cut short anywhere: the end record is gone, or what it points at is.
    for keep in [0, 10, bytes.len() / 2, bytes.len() - 1] {
        let e = npz::read_from(&bytes[..keep], "cut.npz", vec![0.0; 6])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cut.npz") && e.contains("truncated"),
            "{keep}: {e}"
        );
    }
    // One flipped byte inside a deflated member: the inflater or the CRC-32 catches it.
    let stored = std::fs::read(fixture("csr_f8_i8.npz")).unwrap();
    let mut damaged = stored.clone();
    let at = find(&stored, b"\x93NUMPY").unwrap() + 200;
    damaged[at] ^= 0x40;
    let e = npz::read_from(&damaged, "damaged.npz", vec![0.0; 6])
        .unwrap_err()
        .to_string();
    assert!(e.contains("damaged.npz") && e.contains("CRC-32"), "{e}");
    let e = npz::read_from(&bytes, "short.npz", vec![0.0; 5])
        .unwrap_err()
        .to_string();
    assert!(e.contains("5 labels for its 6 rows"), "{e}");
    let e = npz::read(&fixture("csr_f4_i4.npz"), Some(&fixture("dense.npy")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("dense.npy") && e.contains("do not match"), "{e}");
    let e = npz::read(&fixture("csr_f4_i4.npz"), Some(&fixture("absent.npy")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent.npy"), "{e}");
    // A zip that is no scipy matrix.
    let e = npz::read(&fixture("y.npy"), Some(&y))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no zip end record"), "{e}");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn the_command_line_fits_an_npz_with_its_labels() {
    let data = fixture("csr_f4_i4.npz");
    let y = fixture("y.npy");
    let (data, y) = (data.to_str().unwrap(), y.to_str().unwrap());
    let out = downhill(&[
        "fit", "--model", "logistic", "--data", data, "--target", y, "--l2", "0.1", "--json",
    ]);
    let v = report(&out);
    assert_eq!(
        (v["rows"].as_u64(), v["features"].as_u64()),
        (Some(6), Some(9)),
        "{v}"
    );
    assert_eq!(v["stop_reason"], "converged", "{v}");
    // The same fit on the dense twin lands on the same weights.
    let dense_out = downhill(&[
        "fit",
        "--model",
        "logistic",
        "--data",
        fixture("dense.npy").to_str().unwrap(),
        "--target",
        y,
        "--l2",
        "0.1",
        "--json",
    ]);
    let (a, b) = (
        common::cli::flat_weights(&v),
        common::cli::flat_weights(&report(&dense_out)),
    );
    common::assert_close("npz against dense", &a, &b, 1e-5);
    let e = fails(&["fit", "--model", "logistic", "--data", data]);
    assert!(e.contains("--target y.npy"), "{e}");
    let e = fails(&[
        "fit",
        "--model",
        "logistic",
        "--data",
        data,
        "--target",
        y,
        "--features",
        "a",
    ]);
    assert!(e.contains("sparse rows take every column"), "{e}");
}

#[test]
fn predict_and_score_take_an_npz() {
    let dir = common::cli::scratch("npz-predict");
    let model = dir.join("model.json").display().to_string();
    let data = fixture("csr_f8_i4.npz");
    let y = fixture("y.npy");
    let (data, y) = (data.to_str().unwrap(), y.to_str().unwrap());
    let out = downhill(&[
        "fit", "--model", "logistic", "--data", data, "--target", y, "--l2", "0.1", "--out", &model,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = downhill(&["predict", "--model-file", &model, "--data", data, "--proba"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // The same model on the dense twin predicts the same probabilities.
    let dense = fixture("dense.npy");
    let twin = downhill(&[
        "predict",
        "--model-file",
        &model,
        "--data",
        dense.to_str().unwrap(),
        "--proba",
    ]);
    assert!(
        twin.status.success(),
        "{}",
        String::from_utf8_lossy(&twin.stderr)
    );
    let column = |t: &str| -> Vec<f64> {
        t.lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect()
    };
    let twin_text = String::from_utf8(twin.stdout).unwrap();
    assert_eq!(column(&text).len(), 6);
    common::assert_close(
        "npz against dense",
        &column(&text),
        &column(&twin_text),
        1e-9,
    );
    let v = report(&downhill(&[
        "score",
        "--model-file",
        &model,
        "--data",
        data,
        "--target",
        y,
        "--json",
    ]));
    let p = column(&text);
    let labels = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0];
    let loss: f64 = p
        .iter()
        .zip(labels)
        .map(|(p, y)| -(y * p.ln() + (1.0 - y) * (1.0 - p).ln()))
        .sum::<f64>()
        / 6.0;
    assert!(
        (v["loss"].as_f64().unwrap() - loss).abs() < 1e-5,
        "{v} vs {loss}"
    );
    let e = fails(&["score", "--model-file", &model, "--data", data]);
    assert!(e.contains("--target y.npy"), "{e}");
}

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
        let s = npz::read(&fixture(name), &fixture("y.npy")).unwrap();
        assert_eq!((s.rows(), s.features()), (6, 9), "{name}");
        // Row 2 lists column 5 twice: summed into one entry, so 11 of the 12 remain.
        assert_eq!(s.nnz(), 11, "{name}");
        assert_eq!(s.row(2).indices, &[1, 5, 6], "{name}: in column order");
        assert_eq!(dense(&s), twin, "{name}");
        assert_eq!(s.y(), &[0.0, 1.0, 1.0, 0.0, 1.0, 0.0], "{name}");
        assert!(s.values().is_some(), "{name}");
    }
    let binary = npz::read(&fixture("binary.npz"), &fixture("y.npy")).unwrap();
    assert!(binary.values().is_none(), "all-ones values are not kept");
    assert_eq!(
        dense(&binary)[2],
        vec![0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    );
}

#[test]
fn mistakes_are_named_with_the_file() {
    let y = fixture("y.npy");
    let e = npz::read(&fixture("csc.npz"), &y).unwrap_err().to_string();
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
    let e = npz::read(&fixture("csr_f4_i4.npz"), &fixture("dense.npy"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("dense.npy") && e.contains("do not match"), "{e}");
    let e = npz::read(&fixture("csr_f4_i4.npz"), &fixture("absent.npy"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent.npy"), "{e}");
    // A zip that is no scipy matrix.
    let e = npz::read(&fixture("y.npy"), &y).unwrap_err().to_string();
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

//! Hashed categorical CSV columns: the columns scikit-learn's FeatureHasher gives the same
//! tokens (tests/fixtures/sparse/make_hashed.py wrote them beside the CSV), MurmurHash3
//! against scikit-learn's murmurhash3_32, files of many parts and quoted line breaks,
//! every mistake named; and fit, predict and score with a model that keeps its hashing.

mod common;

use std::path::{Path, PathBuf};

use common::cli::{downhill, fails, report, scratch, write};
use downhill::input::Target;
use downhill::input::hashed::{self, HashedColumns};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sparse")
        .join(name)
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("hashed.json")).unwrap()).unwrap()
}

fn spec(bits: u32) -> HashedColumns {
    HashedColumns {
        target: Target::Column("clicked".into()),
        weights: None,
        hashed: vec!["city".into(), "device".into()],
        bits,
        numeric: None,
    }
}

/// Row i's (column, value) pairs.
fn pairs(s: &downhill::SparseDataset, i: usize) -> Vec<(usize, f64)> {
    s.row(i).entries().map(|(j, v)| (j, f64::from(v))).collect()
}

#[test]
fn columns_are_feature_hashers() {
    let expected = expected();
    for bits in [1u32, 4, 20] {
        let s = hashed::read(&fixture("hashed.csv"), &spec(bits)).unwrap();
        assert_eq!(s.features(), 1 + (1 << bits), "age, then 2^{bits}");
        let rows = expected["rows"][bits.to_string()].as_array().unwrap();
        assert_eq!(s.rows(), rows.len());
        for (i, row) in rows.iter().enumerate() {
            let want: Vec<(usize, f64)> = row
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_u64().unwrap() as usize, p[1].as_f64().unwrap()))
                .collect();
            assert_eq!(pairs(&s, i), want, "B = {bits}, row {i}");
        }
        let labels: Vec<f32> = expected["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(s.y(), labels.as_slice());
        let h = s.hashing().unwrap();
        assert_eq!((h.bits, h.numeric.clone()), (bits, vec!["age".to_string()]));
    }
    for (token, h) in expected["murmur"].as_object().unwrap() {
        let ours = downhill::hashing::murmur3_x86_32(token.as_bytes(), 0) as i32;
        assert_eq!(i64::from(ours), h.as_i64().unwrap(), "{token}");
    }
}

#[test]
fn long_files_keep_their_rows_lines_and_quoted_breaks() {
    let dir = scratch("hashed-long");
    let mut text = String::from("x,cat,y\n");
    let rows = 400_000;
    for i in 0..rows {
        text.push_str(&format!("{},c{},{}\n", i % 5, i % 1000, i % 2));
    }
    // A quoted value holding a line break, past the first megabyte.
    text.push_str("1,\"two\nlines\",0\n");
    let path = write(&dir, "long.csv", &text);
    let s = hashed::read(Path::new(&path), &spec_for("y", "cat", 12)).unwrap();
    assert_eq!(s.rows(), rows + 1);
    let h = s.hashing().unwrap();
    let last = pairs(&s, rows);
    assert_eq!(
        last,
        vec![(0, 1.0), (h.feature_of("cat", b"two\nlines") as usize, 1.0)]
    );
    assert_eq!(
        pairs(&s, 7),
        vec![(0, 2.0), (h.feature_of("cat", b"c7") as usize, 1.0)]
    );
    text.push_str("x,c1,1\n");
    let path = write(&dir, "bad.csv", &text);
    let e = hashed::read(Path::new(&path), &spec_for("y", "cat", 12))
        .unwrap_err()
        .to_string();
    // The header, the rows, two lines of the quoted value, then the bad line.
    let line = rows + 4;
    assert!(
        e.contains(&format!("bad.csv, line {line}, column 1 (x): not a number")),
        "{e}"
    );
}

fn spec_for(target: &str, hashed: &str, bits: u32) -> HashedColumns {
    HashedColumns {
        target: Target::Column(target.into()),
        weights: None,
        hashed: vec![hashed.into()],
        bits,
        numeric: None,
    }
}

#[test]
fn mistakes_are_named() {
    let csv = fixture("hashed.csv");
    let e = hashed::read(&csv, &spec_for("clicked", "town", 4))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no column named \"town\""), "{e}");
    // device left numeric: its cells are not numbers.
    let e = hashed::read(&csv, &spec_for("clicked", "city", 4))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("line 2, column 3 (device): not a number: \"mobile\""),
        "{e}"
    );
    let e = hashed::read(&csv, &spec_for("city", "city", 4))
        .unwrap_err()
        .to_string();
    assert!(e.contains("named twice"), "{e}");
    let e = hashed::read(&csv, &spec(31)).unwrap_err().to_string();
    assert!(e.contains("hash-bits") && e.contains("1 to 30"), "{e}");
}

#[test]
fn a_model_keeps_its_hashing_for_predict_and_score() {
    let dir = scratch("hashed-cli");
    let csv = fixture("hashed.csv");
    let csv = csv.to_str().unwrap();
    let model = dir.join("model.json").display().to_string();
    let v = report(&downhill(&[
        "fit",
        "--model",
        "logistic",
        "--data",
        csv,
        "--target",
        "clicked",
        "--hash-features",
        "city,device",
        "--hash-bits",
        "4",
        "--l2",
        "0.1",
        "--out",
        &model,
        "--json",
    ]));
    assert_eq!(v["features"], 17, "{v}");
    assert_eq!(v["backend"], "cpu", "{v}");
    let (saved, w, b) = common::cli::saved_model(&model);
    assert_eq!(
        saved["hashing"],
        serde_json::json!({"columns": ["city", "device"], "bits": 4, "numeric": ["age"]}),
        "{saved}"
    );
    assert_eq!(saved["target"], "clicked");
    // New rows, columns in another order and no label: hashed as the model was.
    let new = write(
        &dir,
        "new.csv",
        "device,age,city\nmobile,40,Paris\ndesktop,0,Nice\n",
    );
    let p = common::cli::probabilities(&downhill(&[
        "predict",
        "--model-file",
        &model,
        "--data",
        &new,
        "--proba",
    ]));
    let expected = expected();
    let column = |token: &str| -> usize {
        let h = expected["murmur"][token].as_i64().unwrap() as i32;
        1 + (h.unsigned_abs() % 16) as usize
    };
    let sigmoid = |z: f64| 1.0 / (1.0 + (-z).exp());
    let want = [
        sigmoid(40.0 * w[0] + w[column("device=mobile")] + w[column("city=Paris")] + b),
        sigmoid(w[column("device=desktop")] + w[column("city=Nice")] + b),
    ];
    common::assert_close("hashed predictions", &p, &want, 1e-6);
    let v = report(&downhill(&[
        "score",
        "--model-file",
        &model,
        "--data",
        csv,
        "--json",
    ]));
    assert_eq!(v["rows"], 6, "{v}");
    assert!(v["accuracy"].as_f64().unwrap() > 0.5, "{v}");
    let e = fails(&[
        "fit",
        "--model",
        "logistic",
        "--data",
        fixture("csr_f4_i4.npz").to_str().unwrap(),
        "--target",
        fixture("y.npy").to_str().unwrap(),
        "--hash-features",
        "city",
    ]);
    assert!(e.contains("hashes the columns of a CSV file"), "{e}");
}

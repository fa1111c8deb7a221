//! Entry points for fuzzing the readers: the cargo-fuzz targets in `fuzz/` call these, and
//! `tests/fuzz.rs` replays the corpus through them with stable Rust. Each takes arbitrary
//! bytes, must return without panicking, and checks that whatever it read holds together:
//! a dataset's X has rows × features finite values, a parameter file has the shape asked
//! for. A violated check panics, which is what a fuzzer reports.

use std::path::Path;

use crate::data::Dataset;
use crate::input::{self, Columns, Target};
use crate::model::Model;

fn check(dataset: &Dataset) {
    let (n, d) = (dataset.rows(), dataset.features());
    assert!(n > 0 && d > 0, "an empty dataset was accepted");
    assert_eq!(dataset.x().len(), n * d);
    assert_eq!(dataset.y().len(), n);
    assert_eq!(dataset.feature_names().len(), d);
    assert!(dataset.x().iter().chain(dataset.y()).all(|v| v.is_finite()));
    if let Some(w) = dataset.weights() {
        assert!(w.len() == n && w.iter().all(|v| v.is_finite() && *v >= 0.0));
    }
}

/// CSV bytes, read with the label column `y`, with `y` and weights `w`, and with no
/// label column at all.
pub fn csv(bytes: &[u8]) {
    let specs = [
        Columns::target("y"),
        Columns {
            weights: Some("w".into()),
            ..Columns::target("y")
        },
        Columns {
            target: Target::None,
            features: None,
            weights: None,
        },
    ];
    for spec in specs {
        if let Ok(dataset) = input::csv::read_from(bytes, "fuzzed.csv", &spec) {
            check(&dataset);
        }
    }
}

/// libsvm bytes, with the index base detected and forced each way, and with a width: what
/// it reads must be valid CSR (offsets rising to the entries, each row's columns in order
/// and below the width, finite values and labels).
pub fn libsvm(bytes: &[u8]) {
    use crate::input::libsvm::{IndexBase, LibsvmOptions, read_from};
    for (base, features) in [
        (IndexBase::Auto, None),
        (IndexBase::Zero, None),
        (IndexBase::One, Some(8)),
    ] {
        let options = LibsvmOptions { base, features };
        if let Ok(s) = read_from(bytes, "fuzzed.svm", &options) {
            check_sparse(&s, features);
        }
    }
}

/// Sparse rows that hold together: offsets rising to the entries, each row's columns in
/// order and below the width (`features`, when one was asked for), finite values and
/// labels.
fn check_sparse(s: &crate::SparseDataset, features: Option<usize>) {
    let (n, d) = (s.rows(), s.features());
    assert!(n > 0 && d > 0, "an empty sparse dataset was accepted");
    assert!(features.is_none_or(|f| f == d));
    assert_eq!((s.offsets().len(), s.offsets()[n]), (n + 1, s.nnz() as u64));
    for i in 0..n {
        let row = s.row(i);
        assert!(row.indices.windows(2).all(|p| p[0] < p[1]));
        assert!(row.indices.iter().all(|&j| (j as usize) < d));
    }
    assert!(s.values().unwrap_or(&[]).iter().all(|v| v.is_finite()));
    assert!(s.y().iter().all(|v| v.is_finite()));
}

/// `.npz` bytes as a scipy CSR matrix, with 1 to 8 labels (the corpus's matrices have 6
/// rows): what it reads must be valid CSR, as for [`libsvm`].
pub fn npz(bytes: &[u8]) {
    for rows in 1..=8 {
        if let Ok(s) = input::npz::read_from(bytes, "fuzzed.npz", vec![0.0; rows]) {
            check_sparse(&s, None);
        }
    }
}

/// `.npy` bytes as X, with the label in column 0 and with no labels.
pub fn npy(bytes: &[u8]) {
    for target in [Target::Index(0), Target::None] {
        let spec = Columns {
            target,
            features: None,
            weights: None,
        };
        if let Ok(dataset) = input::npy::read_from(bytes, "fuzzed.npy", &spec) {
            check(&dataset);
        }
    }
}

/// Parameter-file and model-file bytes, for every model and 1 to 3 features.
pub fn params(bytes: &[u8]) {
    // The file readers refuse text that is not UTF-8 before they parse it.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let path = Path::new("fuzzed.json");
    for model in Model::ALL {
        for features in 1..=3 {
            if let Ok(p) = crate::params_file::parse(text, path, model, features, None) {
                assert_eq!(p.features(), features);
                assert_eq!(p.weights().len(), features * p.outputs());
                assert!(p.is_finite());
            }
        }
    }
    if let Ok(saved) = crate::model_file::FittedModel::parse(text, path)
        && let Some(names) = &saved.features
    {
        assert_eq!(names.len(), saved.params.features());
    }
}

/// The rows [`checkpoint`] resumes on: `rows` × `features`, labels fit for `objective`.
fn checkpoint_rows(rows: usize, features: usize, objective: &crate::model::Objective) -> Dataset {
    let x: Vec<f32> = (0..rows * features)
        .map(|i| (i % 7) as f32 / 7.0 - 0.4)
        .collect();
    let y: Vec<f32> = (0..rows)
        .map(|i| match objective.model() {
            Model::Linear => i as f32 / rows as f32,
            Model::Logistic => (i % 2) as f32,
            Model::Softmax => (i % objective.outputs()) as f32,
        })
        .collect();
    Dataset::new(x, y, features).expect("finite rows of the stated shape")
}

/// The options of the fits [`checkpoint_seeds`] checkpoints, and [`checkpoint`] resumes.
fn checkpoint_trainer(epochs: u64, adam: bool) -> crate::train::Trainer {
    let t = crate::train::Trainer::new()
        .epochs(epochs)
        .batch_size(4)
        .log_every(2);
    if adam {
        t.optimizer(crate::train::OptimizerKind::Adam)
    } else {
        t
    }
}

/// Checkpoint bytes: parsed and validated; when small enough, resumed on the f64
/// reference with the options [`checkpoint_seeds`] wrote them with, for two epochs more
/// than the fit that wrote them.
pub fn checkpoint(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let path = Path::new("fuzzed-checkpoint.json");
    let Ok(ck) = crate::checkpoint::Checkpoint::parse(&text, path) else {
        return;
    };
    let n = (ck.features + 1) * ck.outputs;
    assert_eq!(
        ck.snapshot.theta.len(),
        n,
        "a checkpoint of the wrong θ was accepted"
    );
    assert!(ck.log.first().is_some_and(|e| e.epoch == 0));
    let Some(epochs) = ck.epochs() else {
        panic!("a checkpoint without epochs was accepted");
    };
    let loss = ck.loss_fn.parse().ok();
    let small = ck.rows.saturating_mul(ck.features) <= 4096 && ck.outputs <= 8 && epochs <= 40;
    let Ok(objective) = crate::model::Objective::new(ck.model, loss, ck.outputs) else {
        return;
    };
    if !small {
        return;
    }
    let data = checkpoint_rows(ck.rows, ck.features, &objective);
    // Two epochs past the checkpoint's fit: resuming to train longer.
    for adam in [false, true] {
        let trainer = checkpoint_trainer(epochs + 2, adam).resume(ck.clone());
        let backend = crate::backend::reference::Reference;
        if let Ok(fit) = crate::train::fit(&backend, &data, objective, &trainer) {
            assert_eq!(fit.epochs, epochs + 2);
            assert!(fit.params.is_finite() || fit.loss.is_nan());
        }
    }
}

/// Checkpoints of small fits (every model, SGD and Adam, between epochs and mid-epoch):
/// the corpus of [`checkpoint`], written to `fuzz/corpus/checkpoint` by the ignored test
/// `tests/fuzz.rs::write_checkpoint_corpus`.
pub fn checkpoint_seeds() -> Vec<(String, Vec<u8>)> {
    let dir = std::env::temp_dir().join(format!("downhill-ck-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("the temporary directory is writable");
    let mut seeds = Vec::new();
    for (name, model, outputs) in [
        ("linear", Model::Linear, 1),
        ("logistic", Model::Logistic, 1),
        ("softmax", Model::Softmax, 3),
    ] {
        let objective =
            crate::model::Objective::new(model, None, outputs).expect("a built-in objective");
        let data = checkpoint_rows(10, 2, &objective);
        for adam in [false, true] {
            let path = dir.join(format!("{name}.json"));
            let trainer = checkpoint_trainer(6, adam).checkpoint(&path, 3);
            crate::train::fit(
                &crate::backend::reference::Reference,
                &data,
                objective,
                &trainer,
            )
            .expect("a small fit");
            let optimizer = if adam { "adam" } else { "sgd" };
            seeds.push((
                format!("{name}_{optimizer}.json"),
                std::fs::read(&path).expect("the checkpoint was written"),
            ));
        }
    }
    let _ = std::fs::remove_dir_all(dir);
    seeds
}

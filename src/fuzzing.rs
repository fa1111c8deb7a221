//! Entry points for fuzzing the readers: the cargo-fuzz targets in `fuzz/` call these, and
//! `tests/fuzz.rs` replays the corpus through them with stable Rust. Each takes arbitrary
//! bytes, must return without panicking, and checks that whatever it read holds together:
//! a dataset's X has rows × features finite values, a parameter file has the shape asked
//! for. A violated check panics, which is what a fuzzer reports.

use std::path::PathBuf;

use crate::data::Dataset;
use crate::input::{self, Columns, Target};
use crate::model::Model;

/// A scratch file for this thread: the readers take paths.
fn scratch(extension: &str, bytes: &[u8]) -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id());
    let name: String = thread.chars().filter(char::is_ascii_digit).collect();
    let path = std::env::temp_dir().join(format!(
        "downhill-fuzz-{}-{name}.{extension}",
        std::process::id()
    ));
    std::fs::write(&path, bytes).expect("the temporary directory is writable");
    path
}

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
    let path = scratch("csv", bytes);
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
        if let Ok(dataset) = input::read(&path, &spec) {
            check(&dataset);
        }
    }
    let _ = std::fs::remove_file(path);
}

/// `.npy` bytes as X, with the label in column 0 and with no labels.
pub fn npy(bytes: &[u8]) {
    let path = scratch("npy", bytes);
    for target in [Target::Index(0), Target::None] {
        let spec = Columns {
            target,
            features: None,
            weights: None,
        };
        if let Ok(dataset) = input::read(&path, &spec) {
            check(&dataset);
        }
    }
    let _ = std::fs::remove_file(path);
}

/// Parameter-file and model-file bytes, for every model and 1 to 3 features.
pub fn params(bytes: &[u8]) {
    let path = scratch("json", bytes);
    for model in Model::ALL {
        for features in 1..=3 {
            if let Ok(p) = crate::params_file::read(&path, model, features, None) {
                assert_eq!(p.features(), features);
                assert_eq!(p.weights().len(), features * p.outputs());
                assert!(p.is_finite());
            }
        }
    }
    if let Ok(saved) = crate::model_file::SavedModel::load(&path)
        && let Some(names) = &saved.features
    {
        assert_eq!(names.len(), saved.params.features());
    }
    let _ = std::fs::remove_file(path);
}

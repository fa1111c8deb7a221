//! Running the `downhill` binary from tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn downhill(args: &[&str]) -> Output {
    downhill_with(args, &[])
}

/// [`downhill`] with these environment variables set.
pub fn downhill_with(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_downhill"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .envs(vars.iter().copied())
        .output()
        .expect("run downhill")
}

/// The JSON report (`--json`) of a command that must have succeeded; its stderr otherwise.
pub fn report(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

/// Runs a command expected to succeed: its JSON report.
pub fn json(args: &[&str]) -> Value {
    report(&downhill(args))
}

/// A scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("downhill-cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Runs a command expected to fail; returns its stderr, asserting exit code 1 and no panic.
pub fn fails(args: &[&str]) -> String {
    let out = downhill(args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?} printed a result");
    stderr
}

/// `fit --model MODEL --data DATA EXTRA…`, expected to fail: its stderr.
pub fn fit_fails(model: &str, data: &str, extra: &[&str]) -> String {
    let mut args = vec!["fit", "--model", model, "--data", data];
    args.extend_from_slice(extra);
    fails(&args)
}

/// A report's weights as one list: W's rows one after another (one output: W itself).
pub fn flat_weights(report: &Value) -> Vec<f64> {
    report["weights"]
        .as_array()
        .expect("weights")
        .iter()
        .flat_map(|w| w.as_array().cloned().unwrap_or_else(|| vec![w.clone()]))
        .map(|w| w.as_f64().expect("a number"))
        .collect()
}

/// A model file's JSON, its weights (one output) and its bias.
pub fn saved_model(path: &str) -> (Value, Vec<f64>, f64) {
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let w = saved["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let b = saved["bias"].as_f64().unwrap();
    (saved, w, b)
}

/// `predict --proba`'s probabilities (the second CSV column) of a command that must have
/// succeeded.
pub fn probabilities(out: &Output) -> Vec<f64> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect()
}

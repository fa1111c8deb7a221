//! Across processes with MPI (`cargo test --release --features mpi --test mpi`, Open MPI
//! installed): `mpirun -np 2` and `-np 3` on loopback give the result of one process, on
//! the CPU and on the GPU, for synthetic rows and for a data file, descending or with
//! every solver (whose Hessian and Hessian-vector sums cross the processes too).
#![cfg(feature = "mpi")]

mod common;

use std::process::Command;

use serde_json::Value;

use common::cli::flat_weights;

fn run(np: Option<usize>, args: &[&str]) -> Value {
    let binary = env!("CARGO_BIN_EXE_downhill");
    let mut command = match np {
        Some(np) => {
            let mut c = Command::new("mpirun");
            c.args(["--oversubscribe", "-np", &np.to_string(), binary]);
            c
        }
        None => Command::new(binary),
    };
    let out = command
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        // CI runs as root; Open MPI refuses that unless told it is deliberate.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .output()
        .expect("mpirun (Open MPI) is installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{np:?} {args:?}: {stderr}");
    // Rank 0 alone prints the report.
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{np:?}: one JSON object expected ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn numbers(v: &Value) -> Vec<f64> {
    let mut all: Vec<f64> = serde_json::from_value(v["weights"].clone()).unwrap();
    all.push(v["bias"].as_f64().unwrap());
    all.push(v["loss"].as_f64().unwrap());
    all
}

fn assert_same(label: &str, one: &Value, many: &Value) {
    for (i, (a, b)) in numbers(one).iter().zip(numbers(many)).enumerate() {
        let relative = (a - b).abs() / a.abs().max(1e-3);
        assert!(
            relative < 1e-5,
            "{label}: entry {i}: {a} vs {b} ({relative:e} relative)"
        );
    }
    assert_eq!(one["history_epochs"], many["history_epochs"], "{label}");
    assert_eq!(one["held_out_rows"], many["held_out_rows"], "{label}");
}

#[test]
fn ranks_together_give_one_process_result() {
    let mut backends = vec!["cpu"];
    if common::gpu().is_some() {
        backends.push("gpu");
    }
    for backend in backends {
        let job = format!(
            "fit --model logistic --rows 30000 --features 8 --epochs 20 --batch-size 2000 \
             --optimizer adam --lr 0.01 --standardize --validation-fraction 0.1 \
             --backend {backend} --json"
        );
        let args: Vec<&str> = job.split(' ').collect();
        let one = run(None, &args);
        for np in [2, 3] {
            let many = run(Some(np), &args);
            assert!(
                many["device"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("in each of {np} processes")),
                "{}",
                many["device"]
            );
            assert_same(&format!("{backend}, {np} ranks"), &one, &many);
        }
    }
}

#[test]
fn ranks_share_the_rows_of_a_file() {
    let csv = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/formats/data.csv"
    );
    let dir = common::cli::scratch("mpi-file");
    let model = dir.join("model.json");
    let job = format!(
        "fit --model logistic --data {csv} --target outcome --epochs 50 --lr 0.1 \
         --standardize --backend cpu --json"
    );
    let args: Vec<&str> = job.split(' ').collect();
    let one = run(None, &args);
    let mut with_out = args.clone();
    let out = model.display().to_string();
    with_out.extend(["--out", &out]);
    let many = run(Some(3), &with_out);
    assert_same("data.csv, 3 ranks", &one, &many);
    // Rank 0 wrote the model file, with the fitted parameters.
    let saved = downhill::SavedModel::load(&model).unwrap();
    assert_eq!(saved.features.unwrap(), ["age", "dose", "score"]);
    let w: Vec<f64> = serde_json::from_value(many["weights"].clone()).unwrap();
    assert_eq!(saved.params.weights(), &w[..]);
}

/// The solvers across ranks: the gradient, Hessian and Hessian-vector sums added over the
/// processes give one process's optimum within 1e-6, by the same solver.
#[test]
fn ranks_together_reach_one_process_optimum_with_every_solver() {
    for (model, solver) in [
        ("softmax --classes 3", "newton"),
        ("softmax --classes 3", "newton-cg"),
        ("logistic", "newton-cg"),
        ("softmax --classes 3", "lbfgs"),
    ] {
        let job = format!(
            "fit --model {model} --rows 20000 --features 6 --l2 0.001 \
             --solver {solver} --backend cpu --json"
        );
        let args: Vec<&str> = job.split_whitespace().collect();
        let one = run(None, &args);
        let many = run(Some(2), &args);
        assert_eq!(one["solver"], solver);
        assert_eq!(many["solver"], solver);
        assert_eq!(many["converged"], true, "{solver}: {}", many["stop_detail"]);
        let (a, b) = (
            one["objective"].as_f64().unwrap(),
            many["objective"].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() <= 1e-6 * a.abs(),
            "{solver}: objective {a} vs {b}"
        );
        for (x, y) in flat_weights(&one).iter().zip(flat_weights(&many)) {
            assert!(
                (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                "{solver}: {x} vs {y}"
            );
        }
    }
}

//! The Rust side of `python/bench/parity.py`: the same logistic fit the Python package
//! runs, from Rust, on the same rows. Reads X (`x.npy`, float32 n×d) and y (`y.npy`) into
//! memory (every page touched before the clock starts), then fits `repeats` times with
//! Newton on the CPU at scikit-learn's C = 1 (λ₂ = 1 / n) and prints each fit's seconds,
//! one a line.
//!
//! `cargo run --release --example parity -- DIR REPEATS`

use std::sync::Arc;

use downhill::backend::cpu::Cpu;
use downhill::floats::Floats;
use downhill::input::{Columns, Target};
use downhill::train::Solver;
use downhill::{Dataset, Objective, Trainer};

fn main() -> downhill::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (dir, repeats) = match &args[..] {
        [_, dir, repeats] => (std::path::PathBuf::from(dir), repeats.parse().unwrap_or(3)),
        _ => {
            eprintln!("usage: parity DIR REPEATS (DIR holds x.npy and y.npy)");
            std::process::exit(2);
        }
    };
    let columns = Columns {
        target: Target::File(dir.join("y.npy")),
        features: None,
        weights: None,
    };
    let mapped = Dataset::read(dir.join("x.npy"), &columns)?;
    // Into memory, as NumPy holds it on the Python side.
    let x: Arc<[f32]> = mapped.x().into();
    let (y, features) = (mapped.y().to_vec(), mapped.features());
    let trainer = Trainer::new()
        .solver(Solver::Newton)
        .l2(1.0 / y.len() as f64);
    for _ in 0..repeats {
        let labels = y.clone();
        let start = std::time::Instant::now();
        let data = Dataset::from_floats(Floats::shared(x.clone()), labels, features)?;
        let fit = downhill::fit(&Cpu::default(), &data, Objective::logistic(), &trainer)?;
        let seconds = start.elapsed().as_secs_f64();
        assert!(fit.solved.is_some_and(|s| s.converged));
        println!("{seconds}");
    }
    Ok(())
}

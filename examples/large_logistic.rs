//! A large synthetic logistic regression on the GPU: the rows are generated from the
//! seed, trained full-batch, and compared with the true parameters they were drawn from.
//!
//! cargo run --release --example large_logistic -- [ROWS] [FEATURES] [EPOCHS]

use std::time::Instant;

use downhill::backend::Data;
use downhill::gpu::Gpu;
use downhill::{Objective, Synthetic, Trainer};

fn main() -> downhill::Result<()> {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (rows, features, epochs) = (arg(1, 1_000_000), arg(2, 32), arg(3, 50));
    let problem = Synthetic::new(rows, features, Objective::logistic(), 42)?;
    let gpu = Gpu::open()?;
    println!(
        "{rows} rows × {features} features on {}",
        gpu.context().describe()
    );

    let start = Instant::now();
    let mut session = gpu.session(Data::Synthetic(problem), Objective::logistic())?;
    println!(
        "generated and uploaded in {:.2} s",
        start.elapsed().as_secs_f64()
    );
    let fit = Trainer::new()
        .lr(1.0)
        .epochs(epochs as u64)
        .log_every(10)
        .fit(&mut session)?;
    for (epoch, loss) in fit.history_epochs.iter().zip(&fit.history) {
        println!("epoch {epoch:4}: loss {loss:.6}");
    }
    let truth = problem.true_params();
    println!(
        "{epochs} epochs in {:.2} s ({:.1} ms per epoch); distance to the true parameters {:.4} ({:.2}% of their norm)",
        fit.train_seconds,
        1e3 * fit.train_seconds / epochs as f64,
        fit.params.distance(&truth),
        100.0 * fit.params.distance(&truth) / truth.norm()
    );
    Ok(())
}

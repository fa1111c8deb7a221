//! Times the GPU's softmax gradient where its classes are split, with the tiled products
//! of `shaders/products.wgsl` and without them (one pass over X per class tile), under
//! both kernel tunings, on the same rows in the same run; prints each pass's seconds and
//! their ratio.
//!
//! `cargo run --release --example tiled_products -- 1000x2048x1000 2000x512x33`

use std::time::Instant;

use downhill::backend::{Data, Session};
use downhill::gpu::kernels::Tuning;
use downhill::gpu::{Gpu, GpuContext, GpuOptions};
use downhill::synth::Synthetic;
use downhill::{Objective, Result};

/// Full-batch gradient passes timed per shape and way; their median is printed.
const REPS: usize = 3;

fn main() -> Result<()> {
    let shapes: Vec<String> = std::env::args().skip(1).collect();
    let shapes = match shapes.is_empty() {
        true => vec!["2000x512x33".to_string(), "1000x2048x1000".to_string()],
        false => shapes,
    };
    let gpu = Gpu::new(GpuContext::open()?);
    println!(
        "{:>16} {:>6} {:>10} {:>10} {:>8}",
        "shape", "tuning", "untiled s", "tiled s", "ratio"
    );
    for shape in shapes {
        let sizes: Vec<usize> = shape.split('x').filter_map(|v| v.parse().ok()).collect();
        let [rows, d, k] = sizes[..] else {
            eprintln!("{shape}: expected ROWSxFEATURESxCLASSES");
            std::process::exit(2);
        };
        let objective = Objective::softmax(k)?;
        let data = Synthetic::new(rows, d, objective, 1)?.generate()?;
        for (name, base) in [("gpu", Tuning::GPU), ("cpu", Tuning::CPU)] {
            let mut seconds = [0.0; 2];
            let mut split = false;
            for (way, products_from) in [u32::MAX, 0].into_iter().enumerate() {
                let tuning = Tuning {
                    products_from,
                    ..base
                };
                let options = GpuOptions {
                    tuning: Some(tuning),
                    ..gpu.options()
                };
                let gpu = gpu.with_options(options);
                let mut session = gpu.session(Data::Host(&data), objective)?;
                split = session.constants().splits_classes();
                session.gradient()?;
                let mut times: Vec<f64> = (0..REPS)
                    .map(|_| {
                        let start = Instant::now();
                        session.gradient().map(|_| start.elapsed().as_secs_f64())
                    })
                    .collect::<Result<_>>()?;
                times.sort_by(f64::total_cmp);
                seconds[way] = times[REPS / 2];
            }
            let [untiled, tiled] = seconds;
            // Classes that fit one class tile take the fused pass either way.
            let note = if split {
                ""
            } else {
                "  (one class tile: fused)"
            };
            println!(
                "{shape:>16} {name:>6} {untiled:>10.3} {tiled:>10.3} {:>8.2}{note}",
                untiled / tiled
            );
        }
    }
    Ok(())
}

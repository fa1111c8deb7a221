//! `downhill bench` and `downhill devices`.

use clap::Args;

use downhill::Error;

use super::args::parse_dims;
use super::optimum::OptimumArgs;
use super::out;

#[derive(Args)]
pub struct BenchArgs {
    /// Problem shapes, ROWSxFEATURES (logistic) or ROWSxFEATURESxCLASSES (softmax), comma
    /// separated.
    #[arg(long, default_value = "2000000x64,200000x512", value_delimiter = ',', value_parser = parse_shape)]
    shapes: Vec<(usize, usize, usize)>,
    /// Mini-batch sizes (on the first shape).
    #[arg(long, default_value = "1024,65536", value_delimiter = ',')]
    batch_sizes: Vec<usize>,
    /// Timed full-batch epochs per backend and shape (mini-batch: a third of them).
    #[arg(long, default_value_t = 9)]
    reps: usize,
    /// Backends to measure: cpu, gpu (any adapter wgpu selects, software ones included).
    /// Default: cpu,gpu; cpu with --to-optimum.
    #[arg(long, value_delimiter = ',')]
    backends: Option<Vec<String>>,
    /// Skip the numpy baseline (otherwise run with DOWNHILL_PYTHON or python3, if it has numpy).
    #[arg(long)]
    no_numpy: bool,
    /// Print the measurements as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    optimum: OptimumArgs,
}

fn parse_shape(s: &str) -> Result<(usize, usize, usize), String> {
    let (rows, features, classes) = parse_dims(s)?;
    Ok((rows, features, classes.unwrap_or(1)))
}

pub fn devices() -> Result<(), Error> {
    let adapters = downhill::gpu::adapters();
    if adapters.is_empty() {
        out::line(
            "no GPU adapters found (on Debian, apt-get install mesa-vulkan-drivers libvulkan1 \
             gives a software one)",
        )?;
    }
    for (i, a) in adapters.iter().enumerate() {
        out::line(format_args!("[{i}] {a}"))?;
    }
    Ok(())
}

pub fn bench(args: BenchArgs) -> Result<(), Error> {
    use downhill::bench::{self, BenchOptions, Measurement};
    let default = if args.optimum.to_optimum {
        "cpu"
    } else {
        "cpu,gpu"
    };
    let backends = args
        .backends
        .clone()
        .unwrap_or_else(|| default.split(',').map(String::from).collect());
    for b in &backends {
        if b != "cpu" && b != "gpu" {
            return Err(Error::option("backend", b, "bench measures cpu and gpu"));
        }
    }
    if args.optimum.to_optimum {
        return super::optimum::run(&args.optimum, &backends, args.json);
    }
    if args.reps == 0 {
        return Err(Error::option("reps", 0, "must be at least 1"));
    }
    let gpu = if backends.iter().any(|b| b == "gpu") {
        match downhill::gpu::Gpu::open() {
            Ok(gpu) => Some(gpu),
            Err(e) => {
                out::warn(format_args!("no GPU measurements: {e}"));
                None
            }
        }
    } else {
        None
    };
    let python = if args.no_numpy {
        None
    } else {
        bench::find_python("numpy")
    };
    if !args.no_numpy && python.is_none() {
        out::warn("no numpy baseline: set DOWNHILL_PYTHON to a Python with numpy");
    }
    let options = BenchOptions {
        shapes: args.shapes.clone(),
        batch_sizes: args.batch_sizes.clone(),
        reps: args.reps,
        cpu: backends.iter().any(|b| b == "cpu"),
        gpu,
        python,
    };
    let mut seen = Vec::new();
    let all = bench::run(&options, &mut |m: &Measurement| {
        out::warn(bench_line(m, &seen));
        seen.push(m.clone());
    })?;
    if args.json {
        out::line(serde_json::to_string_pretty(&all).expect("numbers"))?;
    } else {
        out::line(format_args!(
            "{:<7} {:>19} {:>9} {:>11} {:>8} {:>8} {:>11} {:>9} {:>9}",
            "backend", "shape", "mode", "s/epoch", "GB/s", "GFLOP/s", "floor s", "/floor", "/numpy"
        ))?;
        for m in &all {
            out::line(bench_line(m, &all))?;
        }
        // Each backend's device once, in the order they were measured.
        let mut devices: Vec<String> = Vec::new();
        for m in &all {
            let line = format!("{}: {}", m.backend, m.device);
            if !devices.contains(&line) {
                devices.push(line);
            }
        }
        for d in devices {
            out::line(format_args!("  {d}"))?;
        }
        out::line(
            "  medians of the timed epochs; the floor is one streaming read of X on the same device (GB/s counts X and y); \
             GFLOP/s counts softmax's two products, 4·n·d·k",
        )?;
        peak_line(&all)?;
    }
    Ok(())
}

/// Where the CPU (or numpy on it) timed a softmax epoch: the CPU's FMA peak, measured now,
/// and each such epoch's rate as a share of it (the compute-bound floor).
fn peak_line(all: &[downhill::bench::Measurement]) -> Result<(), Error> {
    let on_cpu: Vec<_> = all
        .iter()
        .filter(|m| m.classes > 1 && m.mode == "full" && m.backend != "gpu")
        .collect();
    if on_cpu.is_empty() {
        return Ok(());
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (peak, simd) = downhill::bench::peak::fma_peak(threads);
    let shares: Vec<String> = on_cpu
        .iter()
        .map(|m| {
            let shape = format!("{}x{}x{}", m.rows, m.features, m.classes);
            format!(
                "{} {shape} {:.0} %",
                m.backend,
                100.0 * m.gigaflops() / peak
            )
        })
        .collect();
    out::line(format_args!(
        "  the CPU's FMA peak: {peak:.0} GFLOP/s ({threads} threads × {}, independent FMAs); \
         softmax epochs at {}",
        simd.name(),
        shares.join(", ")
    ))
}

/// One table line; the numpy ratio uses numpy's line for the shape when it came earlier.
fn bench_line(
    m: &downhill::bench::Measurement,
    earlier: &[downhill::bench::Measurement],
) -> String {
    let numpy = earlier
        .iter()
        .chain(std::iter::once(m))
        .find(|o| {
            o.backend == "numpy"
                && (o.rows, o.features, o.classes) == (m.rows, m.features, m.classes)
        })
        .map(|o| o.epoch());
    let floor = m.floor();
    let shape = if m.classes == 1 {
        format!("{}x{}", m.rows, m.features)
    } else {
        format!("{}x{}x{}", m.rows, m.features, m.classes)
    };
    format!(
        "{:<7} {:>19} {:>9} {:>11.4} {:>8.2} {:>8} {:>11} {:>9} {:>9}",
        m.backend,
        shape,
        m.mode,
        m.epoch(),
        m.gigabytes_per_second(),
        if m.classes > 1 && m.mode == "full" {
            format!("{:.1}", m.gigaflops())
        } else {
            "-".into()
        },
        floor.map_or("-".into(), |f| format!("{f:.4}")),
        floor.map_or("-".into(), |f| format!("{:.2}", m.epoch() / f)),
        match numpy {
            Some(n) if m.backend != "numpy" && m.mode == "full" => format!("{:.2}", m.epoch() / n),
            _ => "-".into(),
        },
    )
}

//! Choosing a backend: `--backend` and `--devices`, and the fallbacks of `auto` when a GPU
//! runs out of memory loading the rows. Above the backends: it names each of them.

#[cfg(feature = "gpu")]
use crate::backend::gpu::{Gpu, GpuContext};
use crate::backend::options::GpuOptions;
use crate::backend::{Backend, Data, Session, cpu, parallel, reference};
use crate::error::Result;
use crate::model::Objective;

/// Which backend to use, as `--backend` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// A hardware GPU when there is one, else the CPU.
    Auto,
    /// The adapter wgpu's environment selects, software ones included; an error when
    /// there is none.
    Gpu,
    /// The CPU.
    Cpu,
    /// The f64 reference (the test oracle).
    Reference,
}

impl std::str::FromStr for BackendKind {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(BackendKind::Auto),
            "gpu" => Ok(BackendKind::Gpu),
            "cpu" => Ok(BackendKind::Cpu),
            "reference" => Ok(BackendKind::Reference),
            _ => Err(crate::error::Error::option(
                "backend",
                s,
                "expected auto, gpu, cpu or reference",
            )),
        }
    }
}

/// A backend and a sentence saying why it was chosen.
pub struct Selected {
    pub backend: Box<dyn Backend>,
    pub reason: String,
    /// The GPU `auto` chose: what an out-of-memory may fall back from.
    #[cfg(feature = "gpu")]
    auto_gpu: Option<Gpu>,
    /// Where to go when the backend runs out of memory loading the rows, in order, with
    /// what to say.
    fallbacks: Vec<(Box<dyn Backend>, String)>,
}

impl Selected {
    /// The GPU as `auto` would take it: an out-of-memory while loading rows falls back
    /// (see [`Selected::with_fallbacks`]).
    #[cfg(feature = "gpu")]
    pub fn auto_gpu(gpu: Gpu) -> Self {
        let reason = format!("gpu: {} (auto)", gpu.context().describe());
        Selected {
            backend: Box::new(gpu.clone()),
            reason,
            auto_gpu: Some(gpu),
            fallbacks: Vec::new(),
        }
    }

    pub fn plain(backend: Box<dyn Backend>, reason: impl Into<String>) -> Self {
        Selected {
            backend,
            reason: reason.into(),
            #[cfg(feature = "gpu")]
            auto_gpu: None,
            fallbacks: Vec::new(),
        }
    }

    /// When `auto` chose a GPU: if loading `data` runs out of device memory, stream the
    /// rows through a quarter of their bytes instead, and if that fails too, use the CPU.
    #[cfg(not(feature = "gpu"))]
    pub fn with_fallbacks(self, _: &Data<'_>) -> Self {
        self
    }

    /// When `auto` chose a GPU: if loading `data` runs out of device memory, stream the
    /// rows through a quarter of their bytes instead, and if that fails too, use the CPU.
    #[cfg(feature = "gpu")]
    pub fn with_fallbacks(mut self, data: &Data<'_>) -> Self {
        let Some(gpu) = &self.auto_gpu else {
            return self;
        };
        let row_bytes = 4 * (data.features() as u64 + 2);
        let budget = (data.rows() as u64 * row_bytes / 4).max(row_bytes * 1024);
        let streamed = gpu.with_options(GpuOptions {
            max_device_bytes: Some(budget),
            ..gpu.options()
        });
        self.fallbacks = vec![
            (
                Box::new(streamed),
                format!(
                    "streaming the rows through {} MiB of it instead",
                    budget >> 20
                ),
            ),
            (
                Box::new(cpu::Cpu::default()),
                "using the CPU instead".into(),
            ),
        ];
        self
    }

    /// Opens a session on the backend, or on the fallbacks in turn when it runs out of
    /// device memory; the notices say what happened.
    pub fn open<'s>(
        &'s self,
        data: Data<'s>,
        objective: Objective,
    ) -> Result<(Box<dyn Session + 's>, Vec<String>)> {
        let mut notices = Vec::new();
        let mut failure = match self.backend.open(data.clone(), objective) {
            Ok(session) => return Ok((session, notices)),
            Err(e) if e.is_out_of_memory() && !self.fallbacks.is_empty() => e,
            Err(e) => return Err(e),
        };
        for (backend, what) in &self.fallbacks {
            notices.push(format!("{failure}; {what}"));
            failure = match backend.open(data.clone(), objective) {
                Ok(session) => return Ok((session, notices)),
                Err(e) if e.is_out_of_memory() => e,
                Err(e) => return Err(e),
            };
        }
        Err(failure)
    }
}

/// This process's index among the processes of an MPI launch on its node (Open MPI, MPICH,
/// Slurm); 0 without a launcher.
fn local_rank() -> usize {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "MPI_LOCALRANKID",
        "SLURM_LOCALID",
    ]
    .iter()
    .find_map(|v| std::env::var(v).ok()?.parse().ok())
    .unwrap_or(0)
}

/// The workers `--devices` names, comma separated: `all` (every adapter), adapter indices
/// as `downhill devices` lists them (an index may repeat: each opens a device of its own),
/// `local-rank` (the adapter whose index is this process's rank on its node) and `cpu`.
/// The rows are split evenly across them.
pub fn select_devices(spec: &str, gpu: GpuOptions) -> Result<Selected> {
    cpu::Simd::from_env()?;
    let mut workers: Vec<Box<dyn Backend>> = Vec::new();
    let mut names = Vec::new();
    for token in spec.split(',').map(str::trim) {
        let indices: Vec<usize> = match token {
            "cpu" => {
                workers.push(Box::new(cpu::Cpu::default()));
                names.push("cpu".to_string());
                continue;
            }
            "all" => (0..adapter_count()).collect(),
            // One GPU per process on a node: the launcher's local rank picks the adapter.
            "local-rank" => vec![local_rank()],
            number => vec![number.parse().map_err(|_| {
                crate::error::Error::option(
                    "devices",
                    spec,
                    format!("{token:?} is not all, local-rank, cpu or an adapter index"),
                )
            })?],
        };
        if indices.is_empty() {
            return Err(crate::error::Error::NoAdapter {
                reason: "--devices all: wgpu found no adapter".into(),
            });
        }
        for i in indices {
            let (name, worker) = open_adapter(i, gpu)?;
            names.push(name);
            workers.push(worker);
        }
    }
    if workers.is_empty() {
        return Err(crate::error::Error::option(
            "devices",
            spec,
            "names no device",
        ));
    }
    Ok(Selected::plain(
        Box::new(parallel::Parallel::new(workers)),
        format!("parallel over {}", names.join(", ")),
    ))
}

/// Opens the backend `kind` names. `Auto` takes a hardware GPU when wgpu finds one (or
/// the adapter WGPU_ADAPTER_NAME names), else the CPU.
///
/// `gpu` shapes a GPU backend's sessions (most bytes of rows held on the device, shard
/// size, kernel tuning, the loop limit planned for); `GpuOptions::default()` (what
/// `Default::default()` gives) uses everything the adapter allows. CPU and reference
/// backends ignore it.
pub fn select(kind: BackendKind, gpu: GpuOptions) -> Result<Selected> {
    // Any choice may end on the CPU (auto, or a fallback): a bad level is refused first.
    cpu::Simd::from_env()?;
    match kind {
        BackendKind::Gpu => open_gpu(gpu),
        BackendKind::Auto => auto(gpu),
        BackendKind::Cpu => Ok(Selected::plain(Box::new(cpu::Cpu::default()), "cpu")),
        BackendKind::Reference => Ok(Selected::plain(
            Box::new(reference::Reference),
            "reference (f64)",
        )),
    }
}

#[cfg(feature = "gpu")]
fn open_gpu(options: GpuOptions) -> Result<Selected> {
    let gpu = Gpu::open()?.with_options(options);
    let reason = format!("gpu: {}", gpu.context().describe());
    Ok(Selected::plain(Box::new(gpu), reason))
}

#[cfg(feature = "gpu")]
fn auto(options: GpuOptions) -> Result<Selected> {
    Ok(match GpuContext::open_hardware()? {
        Ok(ctx) => Selected::auto_gpu(Gpu::new(ctx).with_options(options)),
        Err(why) => Selected::plain(Box::new(cpu::Cpu::default()), format!("cpu (auto: {why})")),
    })
}

#[cfg(feature = "gpu")]
fn adapter_count() -> usize {
    GpuContext::count()
}

/// Adapter `i` as a worker, and its name.
#[cfg(feature = "gpu")]
fn open_adapter(i: usize, options: GpuOptions) -> Result<(String, Box<dyn Backend>)> {
    let ctx = GpuContext::open_nth(i)?;
    let name = format!("[{i}] {}", ctx.describe());
    Ok((name, Box::new(Gpu::new(ctx).with_options(options))))
}

/// Why a build without the GPU backend cannot open one.
#[cfg(not(feature = "gpu"))]
const NO_GPU: &str = "this build of downhill has no GPU backend (its `gpu` feature is off)";

#[cfg(not(feature = "gpu"))]
fn open_gpu(_: GpuOptions) -> Result<Selected> {
    Err(crate::error::Error::NoAdapter {
        reason: NO_GPU.into(),
    })
}

#[cfg(not(feature = "gpu"))]
fn auto(_: GpuOptions) -> Result<Selected> {
    Ok(Selected::plain(
        Box::new(cpu::Cpu::default()),
        format!("cpu (auto: {NO_GPU})"),
    ))
}

#[cfg(not(feature = "gpu"))]
fn adapter_count() -> usize {
    0
}

#[cfg(not(feature = "gpu"))]
fn open_adapter(_: usize, _: GpuOptions) -> Result<(String, Box<dyn Backend>)> {
    Err(crate::error::Error::NoAdapter {
        reason: NO_GPU.into(),
    })
}

//! The device: adapter choice, the device and its limits, what its sessions share, and
//! device errors turned into [`Error`]s.

use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};

/// What `downhill devices` prints about one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
}

impl fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (i, l) = (&self.info, &self.limits);
        writeln!(f, "{} ({:?}, {:?})", i.name, i.backend, i.device_type)?;
        if !i.driver.is_empty() || !i.driver_info.is_empty() {
            writeln!(f, "  driver: {} {}", i.driver, i.driver_info)?;
        }
        writeln!(
            f,
            "  max_storage_buffer_binding_size: {} ({} MiB)",
            l.max_storage_buffer_binding_size,
            l.max_storage_buffer_binding_size >> 20
        )?;
        writeln!(
            f,
            "  max_buffer_size: {} ({} MiB)",
            l.max_buffer_size,
            l.max_buffer_size >> 20
        )?;
        writeln!(
            f,
            "  max_compute_workgroups_per_dimension: {}",
            l.max_compute_workgroups_per_dimension
        )?;
        writeln!(
            f,
            "  max_compute_invocations_per_workgroup: {}",
            l.max_compute_invocations_per_workgroup
        )?;
        writeln!(
            f,
            "  max_compute_workgroup_storage_size: {}",
            l.max_compute_workgroup_storage_size
        )?;
        write!(
            f,
            "  max_storage_buffers_per_shader_stage: {}",
            l.max_storage_buffers_per_shader_stage
        )
    }
}

/// True for adapters that are real GPUs, not software renderers such as llvmpipe or WARP.
pub fn is_hardware(info: &wgpu::AdapterInfo) -> bool {
    matches!(
        info.device_type,
        wgpu::DeviceType::DiscreteGpu
            | wgpu::DeviceType::IntegratedGpu
            | wgpu::DeviceType::VirtualGpu
    )
}

fn instance() -> wgpu::Instance {
    // Honours WGPU_BACKEND (and wgpu's debug flags) from the environment.
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter wgpu can see, honouring WGPU_BACKEND.
pub fn adapters() -> Vec<AdapterSummary> {
    let instance = instance();
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .into_iter()
        .map(|a| AdapterSummary {
            info: a.get_info(),
            limits: a.limits(),
        })
        .collect()
}

/// Orders adapters best first: discrete, integrated, virtual, software, other;
/// WGPU_POWER_PREF=low puts integrated first.
fn rank(info: &wgpu::AdapterInfo) -> u8 {
    let low_power = wgpu::PowerPreference::from_env() == Some(wgpu::PowerPreference::LowPower);
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu if low_power => 1,
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu if low_power => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// The adapter to use: the first whose name contains WGPU_ADAPTER_NAME (case-insensitive)
/// when that is set, else the best ranked. `None` when there is no adapter at all.
fn choose_adapter() -> Result<Option<wgpu::Adapter>> {
    let instance = instance();
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    if let Ok(wanted) = std::env::var("WGPU_ADAPTER_NAME") {
        let names: Vec<String> = adapters.iter().map(|a| a.get_info().name).collect();
        let needle = wanted.to_lowercase();
        adapters.retain(|a| a.get_info().name.to_lowercase().contains(&needle));
        if adapters.is_empty() {
            return Err(Error::NoAdapter {
                reason: format!(
                    "WGPU_ADAPTER_NAME={wanted:?} matches none of the adapters: {}",
                    if names.is_empty() {
                        "(none)".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            });
        }
        return Ok(adapters.into_iter().next());
    }
    adapters.sort_by_key(|a| rank(&a.get_info()));
    Ok(adapters.into_iter().next())
}

/// An error the device raised outside an error scope, kept until the next check.
#[derive(Clone, Debug)]
enum Fault {
    Lost(String),
    OutOfMemory(String),
    Validation(String),
}

/// Faults a test can make a device show, to check that each becomes a clear error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InjectedFaults {
    /// Buffers larger than this many bytes fail as out of device memory.
    pub out_of_memory_above: Option<u64>,
}

/// An open device with the adapter's own limits, and the errors it has raised.
pub struct GpuContext {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    faults: Arc<Mutex<Vec<Fault>>>,
    injected: Mutex<InjectedFaults>,
    /// What is built once per device and shared by its sessions (the pipelines of each
    /// problem shape, so that sessions of the same shape build them once), of any type.
    shared: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
    /// [`GpuContext::loop_limit`], once measured.
    pub(super) loop_limit: OnceLock<Option<u32>>,
}

impl GpuContext {
    /// Opens the adapter wgpu's environment selects (WGPU_BACKEND, WGPU_ADAPTER_NAME,
    /// WGPU_POWER_PREF), software adapters included.
    pub fn open() -> Result<Self> {
        match choose_adapter()? {
            Some(adapter) => Self::from_adapter(&adapter),
            None => Err(Error::NoAdapter {
                reason: "wgpu found no Vulkan, Metal or DX12 adapter. On Debian, lavapipe \
                         provides a software one: apt-get install mesa-vulkan-drivers libvulkan1"
                    .into(),
            }),
        }
    }

    /// Opens adapter `index` in the order `downhill devices` lists them (wgpu's, honouring
    /// WGPU_BACKEND). The same index may be opened more than once: each is a device of
    /// its own.
    pub fn open_nth(index: usize) -> Result<Self> {
        let instance = instance();
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        match adapters.get(index) {
            Some(adapter) => Self::from_adapter(adapter),
            None => Err(Error::NoAdapter {
                reason: format!(
                    "there is no adapter {index}: wgpu sees {} (downhill devices lists them)",
                    adapters.len()
                ),
            }),
        }
    }

    /// How many adapters wgpu sees.
    pub fn count() -> usize {
        let instance = instance();
        pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all())).len()
    }

    /// Like [`GpuContext::open`], but only when the chosen adapter is a hardware GPU
    /// (or was named with WGPU_ADAPTER_NAME). `Ok(None)` otherwise, with the reason.
    pub fn open_hardware() -> Result<Result<Self, String>> {
        let named = std::env::var("WGPU_ADAPTER_NAME").is_ok();
        match choose_adapter()? {
            Some(adapter) if named || is_hardware(&adapter.get_info()) => {
                Self::from_adapter(&adapter).map(Ok)
            }
            Some(adapter) => Ok(Err(format!(
                "the only adapter is a software one ({}); --backend gpu uses it",
                adapter.get_info().name
            ))),
            None => Ok(Err("no GPU adapter found".into())),
        }
    }

    /// Opens a device on `adapter`, asking for all of its limits (not wgpu's defaults).
    pub fn from_adapter(adapter: &wgpu::Adapter) -> Result<Self> {
        let info = adapter.get_info();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("downhill"),
            required_limits: adapter.limits(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        }))
        .map_err(|e| Error::gpu(format!("could not open {}: {e}", info.name)))?;
        Ok(Self::from_device(device, queue, info))
    }

    /// Wraps a device the caller opened. Errors the device raises outside an error scope
    /// are recorded and returned by the next operation instead of panicking.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) -> Self {
        let faults = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&faults);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let fault = match &e {
                wgpu::Error::OutOfMemory { .. } => Fault::OutOfMemory(e.to_string()),
                _ => Fault::Validation(e.to_string()),
            };
            if let Ok(mut v) = sink.lock() {
                v.push(fault);
            }
        }));
        let sink = Arc::clone(&faults);
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut v) = sink.lock() {
                v.push(Fault::Lost(format!("{reason:?}: {message}")));
            }
        });
        GpuContext {
            device,
            queue,
            info,
            faults,
            injected: Mutex::new(InjectedFaults::default()),
            shared: Mutex::new(Vec::new()),
            loop_limit: OnceLock::new(),
        }
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// `adapter name (backend)`, for messages.
    pub fn describe(&self) -> String {
        format!("{} ({:?})", self.info.name, self.info.backend)
    }

    /// The largest buffer that can be bound as one storage binding.
    pub fn storage_binding_limit(&self) -> u64 {
        let l = self.limits();
        l.max_storage_buffer_binding_size.min(l.max_buffer_size)
    }

    /// Returns the errors the device raised since the last check, if any, as one error: a
    /// lost device first, then an out-of-memory, then a rejected command.
    pub fn check(&self) -> Result<()> {
        let mut faults = self
            .faults
            .lock()
            .map_err(|_| Error::gpu("error log poisoned"))?;
        // A lost device stays lost: that fault is reported by every check from then on.
        let taken = std::mem::take(&mut *faults);
        faults.extend(
            taken
                .iter()
                .filter(|f| matches!(f, Fault::Lost(_)))
                .cloned(),
        );
        let all = |pick: fn(&Fault) -> Option<&String>| {
            let found: Vec<&str> = taken.iter().filter_map(pick).map(String::as_str).collect();
            (!found.is_empty()).then(|| found.join("; "))
        };
        if let Some(message) = all(|f| match f {
            Fault::Lost(m) => Some(m),
            _ => None,
        }) {
            return Err(Error::DeviceLost { message });
        }
        if let Some(message) = all(|f| match f {
            Fault::OutOfMemory(m) => Some(m),
            _ => None,
        }) {
            return Err(Error::OutOfDeviceMemory {
                what: "a buffer".into(),
                bytes: 0,
                message,
            });
        }
        if let Some(message) = all(|f| match f {
            Fault::Validation(m) => Some(m),
            _ => None,
        }) {
            return Err(Error::GpuValidation { message });
        }
        Ok(())
    }

    /// Makes the device show `faults` from now on (tests of fault handling).
    pub fn inject(&self, faults: InjectedFaults) {
        if let Ok(mut injected) = self.injected.lock() {
            *injected = faults;
        }
    }

    /// Destroys the device as a driver reset would (tests of fault handling): every later
    /// operation reports it lost.
    pub fn lose_device(&self) {
        self.device.destroy();
        let _ = self.device.poll(wgpu::PollType::Poll);
    }

    /// Creates a buffer after checking its size against the device's limits, turning an
    /// out-of-memory into an error.
    pub fn buffer(
        &self,
        label: &str,
        size: u64,
        usage: wgpu::BufferUsages,
        mapped_at_creation: bool,
    ) -> Result<wgpu::Buffer> {
        let limit = self.limits().max_buffer_size;
        if size > limit {
            return Err(Error::TooLarge {
                what: label.to_string(),
                bytes: size,
                limit_name: "max_buffer_size",
                limit,
                hint: "",
            });
        }
        let out_of_memory = |message: String| Error::OutOfDeviceMemory {
            what: label.to_string(),
            bytes: size,
            message,
        };
        let injected = self.injected.lock().map(|i| *i).unwrap_or_default();
        if let Some(most) = injected.out_of_memory_above
            && size > most
        {
            return Err(out_of_memory(format!(
                "injected fault: no buffer above {most} bytes"
            )));
        }
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: size.max(4).next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT),
            usage,
            mapped_at_creation,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(out_of_memory(e.to_string()));
        }
        self.check()?;
        Ok(buffer)
    }

    /// The first value of type `T` shared on this device for which `matches` holds.
    pub(crate) fn shared<T: Any + Send + Sync>(
        &self,
        matches: impl Fn(&T) -> bool,
    ) -> Option<Arc<T>> {
        let shared = self.shared.lock().ok()?;
        shared
            .iter()
            .filter_map(|v| Arc::clone(v).downcast::<T>().ok())
            .find(|v| matches(v))
    }

    /// Shares `value` with every later session on this device.
    pub(crate) fn share<T: Any + Send + Sync>(&self, value: Arc<T>) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.push(value);
        }
    }

    /// Waits until the device has finished all submitted work.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::gpu(format!("waiting for the device: {e}")))?;
        self.check()
    }

    /// Waits until the device has finished `submission`.
    pub fn wait_for(&self, submission: wgpu::SubmissionIndex) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: None,
            })
            .map_err(|e| Error::gpu(format!("waiting for the device: {e}")))?;
        self.check()
    }

    /// Maps the first `size` bytes of a MAP_READ buffer, waiting for the queue, and copies
    /// them out.
    pub fn read(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>> {
        let slice = buffer.slice(..size);
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            sender.send(r).ok();
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::gpu(format!("waiting for the device: {e}")))?;
        self.check()?;
        match pollster::block_on(receiver.receive()) {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                // A lost device fails every mapping: say that, when it is the cause (the
                // device reports its loss while it is polled).
                let _ = self.device.poll(wgpu::PollType::Poll);
                self.check()?;
                return Err(Error::gpu(format!("reading results back: {e}")));
            }
            None => {
                return Err(Error::gpu(
                    "reading results back: the device dropped the request",
                ));
            }
        }
        let bytes = slice
            .get_mapped_range()
            .map_err(|e| Error::gpu(format!("reading results back: {e}")))?
            .to_vec();
        buffer.unmap();
        Ok(bytes)
    }
}

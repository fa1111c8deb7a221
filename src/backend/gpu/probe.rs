//! The device's loop limit, measured: some drivers end every loop of a shader invocation
//! after a fixed number of iterations in all (Mesa's llvmpipe, that is lavapipe: 65 535),
//! without an error, so a kernel that loops longer computes a wrong number. One invocation
//! of `shaders/loop_probe.wgsl` is asked for [`ASKED`] iterations and says how many it ran.

use super::context::GpuContext;
use crate::error::{Error, Result};

const PROBE: &str = include_str!("../../../shaders/loop_probe.wgsl");

/// Iterations the probe asks for: more than any limit a driver is known to set, few
/// enough for one invocation of a GPU to run in about a millisecond.
pub const ASKED: u32 = 1 << 20;

/// How many iterations one invocation ran when asked for [`ASKED`]: `None` when all of
/// them.
pub fn measure(ctx: &GpuContext) -> Result<Option<u32>> {
    let device = ctx.device();
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("downhill.loop_probe"),
        source: wgpu::ShaderSource::Wgsl(PROBE.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("downhill.loop_probe"),
        layout: None,
        module: &module,
        entry_point: Some("probe_loops"),
        compilation_options: Default::default(),
        cache: None,
    });
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(Error::gpu(format!("building the loop probe: {e}")));
    }
    let usage =
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
    let buffer = ctx.buffer("downhill.loop_probe", 8, usage, false)?;
    let readback = ctx.buffer(
        "downhill.loop_probe.read",
        8,
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        false,
    )?;
    ctx.queue()
        .write_buffer(&buffer, 0, bytemuck::cast_slice(&[ASKED, 0]));
    let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("downhill.loop_probe"),
        layout: &pipeline.get_bind_group_layout(0),
        entries: &[wgpu::BindGroupEntry {
            binding: 0,
            resource: buffer.as_entire_binding(),
        }],
    });
    let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
        label: Some("downhill.loop_probe"),
    });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("downhill.loop_probe"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(1, 1, 1);
    }
    encoder.copy_buffer_to_buffer(&buffer, 0, &readback, 0, 8);
    ctx.queue().submit([encoder.finish()]);
    let bytes = ctx.read(&readback, 8)?;
    let ran = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    Ok((ran < ASKED).then_some(ran))
}

impl GpuContext {
    /// The most loop iterations one invocation of a kernel runs in all, when the driver
    /// sets such a limit (Mesa's llvmpipe: 65 535; it then leaves every loop early without
    /// an error); `None` when it runs them all. Measured once per device by a probe kernel,
    /// so that drivers nobody has tried are caught too. Kernels are planned to stay within
    /// [`super::plan::loop_budget`] of it, or refused with [`Error::LoopLimit`].
    pub fn loop_limit(&self) -> Result<Option<u32>> {
        if let Some(limit) = self.loop_limit.get() {
            return Ok(*limit);
        }
        let limit = measure(self)?;
        Ok(*self.loop_limit.get_or_init(|| limit))
    }
}

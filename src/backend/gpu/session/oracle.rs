//! What tests and benchmarks ask of a session: the memory floor of an epoch, the rows read
//! back, the unfused oracle of the fused kernel, and the generator's 64-bit rounding.

use super::*;

impl GpuSession<'_> {
    /// Seconds for one streaming read of all of X on the device and nothing else: the
    /// memory floor of an epoch, for benchmarks.
    pub fn time_stream_read(&self) -> Result<f64> {
        let DeviceRows::Resident(shards) = &self.device_rows else {
            return Err(Error::gpu(
                "the memory floor is measured on resident rows only",
            ));
        };
        let groups = self
            .buffers
            .max_groups
            .min(u32::try_from(self.buffers.partials.size() / 4).unwrap_or(u32::MAX));
        let binds: Vec<wgpu::BindGroup> = shards
            .iter()
            .map(|s| {
                bind_group(
                    self.ctx,
                    "downhill.stream_read",
                    &self.kernels.layouts.stream_read,
                    &[&s.x, &self.buffers.partials],
                )
            })
            .collect();
        let pipeline = self.kernels.stream_read(self.ctx)?;
        let mut encoder = self.encoder("downhill.stream_read");
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("downhill.stream_read"),
                timestamp_writes: None,
            });
            pass.set_pipeline(pipeline);
            for bind in &binds {
                pass.set_bind_group(0, bind, &[]);
                pass.dispatch_workgroups(groups.max(1), 1, 1);
            }
        }
        let start = std::time::Instant::now();
        self.ctx.queue().submit([encoder.finish()]);
        self.ctx.wait()?;
        Ok(start.elapsed().as_secs_f64())
    }

    /// X and y as they are in device memory, unpadded, for checking what was uploaded or
    /// generated (streamed rows: each chunk as it passes through its slot).
    pub fn read_rows(&mut self) -> Result<crate::data::Dataset> {
        let (d, dp) = (self.features, self.kernels.constants.dp as usize);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for index in 0..self.ranges.len() {
            let buffers = match &mut self.device_rows {
                DeviceRows::Resident(shards) => &shards[index],
                DeviceRows::Streamed(stream) => {
                    let mut encoder = self
                        .ctx
                        .device()
                        .create_command_encoder(&Default::default());
                    let slot = stream.fill(self.ctx, d, index, &mut encoder)?;
                    self.ctx.queue().submit([encoder.finish()]);
                    &stream.slots[slot]
                }
            };
            let n = (buffers.rows.end - buffers.rows.start) as usize;
            let padded: Vec<f32> = read_buffer(self.ctx, &buffers.x, (4 * n * dp) as u64)?;
            x.extend(padded.chunks_exact(dp).flat_map(|row| &row[..d]));
            y.extend(read_buffer(self.ctx, &buffers.y, (4 * n) as u64)?);
        }
        crate::data::Dataset::new(x, y, d)
    }

    /// Bytes of X (as padded on the device) and y: what one epoch must read at least.
    pub fn data_bytes(&self) -> u64 {
        let row_bytes = 4 * u64::from(self.kernels.constants.dp);
        (row_bytes + 4) * self.held_rows()
    }

    /// Rows this session holds: all of the problem's, or a part's.
    pub(super) fn held_rows(&self) -> u64 {
        self.ranges.iter().map(|r| u64::from(r.end - r.start)).sum()
    }

    /// J and ∇J over all rows through the unfused kernels (forward, δ, Xᵀδ): the device's
    /// own oracle for the fused kernel. Needs X in one shard.
    pub fn gradient_unfused(&mut self) -> Result<Gradient> {
        if let crate::model::Loss::Custom(_) = self.objective.loss() {
            return Err(Error::gpu(
                "the unfused kernels know the built-in losses only",
            ));
        }
        let c = self.kernels.constants;
        let ctx = self.ctx;
        let batch = self.full_batch();
        let n = u64::from(batch.len);
        let k = u64::from(c.k);
        let z = ctx.buffer("downhill.z", 4 * n * k, STORAGE, false)?;
        let yhat = ctx.buffer("downhill.yhat", 4 * n * k, STORAGE, false)?;
        let delta = ctx.buffer("downhill.delta", 4 * n * k, STORAGE, false)?;
        let row_loss = ctx.buffer("downhill.row_loss", 4 * n, STORAGE, false)?;
        let layouts = &self.kernels.layouts;
        let forward_bind = bind_group(
            ctx,
            "downhill.forward",
            &layouts.forward,
            &[&self.buffers.params, &z, &yhat],
        );
        let delta_bind = bind_group(
            ctx,
            "downhill.delta",
            &layouts.delta,
            &[&z, &yhat, &delta, &row_loss],
        );
        let xt_bind = bind_group(
            ctx,
            "downhill.xt_delta",
            &layouts.xt_delta,
            &[&delta, &row_loss, &self.buffers.grad],
        );
        let step = Step {
            epoch: 0,
            t: 1,
            batch,
            lr: 0.0,
        };
        self.write_records(&[StepUniform::new(&step, 0, 1, RowSet::All, &self.setup.rule)]);
        let shard = match &self.device_rows {
            DeviceRows::Resident(shards) if shards.len() == 1 => &shards[0],
            _ => {
                return Err(Error::gpu(format!(
                    "the unfused kernels read one resident shard; this problem has {} {}",
                    self.ranges.len(),
                    if self.is_streamed() {
                        "streamed chunks"
                    } else {
                        "shards"
                    }
                )));
            }
        };
        let max_dim = ctx.limits().max_compute_workgroups_per_dimension;
        let row_groups = batch.len.div_ceil(c.wg).min(max_dim);
        // forward: its rows' z, class by class over the features; xt_delta: a column's
        // products over the rows, WG at a time.
        let rows_each = u64::from(batch.len.div_ceil(row_groups * c.wg));
        let (d, k) = (u64::from(c.d), u64::from(c.k));
        let limit = c.loop_limit;
        let what = || format!("the unfused gradient of {d} features and {k} outputs");
        check_loops(what, rows_each * (k * (d + 1) + 3 * k + 1), limit)?;
        check_loops(what, u64::from(batch.len.div_ceil(c.wg)) + 16, limit)?;
        let unfused = self.kernels.unfused(ctx)?;
        let mut encoder = self.encoder("downhill.unfused");
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("downhill.unfused"),
                timestamp_writes: None,
            });
            pass.set_bind_group(0, &self.buffers.step_bind, &[0]);
            pass.set_bind_group(1, &shard.bind, &[]);
            pass.set_pipeline(&unfused.forward);
            pass.set_bind_group(2, &forward_bind, &[]);
            pass.dispatch_workgroups(row_groups, 1, 1);
            pass.set_pipeline(&unfused.delta);
            pass.set_bind_group(2, &delta_bind, &[]);
            pass.dispatch_workgroups(row_groups, 1, 1);
            pass.set_pipeline(&unfused.xt_delta);
            pass.set_bind_group(2, &xt_bind, &[]);
            let (gx, gy) = grid(c.p, max_dim);
            pass.dispatch_workgroups(gx, gy, 1);
        }
        let values = self.read_back(encoder, &self.buffers.grad, 0, c.p)?;
        Ok(self.gradient_from(&values))
    }
}

/// Rounds 64-bit integers to f32 with the generator's own conversion on the device (the
/// one that makes synthetic labels): the check that it rounds as Rust's `as f32` does.
pub fn convert_i64_on_device(gpu: &Gpu, values: &[i64]) -> Result<Vec<f32>> {
    let ctx = gpu.context();
    let constants = ShaderConstants::new(&Objective::linear(), 1, 1, Tuning::GPU, 16384, None)?;
    let kernels = GeneratorKernels::new(ctx, &constants)?;
    let words: Vec<u32> = values
        .iter()
        .flat_map(|&v| [v as u32, (v >> 32) as u32])
        .collect();
    let input = upload(ctx, "downhill.convert_in", bytemuck::cast_slice(&words))?;
    let bytes = 4 * values.len() as u64;
    let output = ctx.buffer(
        "downhill.convert_out",
        bytes,
        STORAGE | wgpu::BufferUsages::COPY_SRC,
        false,
    )?;
    let unused_y = ctx.buffer("downhill.unused", 16, STORAGE, false)?;
    let unused_tables = ctx.buffer("downhill.unused", 16, STORAGE, false)?;
    let u = GeneratorUniform {
        rows: values.len() as u32,
        ..Default::default()
    };
    let uniform = uniform_buffer(ctx, "downhill.generator", bytemuck::bytes_of(&u))?;
    let staging = ctx.buffer(
        "downhill.read",
        bytes,
        wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        false,
    )?;
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&kernels.convert);
        pass.set_bind_group(
            0,
            &bind_group(ctx, "downhill.generator", &kernels.uniform, &[&uniform]),
            &[],
        );
        let buffers = [&output, &unused_y, &input, &unused_tables];
        pass.set_bind_group(
            1,
            &bind_group(ctx, "downhill.generated", &kernels.buffers, &buffers),
            &[],
        );
        pass.dispatch_workgroups((values.len() as u32).div_ceil(constants.wg), 1, 1);
    }
    encoder.copy_buffer_to_buffer(&output, 0, &staging, 0, bytes);
    ctx.queue().submit([encoder.finish()]);
    Ok(bytemuck::pod_collect_to_vec(&ctx.read(&staging, bytes)?))
}

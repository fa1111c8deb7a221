//! Predictions: z of every row, shard by shard or chunk by chunk.

use super::*;

impl GpuSession<'_> {
    /// z of every row, shard by shard (or chunk by chunk when streamed), read back as each
    /// one finishes: the device holds z for one shard at a time.
    pub(super) fn predict_rows(&mut self) -> Result<Vec<f64>> {
        let ctx = self.ctx;
        let k = u64::from(self.kernels.constants.k);
        let most_rows = self
            .ranges
            .iter()
            .map(|r| r.len() as u64)
            .max()
            .unwrap_or(1);
        let bytes = 4 * k * most_rows.max(1);
        let limit = ctx.storage_binding_limit();
        if bytes > limit {
            return Err(Error::TooLarge {
                what: "the predictions of one shard".into(),
                bytes,
                limit_name: "max_storage_buffer_binding_size",
                limit,
                hint: "; predict with --backend cpu",
            });
        }
        let max_dim = ctx.limits().max_compute_workgroups_per_dimension;
        let wg = u64::from(self.kernels.constants.wg);
        if k > u64::from(max_dim) {
            return Err(Error::TooLarge {
                what: format!("predicting {k} classes (one row of workgroups each)"),
                bytes: k,
                limit_name: "max_compute_workgroups_per_dimension",
                limit: u64::from(max_dim),
                hint: "; predict with --backend cpu",
            });
        }
        let sweeps = most_rows.div_ceil(u64::from(max_dim) * wg).max(1);
        check_loops(
            || format!("predicting rows of {} features", self.features),
            sweeps * (self.features as u64 + 1),
            self.kernels.constants.loop_limit,
        )?;
        let z = ctx.buffer(
            "downhill.predict.z",
            bytes,
            STORAGE | wgpu::BufferUsages::COPY_SRC,
            false,
        )?;
        let readback = ctx.buffer(
            "downhill.predict.readback",
            bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            false,
        )?;
        let kernels = Arc::clone(&self.kernels);
        let bind = bind_group(
            ctx,
            "downhill.predict",
            &kernels.layouts.predict,
            &[&self.buffers.params, &z],
        );
        let pipeline = kernels.predict(ctx)?;
        let mut out = Vec::with_capacity(self.rows * k as usize);
        let predict = |encoder: &mut wgpu::CommandEncoder, rows: &RowBuffers| -> u64 {
            let n = rows.rows.len() as u32;
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("downhill.predict"),
                    timestamp_writes: None,
                });
                pass.set_pipeline(pipeline);
                pass.set_bind_group(0, &rows.bind, &[]);
                pass.set_bind_group(1, &bind, &[]);
                let groups = n.div_ceil(kernels.constants.wg).clamp(1, max_dim);
                pass.dispatch_workgroups(groups, k as u32, 1);
            }
            let size = 4 * k * u64::from(n);
            encoder.copy_buffer_to_buffer(&z, 0, &readback, 0, size);
            size
        };
        let count = self.ranges.len();
        for index in 0..count {
            let mut encoder = self.encoder("downhill.predict");
            let size = match &mut self.device_rows {
                DeviceRows::Resident(shards) => {
                    let size = predict(&mut encoder, &shards[index]);
                    ctx.queue().submit([encoder.finish()]);
                    size
                }
                DeviceRows::Streamed(stream) => {
                    let slot = stream.fill(ctx, self.features, index, &mut encoder)?;
                    let size = predict(&mut encoder, &stream.slots[slot]);
                    let submission = ctx.queue().submit([encoder.finish()]);
                    stream.submitted(slot, submission);
                    size
                }
            };
            let values = ctx.read(&readback, size)?;
            let values: &[f32] = bytemuck::cast_slice(&values);
            out.extend(values.iter().map(|&v| f64::from(v)));
        }
        Ok(out)
    }
}

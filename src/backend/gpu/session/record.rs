//! Recording passes into command buffers and reading results back: the parameters and
//! setup written, a step's uniform, the fused gradient and the update recorded (resident or
//! streamed), evaluations, column moments, the status word, and the steps of a run.

use super::*;
use crate::backend::gpu::dispatch::overlap;

impl GpuSession<'_> {
    /// Sets the parameters from raw-space values (W row-major, then b): `params` as they
    /// are, `theta` in the optimizer's space.
    pub(super) fn write_raw(&self, raw: &[f64]) {
        let k = self.objective.outputs();
        let theta = match &self.standardization {
            Some(s) => s.from_raw(raw, k),
            None => raw.to_vec(),
        };
        let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
        let queue = self.ctx.queue();
        queue.write_buffer(&self.buffers.params, 0, bytemuck::cast_slice(&f32s(raw)));
        queue.write_buffer(&self.buffers.theta, 0, bytemuck::cast_slice(&f32s(&theta)));
    }

    /// Writes the setup uniform and the class weights (one per class slot).
    pub(super) fn write_setup(&self, class_weights: &[f64]) {
        let uniform = SetupUniform::new(&self.setup, self.weighted);
        let queue = self.ctx.queue();
        queue.write_buffer(&self.buffers.setup_buffer, 0, bytemuck::bytes_of(&uniform));
        let slots = self.kernels.constants.k.max(2) as usize;
        let weights: Vec<f32> = (0..slots)
            .map(|c| class_weights.get(c).copied().unwrap_or(1.0) as f32)
            .collect();
        queue.write_buffer(
            &self.buffers.class_weights,
            0,
            bytemuck::cast_slice(&weights),
        );
    }

    /// The step uniform of `step` (the `index`-th of a run) over `rows`.
    pub(super) fn step_uniform(&self, step: &Step, index: u32, rows: RowSet) -> StepUniform {
        let groups = self.groups_for(&step.batch);
        StepUniform::new(step, index, groups, rows, &self.setup.rule)
    }

    pub(super) fn full_batch(&self) -> Batch {
        Batch {
            start: 0,
            len: self.rows as u32,
            order: None,
        }
    }

    /// Workgroups per shard for a batch: enough tiles to go round, at most `max_groups`.
    pub(super) fn groups_for(&self, batch: &Batch) -> u32 {
        let span = match batch.order {
            // In file order each shard sees only its own rows of the batch.
            None => self
                .ranges
                .iter()
                .map(|r| overlap(r, batch.start..batch.start + batch.len))
                .max()
                .unwrap_or(0),
            Some(_) => batch.len,
        };
        span.div_ceil(self.kernels.constants.tile_rows)
            .clamp(1, self.buffers.max_groups)
    }

    /// Records the fused gradient of the step at record `slot` over the rows of `shards`.
    pub(super) fn record_gradient(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        slot: usize,
        uniform: &StepUniform,
        shards: &[RowBuffers],
    ) {
        let groups = uniform.groups;
        let offset = [(slot as u64 * self.buffers.step_stride) as u32];
        pass.set_pipeline(&self.kernels.gradient);
        pass.set_bind_group(0, &self.buffers.step_bind, &offset);
        pass.set_bind_group(2, &self.buffers.gradient_bind, &[]);
        for shard in shards {
            pass.set_bind_group(1, &shard.bind, &[]);
            self.buffers
                .slices
                .dispatch(pass, &self.kernels, uniform, &shard.rows, groups);
        }
    }

    /// Records the reduction of the partials into `grad` (∇J, then J), then, if `update`,
    /// the descent step, of the step at record `slot`.
    pub(super) fn record_finish(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        slot: usize,
        update: bool,
    ) {
        let c = &self.kernels.constants;
        let offset = [(slot as u64 * self.buffers.step_stride) as u32];
        let max_dim = self.ctx.limits().max_compute_workgroups_per_dimension;
        let (gx, gy) = grid(c.p.div_ceil(c.wg), max_dim);
        pass.set_pipeline(&self.kernels.reduce);
        pass.set_bind_group(0, &self.buffers.step_bind, &offset);
        pass.set_bind_group(1, &self.buffers.reduce_bind, &[]);
        pass.dispatch_workgroups(gx, gy, 1);
        if update {
            pass.set_bind_group(0, &self.buffers.step_bind, &offset);
            pass.set_bind_group(1, &self.buffers.update_bind, &[]);
            if c.update_in_one_workgroup() {
                pass.set_pipeline(&self.kernels.update_one);
                pass.dispatch_workgroups(1, 1, 1);
            } else {
                let (gx, gy) = grid(((c.d + 1) * c.k).div_ceil(c.wg), max_dim);
                let split = self
                    .kernels
                    .update_split(self.ctx)
                    .expect("built with the session");
                for pipeline in split {
                    pass.set_pipeline(pipeline);
                    pass.dispatch_workgroups(gx, gy, 1);
                }
            }
        }
    }

    /// Streams every chunk through the slots for the step whose record is at slot 0: each
    /// chunk's partial gradient in a submission of its own, so that the host fills one slot
    /// while the device computes on the other. Returns the encoder for what follows.
    pub(super) fn stream_gradient(
        &mut self,
        uniform: &StepUniform,
    ) -> Result<wgpu::CommandEncoder> {
        let (kernels, step_bind, gradient_bind, slices) = (
            &self.kernels,
            &self.buffers.step_bind,
            &self.buffers.gradient_bind,
            &self.buffers.slices,
        );
        pass_over_rows(
            self.ctx,
            &mut self.device_rows,
            self.features,
            &mut |pass, rows| {
                pass.set_pipeline(&kernels.gradient);
                pass.set_bind_group(0, step_bind, &[0]);
                pass.set_bind_group(1, &rows.bind, &[]);
                pass.set_bind_group(2, gradient_bind, &[]);
                slices.dispatch(pass, kernels, uniform, &rows.rows, uniform.groups);
            },
        )?;
        Ok(self.encoder("downhill.finish"))
    }

    /// Records (resident) or streams (streamed) the gradient of the step at record slot 0,
    /// then its finish; submits unless `keep` and returns the encoder for more commands.
    pub(super) fn one_step(
        &mut self,
        uniform: &StepUniform,
        update: bool,
    ) -> Result<wgpu::CommandEncoder> {
        let mut encoder = match &self.device_rows {
            DeviceRows::Resident(_) => self.encoder("downhill.step"),
            DeviceRows::Streamed(_) => self.stream_gradient(uniform)?,
        };
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("downhill.step"),
                timestamp_writes: None,
            });
            if let DeviceRows::Resident(shards) = &self.device_rows {
                self.record_gradient(&mut pass, 0, uniform, shards);
            }
            self.record_finish(&mut pass, 0, update);
        }
        Ok(encoder)
    }

    /// Writes step records for one submission into `self.buffers.steps`.
    pub(super) fn write_records(&mut self, uniforms: &[StepUniform]) {
        let stride = self.buffers.step_stride as usize;
        self.records.clear();
        self.records.resize(uniforms.len() * stride, 0);
        for (i, u) in uniforms.iter().enumerate() {
            self.records[i * stride..i * stride + size_of::<StepUniform>()]
                .copy_from_slice(bytemuck::bytes_of(u));
        }
        self.ctx
            .queue()
            .write_buffer(&self.buffers.steps, 0, &self.records);
    }

    /// Evaluates J, ∇J and the metric sums over `rows` into `grad` and reads back
    /// `entries` of it starting at `first`.
    pub(super) fn evaluate_rows(
        &mut self,
        rows: RowSet,
        first: u32,
        entries: u32,
    ) -> Result<Vec<f32>> {
        let step = self.evaluation_step();
        let uniform = self.step_uniform(&step, 0, rows);
        self.write_records(&[uniform]);
        let encoder = self.one_step(&uniform, false)?;
        self.read_back(encoder, &self.buffers.grad, first, entries)
    }

    /// A step over every row with learning rate 0: what evaluations record.
    pub(super) fn evaluation_step(&self) -> Step {
        Step {
            epoch: 0,
            t: 1,
            batch: self.full_batch(),
            lr: 0.0,
        }
    }

    /// Per-feature sums of (x − center) and (x − center)², label counts and the row count
    /// over the training rows, added over every workgroup and shard in f64.
    pub(super) fn column_moments(&mut self, center: &[f64]) -> Result<Vec<f64>> {
        let d = self.features;
        let slots = self.kernels.constants.k.max(2) as usize;
        let m = 2 * d + slots + 1;
        let center_f32: Vec<f32> = center.iter().map(|&c| c as f32).collect();
        let center_buffer = upload(
            self.ctx,
            "downhill.center",
            bytemuck::cast_slice(&center_f32),
        )?;
        let step = self.evaluation_step();
        let groups = self.buffers.moment_groups;
        let mut uniform = StepUniform::new(&step, 0, groups, RowSet::Training, &self.setup.rule);
        uniform.groups = groups;
        self.write_records(&[uniform]);
        let own = bind_group(
            self.ctx,
            "downhill.moments",
            &self.kernels.layouts.moments,
            &[
                &self.buffers.partials,
                &self.buffers.setup_buffer,
                &center_buffer,
            ],
        );
        let (kernels, step_bind) = (&self.kernels, &self.buffers.step_bind);
        pass_over_rows(self.ctx, &mut self.device_rows, d, &mut |pass, rows| {
            pass.set_pipeline(&kernels.moments);
            pass.set_bind_group(0, step_bind, &[0]);
            pass.set_bind_group(1, &rows.bind, &[]);
            pass.set_bind_group(2, &own, &[]);
            pass.dispatch_workgroups(groups, 1, 1);
        })?;
        let count = self.ranges.len() * groups as usize * m;
        let values = read_buffer(self.ctx, &self.buffers.partials, 4 * count as u64)?;
        let mut total = vec![0.0; m];
        for partial in values.chunks_exact(m) {
            for (t, &v) in total.iter_mut().zip(partial) {
                *t += f64::from(v);
            }
        }
        Ok(total)
    }

    pub(super) fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }

    /// Finishes `encoder` with a copy of `entries` floats of `source` (from entry `first`)
    /// into the staging buffer, submits, and reads them.
    pub(super) fn read_back(
        &self,
        mut encoder: wgpu::CommandEncoder,
        source: &wgpu::Buffer,
        first: u32,
        entries: u32,
    ) -> Result<Vec<f32>> {
        let bytes = 4 * u64::from(entries);
        encoder.copy_buffer_to_buffer(
            source,
            4 * u64::from(first),
            &self.buffers.staging,
            0,
            bytes,
        );
        self.ctx.queue().submit([encoder.finish()]);
        let raw = self.ctx.read(&self.buffers.staging, bytes)?;
        Ok(bytemuck::pod_collect_to_vec(&raw))
    }

    pub(super) fn gradient_from(&self, values: &[f32]) -> Gradient {
        let (d, k) = (self.features, self.objective.outputs());
        let all: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        Gradient {
            loss: all[(d + 1) * k],
            weights: all[..d * k].to_vec(),
            bias: all[d * k..(d + 1) * k].to_vec(),
        }
    }

    /// Clears `status` for the steps to come.
    pub(super) fn clear_status(&self) {
        self.ctx.queue().write_buffer(
            &self.buffers.status,
            0,
            bytemuck::cast_slice(&[0u32, u32::MAX]),
        );
    }

    /// How the steps since `status` was cleared ended.
    pub(super) fn status(&self) -> Result<RunOutcome> {
        let status = self.read_back(self.encoder("downhill.status"), &self.buffers.status, 0, 2)?;
        let status: Vec<u32> = status.iter().map(|v| v.to_bits()).collect();
        Ok(if status[0] == 0 {
            RunOutcome::Completed
        } else {
            RunOutcome::Diverged {
                step: status[1] as usize,
            }
        })
    }

    /// Where J begins in `grad`, after ∇J: the first of the five metric entries.
    pub(super) fn loss_entry(&self) -> u32 {
        (self.features as u32 + 1) * self.kernels.constants.k
    }

    /// An evaluation from the metric entries of `grad` (J, Σw, then the weighted sums).
    pub(super) fn evaluation_from(&self, v: &[f32]) -> Evaluation {
        let weight = f64::from(v[1]);
        let sums = [
            f64::from(v[0]) * weight,
            weight,
            f64::from(v[2]),
            f64::from(v[3]),
            f64::from(v[4]),
        ];
        Evaluation::from_sums(self.objective.model(), sums)
    }

    /// Records the steps, up to STEPS_PER_SUBMIT of them per submission.
    pub(super) fn run_resident(&mut self, steps: &[Step]) {
        let mut uniforms = Vec::with_capacity(STEPS_PER_SUBMIT);
        for (chunk_index, chunk) in steps.chunks(STEPS_PER_SUBMIT).enumerate() {
            uniforms.clear();
            for (i, step) in chunk.iter().enumerate() {
                let index = (chunk_index * STEPS_PER_SUBMIT + i) as u32;
                uniforms.push(self.step_uniform(step, index, RowSet::Training));
            }
            self.write_records(&uniforms);
            let DeviceRows::Resident(shards) = &self.device_rows else {
                unreachable!("run_resident on streamed rows");
            };
            let mut encoder = self.encoder("downhill.descent");
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("downhill.descent"),
                    timestamp_writes: None,
                });
                for (slot, uniform) in uniforms.iter().enumerate() {
                    self.record_gradient(&mut pass, slot, uniform, shards);
                    self.record_finish(&mut pass, slot, true);
                }
            }
            self.ctx.queue().submit([encoder.finish()]);
        }
    }

    /// Streams every chunk through the slots for each step. Full batches only: a
    /// mini-batch draws rows from every chunk, so each step would stream all of X.
    pub(super) fn run_streamed(&mut self, steps: &[Step]) -> Result<()> {
        for (index, step) in steps.iter().enumerate() {
            if step.batch.order.is_some() {
                return Err(Error::option(
                    "batch size",
                    step.batch.len,
                    "mini-batches need every row in device memory, and these rows are \
                     streamed (--max-device-bytes); use full-batch descent, a larger \
                     --max-device-bytes, or --backend cpu",
                ));
            }
            let uniform = self.step_uniform(step, index as u32, RowSet::Training);
            self.write_records(&[uniform]);
            let encoder = self.one_step(&uniform, true)?;
            self.ctx.queue().submit([encoder.finish()]);
        }
        Ok(())
    }
}

/// Records `record` over every run of rows: all resident shards in one submission, or
/// each streamed chunk in a submission of its own as it passes through its slot (the host
/// fills one slot while the device computes on the other).
pub(super) fn pass_over_rows(
    ctx: &GpuContext,
    rows: &mut DeviceRows<'_>,
    d: usize,
    record: &mut dyn FnMut(&mut wgpu::ComputePass<'_>, &RowBuffers),
) -> Result<()> {
    let label = Some("downhill.rows");
    let descriptor = wgpu::ComputePassDescriptor {
        label,
        timestamp_writes: None,
    };
    match rows {
        DeviceRows::Resident(shards) => {
            let mut encoder = ctx
                .device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label });
            {
                let mut pass = encoder.begin_compute_pass(&descriptor);
                for shard in shards.iter() {
                    record(&mut pass, shard);
                }
            }
            ctx.queue().submit([encoder.finish()]);
        }
        DeviceRows::Streamed(stream) => {
            for index in 0..stream.chunks.len() {
                let mut encoder = ctx
                    .device()
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor { label });
                let slot = stream.fill(ctx, d, index, &mut encoder)?;
                {
                    let mut pass = encoder.begin_compute_pass(&descriptor);
                    record(&mut pass, &stream.slots[slot]);
                }
                let submission = ctx.queue().submit([encoder.finish()]);
                stream.submitted(slot, submission);
            }
        }
    }
    Ok(())
}

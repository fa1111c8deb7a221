//! The Newton solvers' curvature passes on the device (`shaders/curvature.wgsl`): the
//! Hessian sums and Hessian-vector sums over every shard or streamed chunk. Each segment
//! of a run of rows is one submission whose blocks' partials the host reads back and adds
//! in f64, in block, segment and shard order, so reruns give the same bits. The buffers
//! are made on the first curvature pass; descent never pays for them.

use super::super::curvature::{
    CurvatureBuffers, Layout, Pass, SegmentUniform, Shape, add_tiles, mirror, row_groups,
};
use super::super::kernels::Curvature;
use super::*;
use crate::descent::HessianSums;

/// Bytes of partials one segment may hold (its read-back staging is as large).
const PARTIAL_BYTES: u64 = 64 << 20;

/// What records and reads one segment: the kernels, the buffers, the step record.
struct Segments<'s> {
    ctx: &'s GpuContext,
    kernels: &'s Curvature,
    buffers: &'s CurvatureBuffers,
    step_bind: &'s wgpu::BindGroup,
}

impl Segments<'_> {
    /// Records `segment` of `rows` for `layout`'s pass into `encoder`, submits it, and
    /// reads its blocks' partials back.
    fn run(
        &self,
        mut encoder: wgpu::CommandEncoder,
        rows: &RowBuffers,
        layout: &Layout,
        segment: &SegmentUniform,
    ) -> Result<(wgpu::SubmissionIndex, Vec<f32>)> {
        let (ctx, shape) = (self.ctx, &self.buffers.shape);
        ctx.queue()
            .write_buffer(&self.buffers.segment, 0, bytemuck::bytes_of(segment));
        let (first, second) = match layout.pass {
            Pass::Hessian => (&self.kernels.curvature_rows, &self.kernels.hessian_tiles),
            Pass::Product => (&self.kernels.direction_rows, &self.kernels.product_columns),
        };
        let groups = row_groups(shape, layout.pass, segment.rows)?;
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("downhill.curvature"),
                timestamp_writes: None,
            });
            pass.set_bind_group(0, self.step_bind, &[0]);
            pass.set_bind_group(1, &rows.bind, &[]);
            pass.set_bind_group(2, &self.buffers.bind, &[]);
            pass.set_pipeline(first);
            pass.dispatch_workgroups(groups, 1, 1);
            pass.set_pipeline(second);
            pass.dispatch_workgroups(shape.groups(layout.pass) as u32, segment.blocks, 1);
        }
        let bytes = 4 * layout.entries * u64::from(segment.blocks);
        encoder.copy_buffer_to_buffer(&self.buffers.partials, 0, &self.buffers.staging, 0, bytes);
        let submission = ctx.queue().submit([encoder.finish()]);
        let raw = ctx.read(&self.buffers.staging, bytes)?;
        Ok((submission, bytemuck::pod_collect_to_vec(&raw)))
    }
}

impl GpuSession<'_> {
    /// The curvature buffers, made on first use.
    fn curvature_buffers(&mut self) -> Result<()> {
        if self.curvature.is_some() {
            return Ok(());
        }
        let ctx = self.ctx;
        let c = self.kernels.constants;
        let limits = ctx.limits();
        let shape = Shape {
            d: c.d,
            k: c.k,
            general: self.objective.model() == crate::model::Model::Softmax
                && matches!(self.objective.loss(), crate::model::Loss::Custom(_)),
            wg: c.wg,
            loop_limit: c.loop_limit,
            binding_limit: ctx.storage_binding_limit().min(PARTIAL_BYTES),
            max_per_dimension: limits.max_compute_workgroups_per_dimension,
        };
        let most_rows = self.ranges.iter().map(|r| r.len()).max().unwrap_or(0) as u64;
        let hessian = shape.layout(Pass::Hessian, most_rows)?;
        let product = shape.layout(Pass::Product, most_rows)?;
        let largest = |per: fn(&Layout) -> u64| per(&hessian).max(per(&product)).max(4);
        let partial_bytes = largest(|l| 4 * l.entries * u64::from(l.blocks));
        let coefficient_bytes = largest(|l| 4 * l.coefficients * u64::from(l.segment_rows()));
        let kernels = self.kernels.curvature(ctx)?;
        let usage = STORAGE | wgpu::BufferUsages::COPY_DST;
        let direction = ctx.buffer("downhill.direction", 4 * shape.parameters(), usage, false)?;
        let coefficients = ctx.buffer("downhill.coefficients", coefficient_bytes, usage, false)?;
        let partials = ctx.buffer(
            "downhill.curvature_partials",
            partial_bytes,
            STORAGE | wgpu::BufferUsages::COPY_SRC,
            false,
        )?;
        let staging = ctx.buffer(
            "downhill.curvature_read",
            partial_bytes,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            false,
        )?;
        let segment = ctx.buffer(
            "downhill.segment",
            size_of::<SegmentUniform>() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            false,
        )?;
        let bind = bind_group(
            ctx,
            "downhill.curvature",
            &kernels.layout,
            &[
                &self.buffers.params,
                &self.buffers.setup_buffer,
                &self.buffers.class_weights,
                &direction,
                &coefficients,
                &partials,
                &segment,
            ],
        );
        self.curvature = Some(CurvatureBuffers {
            shape,
            hessian,
            product,
            direction,
            partials,
            staging,
            segment,
            bind,
        });
        ctx.check()
    }

    /// Runs `pass` over every segment of every run of rows in `rows`, handing each
    /// segment's partials (and the segment) to `add` in order.
    fn over_segments(
        &mut self,
        pass: Pass,
        rows: RowSet,
        add: &mut dyn FnMut(&[f32], &SegmentUniform),
    ) -> Result<()> {
        self.curvature_buffers()?;
        let step = self.evaluation_step();
        let uniform = StepUniform::new(&step, 0, 1, rows, &self.setup.rule);
        self.write_records(&[uniform]);
        let ctx = self.ctx;
        let buffers = self.curvature.as_ref().expect("made above");
        let layout = match pass {
            Pass::Hessian => buffers.hessian,
            Pass::Product => buffers.product,
        };
        let segments = Segments {
            ctx,
            kernels: self.kernels.curvature(ctx)?,
            buffers,
            step_bind: &self.buffers.step_bind,
        };
        let encoder = || {
            ctx.device()
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("downhill.curvature"),
                })
        };
        match &mut self.device_rows {
            DeviceRows::Resident(shards) => {
                for shard in shards.iter() {
                    for segment in layout.segments(shard.rows.len() as u32) {
                        let (_, values) = segments.run(encoder(), shard, &layout, &segment)?;
                        add(&values, &segment);
                    }
                }
            }
            DeviceRows::Streamed(stream) => {
                for index in 0..stream.chunks.len() {
                    let mut first = encoder();
                    let slot = stream.fill(ctx, self.features, index, &mut first)?;
                    let mut next = Some(first);
                    let run = stream.slots[slot].rows.len() as u32;
                    for segment in layout.segments(run) {
                        let recorder = next.take().unwrap_or_else(encoder);
                        let rows = &stream.slots[slot];
                        let (submission, values) =
                            segments.run(recorder, rows, &layout, &segment)?;
                        stream.submitted(slot, submission);
                        add(&values, &segment);
                    }
                }
            }
        }
        ctx.check()
    }

    /// The Hessian sums over `rows` with the gradient pass's at the same parameters.
    pub(super) fn hessian_pass(&mut self, rows: RowSet) -> Result<HessianSums> {
        let pass = self.pass_sums(&self.evaluation_step(), rows)?;
        let shape = self.kernel_shape()?;
        let p = shape.parameters() as usize;
        let pairs = shape.groups(Pass::Hessian) as usize;
        let mut hessian = vec![0.0; p * p];
        self.over_segments(Pass::Hessian, rows, &mut |values, segment| {
            add_tiles(&mut hessian, p, values, segment.blocks as usize, pairs);
        })?;
        mirror(&mut hessian, p);
        Ok(HessianSums { pass, hessian })
    }

    /// The Hessian-vector sums Σ w·x̃ ⊗ (C·(x̃·V)) over `rows`.
    pub(super) fn hessian_vector_pass(&mut self, v: &[f64], rows: RowSet) -> Result<Vec<f64>> {
        let shape = self.kernel_shape()?;
        let p = shape.parameters() as usize;
        let direction: Vec<f32> = v.iter().map(|&x| x as f32).collect();
        let buffers = self.curvature.as_ref().expect("made by kernel_shape");
        self.ctx
            .queue()
            .write_buffer(&buffers.direction, 0, bytemuck::cast_slice(&direction));
        let mut out = vec![0.0; p];
        self.over_segments(Pass::Product, rows, &mut |values, segment| {
            for block in values.chunks_exact(p).take(segment.blocks as usize) {
                for (o, &b) in out.iter_mut().zip(block) {
                    *o += f64::from(b);
                }
            }
        })?;
        Ok(out)
    }

    /// The curvature passes' shape (making their buffers).
    fn kernel_shape(&mut self) -> Result<Shape> {
        self.curvature_buffers()?;
        Ok(self.curvature.as_ref().expect("made above").shape)
    }
}

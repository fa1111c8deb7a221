//! A session's device buffers and the bind groups over them, built once when the session
//! opens (as wgpu's examples build theirs): parameters, optimizer state, moments, setup,
//! class weights, the gradient and its per-workgroup partials, the status word, the step
//! records and the staging buffer for reading back.

use super::super::context::GpuContext;
use super::super::dispatch::{Slices, moment_groups, record_bind_group};
use super::super::kernels::{Kernels, SetupUniform, StepUniform, Tuning};
use super::super::rows::{Plan, STORAGE, bind_group};
use crate::error::{Error, Result};

/// Steps recorded per submission (and step records in the uniform buffer).
pub(super) const STEPS_PER_SUBMIT: usize = 256;

pub(super) struct Buffers {
    /// Raw-space parameters, (d + 1)·k: what every gradient pass reads.
    pub params: wgpu::Buffer,
    /// The optimizer's parameters (standardized space when standardizing) and state.
    pub theta: wgpu::Buffer,
    pub state: wgpu::Buffer,
    /// μ (d) then s = 1/σ (d), when standardizing.
    pub moments: wgpu::Buffer,
    pub setup_buffer: wgpu::Buffer,
    /// One weight per class slot (max(k, 2)); ones without class weights.
    pub class_weights: wgpu::Buffer,
    pub grad: wgpu::Buffer,
    pub partials: wgpu::Buffer,
    pub status: wgpu::Buffer,
    pub steps: wgpu::Buffer,
    pub staging: wgpu::Buffer,
    pub step_bind: wgpu::BindGroup,
    /// Slice records (see `shaders/gradient.wgsl`), one per `slice_stride` bytes.
    pub slices: Slices,
    pub gradient_bind: wgpu::BindGroup,
    pub reduce_bind: wgpu::BindGroup,
    pub update_bind: wgpu::BindGroup,
    /// Bytes between step records (the device's uniform offset alignment).
    pub step_stride: u64,
    /// Workgroups per shard the partials buffer has room for.
    pub max_groups: u32,
    /// Workgroups per shard of the moments pass ([`moment_groups`]).
    pub moment_groups: u32,
}

/// The partials buffer and how many workgroups per shard it serves.
struct Partials {
    buffer: wgpu::Buffer,
    max_groups: u32,
    moment_groups: u32,
}

impl Buffers {
    /// The buffers of a session of `rows` rows of `features` features, laid out as
    /// `plan` shards them, for `kernels`.
    pub fn new(
        ctx: &GpuContext,
        kernels: &Kernels,
        features: usize,
        rows: usize,
        plan: &Plan,
        tuning: Tuning,
    ) -> Result<Self> {
        let constants = kernels.constants;
        let p = u64::from(constants.p);
        let d = features as u64;
        let n = (d + 1) * u64::from(constants.k);
        let read_write = STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;
        let uniform = wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST;
        let params = ctx.buffer("downhill.params", 4 * n, read_write, false)?;
        let theta = ctx.buffer("downhill.theta", 4 * n, read_write, false)?;
        let state = ctx.buffer("downhill.state", 8 * n, read_write, false)?;
        let moments = ctx.buffer("downhill.moments", 8 * d, read_write, false)?;
        let setup_bytes = size_of::<SetupUniform>() as u64;
        let setup_buffer = ctx.buffer("downhill.setup", setup_bytes, uniform, false)?;
        let class_slots = u64::from(constants.k.max(2));
        let class_weights =
            ctx.buffer("downhill.class_weights", 4 * class_slots, read_write, false)?;
        let copied = STORAGE | wgpu::BufferUsages::COPY_SRC;
        let grad = ctx.buffer("downhill.grad", 4 * p, copied, false)?;
        let status = ctx.buffer("downhill.status", 8, read_write, false)?;
        let partials = Self::partials(ctx, kernels, features, plan, tuning)?;
        let step_stride = (size_of::<StepUniform>() as u64)
            .next_multiple_of(u64::from(ctx.limits().min_uniform_buffer_offset_alignment));
        let step_bytes = step_stride * STEPS_PER_SUBMIT as u64;
        let steps = ctx.buffer("downhill.steps", step_bytes, uniform, false)?;
        let staging = ctx.buffer(
            "downhill.staging",
            (4 * p).max(8 * n).max(8 * d),
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            false,
        )?;
        let step_bind = record_bind_group(
            ctx,
            "downhill.step",
            &kernels.layouts.step,
            &steps,
            size_of::<StepUniform>(),
        );
        let slices = Slices::new(ctx, kernels, rows, partials.max_groups)?;
        let layouts = &kernels.layouts;
        let gradient_bind = bind_group(
            ctx,
            "downhill.gradient",
            &layouts.gradient,
            &[
                &params,
                &partials.buffer,
                &setup_buffer,
                &class_weights,
                &slices.deltas,
            ],
        );
        let reduce_bind = bind_group(
            ctx,
            "downhill.reduce",
            &layouts.reduce,
            &[&partials.buffer, &grad],
        );
        let update = [
            &params,
            &grad,
            &status,
            &theta,
            &state,
            &moments,
            &setup_buffer,
        ];
        let update_bind = bind_group(ctx, "downhill.update", &layouts.update, &update);
        Ok(Buffers {
            params,
            theta,
            state,
            moments,
            setup_buffer,
            class_weights,
            grad,
            partials: partials.buffer,
            status,
            steps,
            staging,
            step_bind,
            slices,
            gradient_bind,
            reduce_bind,
            update_bind,
            step_stride,
            max_groups: partials.max_groups,
            moment_groups: partials.moment_groups,
        })
    }

    /// The per-workgroup partial sums of every shard: P numbers per workgroup for the
    /// gradient passes, 2d + max(k, 2) + 1 for the moments pass, with as many workgroups
    /// per shard as one binding holds.
    fn partials(
        ctx: &GpuContext,
        kernels: &Kernels,
        features: usize,
        plan: &Plan,
        tuning: Tuning,
    ) -> Result<Partials> {
        let constants = kernels.constants;
        let (d, shards) = (features as u64, plan.ranges.len() as u64);
        let class_slots = u64::from(constants.k.max(2));
        let moment_numbers = 2 * d + class_slots + 1;
        let per_group = u64::from(constants.p).max(moment_numbers);
        let partial_bytes = 4 * per_group * shards;
        let limit = ctx.storage_binding_limit();
        let max_groups = (limit / partial_bytes).min(u64::from(tuning.max_groups)) as u32;
        if max_groups == 0 {
            return Err(Error::TooLarge {
                what: "the per-workgroup gradient partials".into(),
                bytes: partial_bytes,
                limit_name: "max_storage_buffer_binding_size",
                limit,
                hint: "",
            });
        }
        let moment_groups = moment_groups(
            ctx,
            constants.loop_limit,
            plan.ranges.iter().map(|r| r.len()).max().unwrap_or(0) as u64,
            d,
            tuning.workgroup,
            class_slots,
            (shards, max_groups),
        )?;
        let moment_bytes = 4 * moment_numbers * shards;
        let buffer = ctx.buffer(
            "downhill.partials",
            (partial_bytes * u64::from(max_groups)).max(moment_bytes * u64::from(moment_groups)),
            STORAGE | wgpu::BufferUsages::COPY_SRC,
            false,
        )?;
        Ok(Partials {
            buffer,
            max_groups,
            moment_groups,
        })
    }
}

//! The session contract on the device: [`Session`] over the recorded passes.

use super::*;

impl Session for GpuSession<'_> {
    fn describe(&self) -> String {
        match &self.device_rows {
            DeviceRows::Streamed(_) => format!(
                "gpu ({}; rows streamed in {} chunks)",
                self.ctx.describe(),
                self.ranges.len()
            ),
            DeviceRows::Resident(_) => format!("gpu ({})", self.ctx.describe()),
        }
    }

    fn objective(&self) -> Objective {
        self.objective
    }

    fn rows(&self) -> usize {
        self.rows
    }

    fn features(&self) -> usize {
        self.features
    }

    fn set_params(&mut self, params: &Params) -> Result<()> {
        check_params_shape(params, self.features, self.objective.outputs())?;
        let raw: Vec<f64> = params.flat();
        self.write_raw(&raw);
        self.ctx.check()
    }

    fn params(&mut self) -> Result<Params> {
        let count = (self.features as u32 + 1) * self.kernels.constants.k;
        let encoder = self.encoder("downhill.params");
        let values = self.read_back(encoder, &self.buffers.params, 0, count)?;
        Ok(Params::from_flat(
            self.features,
            self.objective.outputs(),
            &values,
        ))
    }

    fn gradient(&mut self) -> Result<Gradient> {
        let values = self.evaluate_rows(RowSet::All, 0, self.kernels.constants.p)?;
        Ok(self.gradient_from(&values))
    }

    fn configure(&mut self, setup: &Setup) -> Result<Configured> {
        setup.rule.validate()?;
        if setup.standardize {
            // update_params: each bias entry's shift is a sum over the features.
            check_loops(
                || format!("standardized descent on {} features", self.features),
                self.features as u64 + 1,
                self.kernels.constants.loop_limit,
            )?;
        }
        let params = self.params()?;
        let raw: Vec<f64> = params.flat();
        let (d, k) = (self.features, self.objective.outputs());
        self.setup = setup.clone();
        self.standardization = None;
        // The training rows' sums with every class weighing 1.
        self.write_setup(&[1.0; 2]);
        let rows = self.held_rows();
        let configured = host::configuration(setup, d, k, rows, &mut |c| self.column_moments(c))?;
        if let Some(st) = &configured.standardization {
            let values: Vec<f32> = st.mean.iter().chain(&st.scale).map(|&v| v as f32).collect();
            self.ctx
                .queue()
                .write_buffer(&self.buffers.moments, 0, bytemuck::cast_slice(&values));
        }
        self.standardization = configured.standardization.clone();
        let class_weights = configured.class_weights.as_deref();
        self.write_setup(class_weights.unwrap_or(&[]));
        self.write_raw(&raw);
        let state = vec![0.0f32; 2 * raw.len()];
        self.ctx
            .queue()
            .write_buffer(&self.buffers.state, 0, bytemuck::cast_slice(&state));
        self.ctx.check()?;
        Ok(configured)
    }

    fn evaluate(&mut self, rows: RowSet) -> Result<Evaluation> {
        let v = self.evaluate_rows(rows, self.loss_entry(), 5)?;
        Ok(self.evaluation_from(&v))
    }

    fn evaluate_and_run(
        &mut self,
        steps: &[Step],
        held_out: bool,
    ) -> Result<(Evaluations, Option<RunOutcome>)> {
        let Some(first) = steps.first().filter(|s| s.batch == self.full_batch()) else {
            return evaluate_then_run(self, steps, held_out);
        };
        // The first step on its own: its pass over every row leaves the loss and metrics
        // of the parameters before it in `grad` (the held-out rows' after the training
        // rows', when asked for), read back once the step is done. The update refuses a
        // step whose loss is not finite, so then none has run.
        self.clear_status();
        let mut uniform = self.step_uniform(first, 0, RowSet::Training);
        if held_out {
            uniform.rows = ROWS_TRAINING_AND_HELD_OUT;
        }
        self.write_records(&[uniform]);
        let encoder = self.one_step(&uniform, true)?;
        let v = self.read_back(encoder, &self.buffers.grad, self.loss_entry(), 10)?;
        let training = self.evaluation_from(&v[..5]);
        let evaluations = Evaluations {
            training,
            validation: held_out.then(|| self.evaluation_from(&v[5..])),
        };
        if !training.loss.is_finite() {
            return Ok((evaluations, None));
        }
        let outcome = match self.status()? {
            RunOutcome::Completed if steps.len() > 1 => match self.run(&steps[1..])? {
                RunOutcome::Diverged { step } => RunOutcome::Diverged { step: step + 1 },
                completed => completed,
            },
            first => first,
        };
        Ok((evaluations, Some(outcome)))
    }

    fn pass_sums(&mut self, step: &Step, rows: RowSet) -> Result<PassSums> {
        let uniform = self.step_uniform(step, 0, rows);
        self.write_records(&[uniform]);
        let encoder = self.one_step(&uniform, false)?;
        let values = self.read_back(encoder, &self.buffers.grad, 0, self.kernels.constants.p)?;
        let n = (self.features + 1) * self.objective.outputs();
        let all: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        // The reduction wrote the weighted means of the gradient and the loss.
        let weight = all[n + 1];
        Ok(PassSums {
            gradient: all[..n].iter().map(|g| g * weight).collect(),
            metrics: [all[n] * weight, weight, all[n + 2], all[n + 3], all[n + 4]],
        })
    }

    fn has_curvature(&self) -> bool {
        true
    }

    fn hessian_sums(&mut self, rows: RowSet) -> Result<crate::descent::HessianSums> {
        self.hessian_pass(rows)
    }

    fn hessian_vector_sums(&mut self, v: &[f64], rows: RowSet) -> Result<Vec<f64>> {
        host::check_direction(v, (self.features + 1) * self.objective.outputs())?;
        self.hessian_vector_pass(v, rows)
    }

    fn column_sums(&mut self, center: &[f64]) -> Result<Vec<f64>> {
        self.column_moments(center)
    }

    fn snapshot(&mut self) -> Result<Snapshot> {
        let n = (self.features as u32 + 1) * self.kernels.constants.k;
        let len = self.setup.rule.optimizer.state_len() as u32 * n;
        let read = |buffer: &wgpu::Buffer, count: u32| -> Result<Vec<f64>> {
            if count == 0 {
                return Ok(Vec::new());
            }
            let values = self.read_back(self.encoder("downhill.snapshot"), buffer, 0, count)?;
            Ok(values.iter().map(|&v| f64::from(v)).collect())
        };
        Ok(Snapshot {
            theta: read(&self.buffers.theta, n)?,
            state: read(&self.buffers.state, len)?,
            raw: read(&self.buffers.params, n)?,
        })
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        let n = (self.features + 1) * self.objective.outputs();
        snapshot.check(n, self.setup.rule.optimizer.state_len() * n)?;
        let queue = self.ctx.queue();
        for (buffer, values) in [
            (&self.buffers.theta, &snapshot.theta),
            (&self.buffers.state, &snapshot.state),
            (&self.buffers.params, &snapshot.raw),
        ] {
            let values: Vec<f32> = values.iter().map(|&v| v as f32).collect();
            if !values.is_empty() {
                queue.write_buffer(buffer, 0, bytemuck::cast_slice(&values));
            }
        }
        self.ctx.check()
    }

    fn predict(&mut self) -> Result<Vec<f64>> {
        self.predict_rows()
    }

    fn run(&mut self, steps: &[Step]) -> Result<RunOutcome> {
        self.clear_status();
        if self.is_streamed() {
            self.run_streamed(steps)?;
        } else {
            self.run_resident(steps);
        }
        self.status()
    }
}

//! The GPU's sparse session (`shaders/sparse.wgsl`): its gradient, Hessian-vector and
//! prediction passes equal the reference's on the same rows made dense, for every model,
//! a custom loss, binary rows and many row blocks, with the same bits on a rerun, and so
//! does its exact Hessian; every
//! solver it takes and the training options reach the CPU's optimum; rows cut into
//! shards, or streamed through one slot, give the same passes and fits; and what it
//! refuses (a custom softmax loss, a row past the streaming budget) it
//! names.

mod common;

use downhill::backend::cpu::Cpu;
use downhill::backend::gpu::Gpu;
use downhill::backend::reference::Reference;
use downhill::backend::{Backend, Data, GpuOptions, RowSet, Session};
use downhill::custom::{CustomLoss, LossKind};
use downhill::descent::ClassWeights;
use downhill::optim::OptimizerKind;
use downhill::train::Solver;
use downhill::{Model, Objective, SparseDataset, Trainer};

use common::{assert_close, random_params, sparse_problem};

/// f32 sums of a few hundred rows against f64 ones.
const PASS_TOL: f64 = 2e-5;

fn objectives() -> Vec<Objective> {
    let custom = CustomLoss::parse("(z - y)^2 / 2 + (z - y)^4 / 12", LossKind::Output)
        .unwrap()
        .register();
    vec![
        Objective::linear(),
        Objective::logistic(),
        Objective::softmax(3).unwrap(),
        Objective::new(Model::Linear, Some(custom), 1).unwrap(),
    ]
}

/// The same pattern with every value 1: rows that keep no values.
fn binary(s: &SparseDataset) -> SparseDataset {
    SparseDataset::from_csr(
        s.offsets().to_vec(),
        s.indices().to_vec(),
        None,
        s.y().to_vec(),
        s.features(),
    )
    .unwrap()
}

#[test]
fn passes_equal_the_reference() {
    let Some(gpu) = common::gpu() else { return };
    for objective in objectives() {
        let values = sparse_problem(1300, 12, objective, 3);
        for (kind, sparse) in [("values", values.clone()), ("binary", binary(&values))] {
            let dense = sparse.to_dense(0..sparse.rows()).unwrap();
            let k = objective.outputs();
            let params = random_params(12, k, 0.3, 5);
            let v = random_params(12, k, 0.7, 9).flat();
            let mut g = gpu.open(Data::Sparse(&sparse), objective).unwrap();
            let mut r = Reference.open(Data::Host(&dense), objective).unwrap();
            assert!(g.describe().contains("sparse rows"), "{}", g.describe());
            g.set_params(&params).unwrap();
            r.set_params(&params).unwrap();
            assert_passes_match(&format!("{objective}, {kind}"), g.as_mut(), r.as_mut(), &v);
        }
    }
}

/// The gradient pass (loss, weights, bias), the Hessian-vector product along `v`, z and
/// the Hessian of `g` equal the reference `r`'s at the parameters both hold (the products
/// scaled by their largest entry), and `g` gives the same bits on a rerun.
fn assert_passes_match(what: &str, g: &mut dyn Session, r: &mut dyn Session, v: &[f64]) {
    let (gg, gr) = (g.gradient().unwrap(), r.gradient().unwrap());
    assert!(
        (gg.loss - gr.loss).abs() <= PASS_TOL * gr.loss.abs().max(1.0),
        "{what}: loss {} vs {}",
        gg.loss,
        gr.loss
    );
    assert_close(what, &gg.weights, &gr.weights, PASS_TOL);
    assert_close(what, &gg.bias, &gr.bias, PASS_TOL);
    let scaled = |got: &[f64], want: &[f64], name: &str| {
        let scale = want.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        let scaled = |h: &[f64]| h.iter().map(|x| x / scale).collect::<Vec<_>>();
        assert_close(
            &format!("{what}: {name}"),
            &scaled(got),
            &scaled(want),
            PASS_TOL,
        );
    };
    let (vg, vr) = (
        g.hessian_vector_sums(v, RowSet::All).unwrap(),
        r.hessian_vector_sums(v, RowSet::All).unwrap(),
    );
    scaled(&vg, &vr, "Hv");
    assert_close(
        &format!("{what}: z"),
        &g.predict().unwrap(),
        &r.predict().unwrap(),
        PASS_TOL,
    );
    let (hg, hr) = (
        g.hessian_sums(RowSet::All).unwrap().hessian,
        r.hessian_sums(RowSet::All).unwrap().hessian,
    );
    scaled(&hg, &hr, "H");
    assert_eq!(g.gradient().unwrap(), gg, "{what}: rerun");
    let again = g.hessian_sums(RowSet::All).unwrap().hessian;
    assert_eq!(again, hg, "{what}: H rerun");
}

/// The GPU with rows cut into shards of at most `shard` bytes a buffer, or streamed
/// through one slot past `budget` bytes of rows.
fn placed(gpu: &Gpu, shard: Option<u64>, budget: Option<u64>) -> Gpu {
    gpu.with_options(GpuOptions {
        max_shard_bytes: shard,
        max_device_bytes: budget,
        ..gpu.options()
    })
}

#[test]
fn shards_and_streamed_rows_give_the_same_passes() {
    let Some(gpu) = common::gpu() else { return };
    // z, δ and the metrics take 4·(2k + 5) bytes a row: 4 096 bytes hold 93 rows of 3
    // classes, so 1 300 rows make 14 shards or more; 8 192 bytes of rows stream them.
    let placements = [
        ("shards", placed(gpu, Some(4096), None), "shards,"),
        ("streamed", placed(gpu, None, Some(8192)), "streamed"),
    ];
    for objective in objectives() {
        let sparse = sparse_problem(1300, 12, objective, 3);
        let dense = sparse.to_dense(0..sparse.rows()).unwrap();
        let k = objective.outputs();
        let params = random_params(12, k, 0.3, 5);
        let v = random_params(12, k, 0.7, 9).flat();
        for (name, placed, described) in &placements {
            let what = format!("{objective}, {name}");
            let mut g = placed.open(Data::Sparse(&sparse), objective).unwrap();
            let mut r = Reference.open(Data::Host(&dense), objective).unwrap();
            assert!(g.describe().contains(described), "{what}: {}", g.describe());
            g.set_params(&params).unwrap();
            r.set_params(&params).unwrap();
            assert_passes_match(&what, g.as_mut(), r.as_mut(), &v);
        }
    }
}

#[test]
fn streamed_rows_reach_the_cpus_optimum() {
    let Some(gpu) = common::gpu() else { return };
    let objective = Objective::softmax(3).unwrap();
    let sparse = sparse_problem(900, 10, objective, 4);
    let streamed = placed(gpu, None, Some(6000));
    for trainer in [
        Trainer::new().l2(1e-3),
        Trainer::new().l2(1e-3).solver(Solver::Newton),
        Trainer::new().l2(1e-3).solver(Solver::Lbfgs),
        Trainer::new()
            .optimizer(OptimizerKind::Adam)
            .lr(0.01)
            .epochs(5)
            .batch_size(128),
    ] {
        let on_gpu = downhill::fit(&streamed, &sparse, objective, &trainer).unwrap();
        let on_cpu = downhill::fit(&Cpu::default(), &sparse, objective, &trainer).unwrap();
        assert_close(
            "streamed",
            &on_gpu.params.flat(),
            &on_cpu.params.flat(),
            1e-3,
        );
        let again = downhill::fit(&streamed, &sparse, objective, &trainer).unwrap();
        assert_eq!(again.params, on_gpu.params, "streamed: rerun");
    }
}

#[test]
fn a_row_past_the_streaming_budget_is_refused_by_name() {
    let Some(gpu) = common::gpu() else { return };
    let sparse = sparse_problem(300, 40, Objective::logistic(), 2);
    let e = placed(gpu, None, Some(64))
        .open(Data::Sparse(&sparse), Objective::logistic())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("sparse row 0") && e.contains("--max-device-bytes") && e.contains("64"),
        "{e}"
    );
}

#[test]
fn fits_reach_the_cpus_optimum() {
    let Some(gpu) = common::gpu() else { return };
    let trainers: Vec<(&str, Trainer)> = vec![
        ("auto (newton-cg)", Trainer::new().l2(1e-3)),
        ("newton", Trainer::new().l2(1e-3).solver(Solver::Newton)),
        ("lbfgs", Trainer::new().l2(1e-3).solver(Solver::Lbfgs)),
        ("lbfgs, l1", Trainer::new().l1(2e-3).solver(Solver::Lbfgs)),
        (
            "newton-cg, standardized",
            Trainer::new()
                .l2(1e-2)
                .standardize(true)
                .solver(Solver::NewtonCg),
        ),
        (
            "lbfgs, no intercept",
            Trainer::new()
                .l2(1e-3)
                .fit_intercept(false)
                .solver(Solver::Lbfgs),
        ),
        (
            "adam, mini-batches, held out",
            Trainer::new()
                .optimizer(OptimizerKind::Adam)
                .lr(0.01)
                .epochs(10)
                .batch_size(128)
                .validation_fraction(0.2),
        ),
    ];
    for objective in objectives().into_iter().take(3) {
        let sparse = sparse_problem(900, 10, objective, 4);
        let weights: Vec<f32> = (0..900).map(|i| 0.5 + (i % 3) as f32 * 0.5).collect();
        let sparse = sparse.with_weights(weights).unwrap();
        for (name, trainer) in &trainers {
            let mut trainer = trainer.clone();
            if objective.model() != Model::Linear {
                trainer = trainer.class_weights(ClassWeights::Balanced);
            }
            let what = format!("{objective}, {name}");
            let on_gpu = downhill::fit(gpu, &sparse, objective, &trainer).unwrap();
            let on_cpu = downhill::fit(&Cpu::default(), &sparse, objective, &trainer).unwrap();
            // f32 passes: the solvers stop where f32 rounding hides F's decrease.
            let tol = if name.contains("l1") || name.contains("adam") {
                1e-3
            } else {
                2e-4
            };
            assert_close(&what, &on_gpu.params.flat(), &on_cpu.params.flat(), tol);
            if name.starts_with("auto") {
                let solved = on_gpu.solved.as_ref().expect("a solver's fit");
                assert_eq!(solved.solver, Solver::NewtonCg, "{what}");
            }
            let again = downhill::fit(gpu, &sparse, objective, &trainer).unwrap();
            assert_eq!(again.params, on_gpu.params, "{what}: rerun");
        }
    }
}

#[test]
fn what_it_does_not_build_it_names() {
    let Some(gpu) = common::gpu() else { return };
    let custom = CustomLoss::parse("-t * ln(p)", LossKind::Class)
        .unwrap()
        .register();
    let softmax = Objective::new(Model::Softmax, Some(custom), 3).unwrap();
    let labels = sparse_problem(60, 4, Objective::softmax(3).unwrap(), 1);
    let e = gpu
        .open(Data::Sparse(&labels), softmax)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("custom softmax loss") && e.contains("--backend cpu"),
        "{e}"
    );
}

#[test]
fn a_column_longer_than_a_drivers_loop_limit_is_summed_whole() {
    let Some(gpu) = common::gpu() else { return };
    // Column 0 in each of 70 000 rows: past llvmpipe's 65 535 loop iterations, which a
    // single invocation summing the column would stop at without an error.
    let n = 70_000;
    let mut offsets = vec![0u64];
    let (mut indices, mut values) = (Vec::new(), Vec::new());
    for i in 0..n {
        indices.extend([0, 1 + (i % 7) as u32]);
        values.extend([1.0, ((i % 13) as f32 - 6.0) / 4.0]);
        offsets.push(indices.len() as u64);
    }
    let y: Vec<f32> = (0..n).map(|i| ((i * 7919) % 3 == 0) as u8 as f32).collect();
    let sparse = SparseDataset::from_csr(offsets, indices, Some(values), y, 8).unwrap();
    let objective = Objective::logistic();
    let params = random_params(8, 1, 0.3, 2);
    let v = random_params(8, 1, 0.5, 3).flat();
    let cpu = Cpu::default();
    let mut c = cpu.open(Data::Sparse(&sparse), objective).unwrap();
    let mut g = gpu.open(Data::Sparse(&sparse), objective).unwrap();
    c.set_params(&params).unwrap();
    g.set_params(&params).unwrap();
    let (gc, gg) = (c.gradient().unwrap(), g.gradient().unwrap());
    assert_close("gradient", &gg.weights, &gc.weights, 1e-6);
    let (hc, hg) = (
        c.hessian_vector_sums(&v, RowSet::All).unwrap(),
        g.hessian_vector_sums(&v, RowSet::All).unwrap(),
    );
    let scale = hc.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    let scaled = |h: &[f64]| h.iter().map(|x| x / scale).collect::<Vec<_>>();
    assert_close("Hv", &scaled(&hg), &scaled(&hc), PASS_TOL);
}

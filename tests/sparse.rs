//! Sparse rows (CSR) against the same rows made dense: every pass and every fit of the
//! CPU's sparse session equals the dense backends' within rounding, for every model,
//! solver and training option, and reruns give the same bits. The reference takes sparse
//! rows by making them dense. The GPU's sparse session is tests/gpu_sparse.rs.

mod common;

use downhill::backend::cpu::Cpu;
use downhill::backend::parallel::Parallel;
use downhill::backend::reference::Reference;
use downhill::backend::{Backend, Data, RowSet};
use downhill::descent::ClassWeights;
use downhill::optim::OptimizerKind;
use downhill::train::Solver;
use downhill::{Dataset, Objective, Params, SparseDataset, Trainer};

use common::{assert_close, random_params, sparse_problem};

fn objectives() -> [Objective; 3] {
    [
        Objective::linear(),
        Objective::logistic(),
        Objective::softmax(3).unwrap(),
    ]
}

#[test]
fn sparse_passes_equal_the_dense_references() {
    for objective in objectives() {
        let sparse = sparse_problem(700, 12, objective, 3);
        let dense = sparse.to_dense(0..sparse.rows()).unwrap();
        let k = objective.outputs();
        let params = random_params(12, k, 0.3, 5);
        let v = random_params(12, k, 0.7, 9).flat();
        let cpu = Cpu::default();
        let mut s = cpu.open(Data::Sparse(&sparse), objective).unwrap();
        let mut r = Reference.open(Data::Host(&dense), objective).unwrap();
        assert!(s.describe().contains("sparse"), "{}", s.describe());
        for session in [&mut s, &mut r] {
            session.set_params(&params).unwrap();
        }
        let what = format!("{objective}");
        let (gs, gr) = (s.gradient().unwrap(), r.gradient().unwrap());
        assert!(
            (gs.loss - gr.loss).abs() <= 1e-12 * gr.loss.abs(),
            "{what}: loss"
        );
        assert_close(&what, &gs.weights, &gr.weights, 1e-12);
        assert_close(&what, &gs.bias, &gr.bias, 1e-12);
        let (hs, hr) = (
            s.hessian_sums(RowSet::All).unwrap(),
            r.hessian_sums(RowSet::All).unwrap(),
        );
        assert_close(&format!("{what}: Hessian"), &hs.hessian, &hr.hessian, 1e-12);
        let (vs, vr) = (
            s.hessian_vector_sums(&v, RowSet::All).unwrap(),
            r.hessian_vector_sums(&v, RowSet::All).unwrap(),
        );
        assert_close(&format!("{what}: Hv"), &vs, &vr, 1e-12);
        let center: Vec<f64> = (0..12).map(|j| j as f64 * 0.1).collect();
        let (cs, cr) = (
            s.column_sums(&center).unwrap(),
            r.column_sums(&center).unwrap(),
        );
        assert_close(&format!("{what}: column sums"), &cs, &cr, 1e-9);
        assert_close(
            &format!("{what}: z"),
            &s.predict().unwrap(),
            &r.predict().unwrap(),
            1e-12,
        );
        // The same bits again.
        assert_eq!(s.gradient().unwrap(), gs, "{what}: rerun");
    }
}

#[test]
fn every_solver_and_option_fits_sparse_rows_as_it_fits_them_dense() {
    let trainers: Vec<(&str, Trainer)> = vec![
        ("auto", Trainer::new().l2(1e-3)),
        (
            "newton-cg",
            Trainer::new().l2(1e-3).solver(Solver::NewtonCg),
        ),
        ("lbfgs, l1", Trainer::new().l1(2e-3).solver(Solver::Lbfgs)),
        (
            "newton, standardized",
            Trainer::new()
                .l2(1e-2)
                .standardize(true)
                .solver(Solver::Newton),
        ),
        ("no intercept", Trainer::new().l2(1e-3).fit_intercept(false)),
        (
            "adam, mini-batches, held out",
            Trainer::new()
                .optimizer(OptimizerKind::Adam)
                .lr(0.01)
                .epochs(20)
                .batch_size(64)
                .validation_fraction(0.2),
        ),
    ];
    for objective in objectives() {
        let sparse = sparse_problem(900, 10, objective, 4);
        let weights: Vec<f32> = (0..900).map(|i| 0.5 + (i % 3) as f32 * 0.5).collect();
        let sparse = sparse.with_weights(weights).unwrap();
        let dense: Dataset = sparse.to_dense(0..sparse.rows()).unwrap();
        for (name, trainer) in &trainers {
            let mut trainer = trainer.clone();
            if objective.model() != downhill::Model::Linear {
                trainer = trainer.class_weights(ClassWeights::Balanced);
            }
            let what = format!("{objective}, {name}");
            // The reference on the dense rows does the same f64 arithmetic, in another
            // order; the CPU's dense passes sum in f32 lanes. Solvers may stop a few
            // iterations apart at their tolerance, at the same optimum.
            let exact = downhill::fit(&Reference, &dense, objective, &trainer).unwrap();
            let on_dense = downhill::fit(&Cpu::default(), &dense, objective, &trainer).unwrap();
            let on_sparse = fit_sparse(&Cpu::default(), &sparse, objective, &trainer);
            let tol = if name.contains("adam") { 1e-4 } else { 1e-6 };
            assert_close(&what, &on_sparse.params.flat(), &exact.params.flat(), tol);
            // OWL-QN stops where F's f32 rounding hides its decrease (see the README).
            let f32_tol = if name.contains("l1") { 1e-4 } else { tol };
            assert_close(
                &format!("{what}, cpu dense"),
                &on_sparse.params.flat(),
                &on_dense.params.flat(),
                f32_tol,
            );
            let again = fit_sparse(&Cpu::default(), &sparse, objective, &trainer);
            assert_eq!(again.params, on_sparse.params, "{what}: rerun");
            if *name == "auto" {
                // Sparse rows' Hessian costs their non-zeros squared: auto takes products.
                let solved = on_sparse.solved.as_ref().expect("a solver's fit");
                assert_eq!(solved.solver, Solver::NewtonCg, "{what}: {}", solved.why);
                assert!(solved.why.contains("sparse rows"), "{what}: {}", solved.why);
            }
            // Split across two workers, and on the reference (which makes them dense).
            let pair: Vec<Box<dyn Backend>> =
                vec![Box::new(Cpu::default()), Box::new(Cpu::default())];
            let parallel = fit_sparse(&Parallel::new(pair), &sparse, objective, &trainer);
            assert_close(
                &format!("{what}, 2 workers"),
                &parallel.params.flat(),
                &on_sparse.params.flat(),
                tol,
            );
            let reference = fit_sparse(&Reference, &sparse, objective, &trainer);
            assert_close(
                &format!("{what}, reference"),
                &reference.params.flat(),
                &on_sparse.params.flat(),
                tol,
            );
        }
    }
}

fn fit_sparse(
    backend: &dyn Backend,
    data: &SparseDataset,
    objective: Objective,
    trainer: &Trainer,
) -> downhill::Fit {
    let mut session = backend.open(Data::Sparse(data), objective).unwrap();
    trainer.fit(session.as_mut()).unwrap()
}

#[test]
fn parameters_of_the_wrong_shape_are_refused() {
    let sparse = sparse_problem(50, 4, Objective::logistic(), 1);
    let cpu = Cpu::default();
    let mut s = cpu
        .open(Data::Sparse(&sparse), Objective::logistic())
        .unwrap();
    assert!(s.set_params(&Params::zeros(5, 1)).is_err());
}

/// sprs matrices in and out: CSR and CSC, u32 and usize indices, f64 rounded, and back.
#[cfg(feature = "sprs")]
#[test]
fn sprs_matrices_make_the_same_dataset() {
    use downhill::sprs::{CsMat, CsMatI, TriMat};

    // Rows [0, 2.5, 0, -1], [], [4, 0, 0, 0.5]; labels 0, 1, 1.
    let csr: CsMat<f32> = CsMat::new(
        (3, 4),
        vec![0, 2, 2, 4],
        vec![1, 3, 0, 3],
        vec![2.5, -1.0, 4.0, 0.5],
    );
    let y = [0.0, 1.0, 1.0];
    let expected = SparseDataset::from_csr(
        vec![0, 2, 2, 4],
        vec![1, 3, 0, 3],
        Some(vec![2.5, -1.0, 4.0, 0.5]),
        y.to_vec(),
        4,
    )
    .unwrap();
    assert_eq!(SparseDataset::from_sprs(csr.view(), &y).unwrap(), expected);
    let csc = csr.to_other_storage();
    assert!(csc.is_csc());
    assert_eq!(SparseDataset::from_sprs(csc.view(), &y).unwrap(), expected);
    let narrow: CsMatI<f32, u32, u32> = CsMatI::new(
        (3, 4),
        vec![0u32, 2, 2, 4],
        vec![1u32, 3, 0, 3],
        vec![2.5, -1.0, 4.0, 0.5],
    );
    assert_eq!(
        SparseDataset::from_sprs(narrow.view(), &y).unwrap(),
        expected
    );
    // Triplets with a repeat: summed on the way to CSR (2.5 = 2 + 0.5).
    let mut triplets = TriMat::new((3, 4));
    for (i, j, v) in [
        (0, 1, 2.0),
        (0, 3, -1.0),
        (2, 0, 4.0),
        (2, 3, 0.5),
        (0, 1, 0.5),
    ] {
        triplets.add_triplet(i, j, v);
    }
    let wide: CsMat<f64> = triplets.to_csr();
    let from_f64 = SparseDataset::from_sprs_f64(wide.view(), &[0.0, 1.0, 1.0]).unwrap();
    assert_eq!(from_f64, expected);
    let back = expected.to_sprs().unwrap();
    assert_eq!(back.indptr().raw_storage(), &[0u64, 2, 2, 4]);
    assert_eq!(back.indices(), &[1u32, 3, 0, 3]);
    assert_eq!(back.data(), &[2.5f32, -1.0, 4.0, 0.5]);
    // A label count that does not match the rows is refused as from_csr refuses it.
    let e = SparseDataset::from_sprs(csr.view(), &[0.0]).unwrap_err();
    assert!(e.to_string().contains("row offsets"), "{e}");
}

"""Sparse X: scipy matrices and arrays of every format, fitted on the CPU's sparse passes
to scikit-learn's exact optimum on the same sparse rows; predictions equal to the dense
rows'; the GPU's sparse passes reach the same optimum."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import linear_model as sk
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from test_optima import assert_same_fit, exact_logistic

import downhill
from conftest import need_gpu


def sparse_breast_cancer():
    """Breast cancer standardized with its small values zeroed: about half non-zero."""
    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    X[np.abs(X) < 0.5] = 0.0
    return sp.csr_matrix(X), y


@pytest.mark.parametrize("solver", ["auto", "newton-cg", "lbfgs"])
def test_logistic_on_sparse_rows_reaches_scikit_learns_optimum(solver):
    X, y = sparse_breast_cancer()
    ours = downhill.LogisticRegression(C=0.5, solver=solver, backend="cpu").fit(X, y)
    assert_same_fit(ours, exact_logistic(X, y, C=0.5))
    dense = downhill.LogisticRegression(C=0.5, solver=solver, backend="cpu").fit(X.toarray(), y)
    np.testing.assert_allclose(ours.predict_proba(X), dense.predict_proba(X.toarray()), atol=1e-6)


def test_multinomial_and_ridge_on_sparse_rows():
    X, y = load_digits(return_X_y=True)
    X = sp.csr_matrix(X)
    ours = downhill.LogisticRegression(C=1.0, backend="cpu").fit(X, y)
    assert_same_fit(ours, exact_logistic(X, y, C=1.0))
    X, y = load_diabetes(return_X_y=True)
    X[np.abs(X) < 0.02] = 0.0
    ours = downhill.Ridge(alpha=0.1, backend="cpu").fit(sp.csr_matrix(X), y)
    theirs = sk.Ridge(alpha=0.1).fit(X, y)
    assert_same_fit(ours, theirs)


@pytest.mark.parametrize(
    "convert",
    [sp.csc_matrix, sp.coo_matrix, sp.csr_array, sp.lil_matrix, sp.dok_matrix],
    ids=["csc", "coo", "csr_array", "lil", "dok"],
)
def test_every_format_and_index_width_fits_the_same(convert):
    X, y = sparse_breast_cancer()
    reference = downhill.LogisticRegression(backend="cpu").fit(X, y)
    other = convert(X)
    ours = downhill.LogisticRegression(backend="cpu").fit(other, y)
    np.testing.assert_array_equal(ours.coef_, reference.coef_)
    wide = X.copy()
    wide.indices = wide.indices.astype(np.int64)
    wide.indptr = wide.indptr.astype(np.int64)
    np.testing.assert_array_equal(
        downhill.LogisticRegression(backend="cpu").fit(wide, y).coef_, reference.coef_
    )


def test_sparse_rows_weights_and_auto_backend():
    X, y = sparse_breast_cancer()
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    ours = downhill.LogisticRegression(backend="auto").fit(X, y, sample_weight=w)
    assert ours.backend_.startswith("cpu"), ours.backend_
    theirs = sk.LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000)
    assert_same_fit(ours, theirs.fit(X, y, sample_weight=w))


def test_the_gpu_backend_fits_sparse_rows_to_the_same_optimum():
    need_gpu()
    X, y = sparse_breast_cancer()
    ours = downhill.LogisticRegression(C=0.5, backend="gpu").fit(X, y)
    assert ours.backend_.startswith("gpu"), ours.backend_
    assert_same_fit(ours, exact_logistic(X, y, C=0.5), tol=1e-3)
    np.testing.assert_allclose(ours.predict_proba(X), ours.predict_proba(X.toarray()), atol=1e-5)

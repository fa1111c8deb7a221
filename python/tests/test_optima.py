"""The fitted coefficients against scikit-learn's at the same C or alpha (its exact
solvers: newton-cholesky for LogisticRegression, the closed form for Ridge and
LinearRegression), on its own datasets: breast cancer, digits, diabetes. scikit-learn's
default lbfgs stops short of the optimum (on breast cancer by 2e-3 in the intercept), so
it is not the yardstick."""

import numpy as np
import pytest
from sklearn import linear_model as sk
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
from sklearn.preprocessing import StandardScaler

import downhill

TOL = 1e-4


def exact_logistic(X, y, **params):
    return sk.LogisticRegression(solver="newton-cholesky", tol=1e-12, max_iter=1000, **params).fit(
        X, y
    )


def assert_same_fit(ours, theirs, tol=TOL):
    np.testing.assert_allclose(
        ours.coef_, theirs.coef_, rtol=0, atol=tol * max(1, np.abs(theirs.coef_).max())
    )
    np.testing.assert_allclose(
        ours.intercept_,
        theirs.intercept_,
        rtol=0,
        atol=tol * max(1, np.abs(theirs.intercept_).max()),
    )


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_logistic_breast_cancer(backend, C):
    X, y = load_breast_cancer(return_X_y=True)
    ours = downhill.LogisticRegression(C=C, backend=backend).fit(X, y)
    assert_same_fit(ours, exact_logistic(X, y, C=C))
    assert list(ours.classes_) == [0, 1]
    assert ours.coef_.shape == (1, 30) and ours.intercept_.shape == (1,)


@pytest.mark.parametrize("solver", ["auto", "newton", "newton-cg", "lbfgs"])
def test_logistic_digits_multinomial(solver):
    X, y = load_digits(return_X_y=True)
    ours = downhill.LogisticRegression(C=1.0, solver=solver, backend="cpu").fit(X, y)
    theirs = exact_logistic(X, y, C=1.0)
    # The softmax's W is fixed only up to a common shift of the classes (the penalty
    # fixes the weights' shift; the intercepts' is fixed by both fits starting centred).
    assert_same_fit(ours, theirs)
    assert ours.coef_.shape == (10, 64)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_ridge_and_least_squares_diabetes():
    X, y = load_diabetes(return_X_y=True)
    for alpha in [0.01, 1.0, 100.0]:
        assert_same_fit(
            downhill.Ridge(alpha=alpha, backend="cpu").fit(X, y), sk.Ridge(alpha=alpha).fit(X, y)
        )
    assert_same_fit(
        downhill.LinearRegression(backend="cpu").fit(X, y), sk.LinearRegression().fit(X, y)
    )


def test_weights_classes_and_no_intercept_mean_what_they_mean_in_scikit_learn():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    w = np.random.RandomState(0).randint(0, 4, size=len(y)).astype(float)
    for params in [
        dict(class_weight="balanced"),
        dict(class_weight={0: 3.0, 1: 0.5}),
        dict(fit_intercept=False),
        dict(C=0.1, fit_intercept=False, class_weight="balanced"),
    ]:
        ours = downhill.LogisticRegression(backend="cpu", **params).fit(X, y, sample_weight=w)
        assert_same_fit(ours, exact_logistic(X, y, **params).fit(X, y, sample_weight=w))
        if params.get("fit_intercept") is False:
            assert np.all(ours.intercept_ == 0)
    # Integer weights are repeated rows.
    repeated = downhill.LogisticRegression(backend="cpu").fit(
        np.repeat(X, w.astype(int), axis=0), np.repeat(y, w.astype(int))
    )
    weighted = downhill.LogisticRegression(backend="cpu").fit(X, y, sample_weight=w)
    assert_same_fit(weighted, repeated, tol=1e-5)
    X, y = load_diabetes(return_X_y=True)
    assert_same_fit(
        downhill.Ridge(alpha=0.5, fit_intercept=False, backend="cpu").fit(
            X, y, sample_weight=w[: len(y)]
        ),
        sk.Ridge(alpha=0.5, fit_intercept=False).fit(X, y, sample_weight=w[: len(y)]),
    )


def test_l1_and_elastic_net_meet_their_optimality_conditions():
    # At the optimum of C Σ ℓ + λ₁‖w‖₁ (+ ½λ₂‖w‖²): where wⱼ ≠ 0, ∂/∂wⱼ of the smooth part
    # is −λ₁ sign(wⱼ); where wⱼ = 0, it is at most λ₁ in size. With C scaling the loss.
    # OWL-QN's line search compares values of F, which float32 rows resolve to about 1e-7
    # of F: it stops there, a few 1e-6 of the mean objective's gradient from the
    # conditions, which is 2e-3 of this summed one (C n = 285).
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    for penalty, ratio in [("l1", 1.0), ("elasticnet", 0.5)]:
        est = downhill.LogisticRegression(
            penalty=penalty,
            l1_ratio=ratio if penalty == "elasticnet" else None,
            C=0.5,
            backend="cpu",
        ).fit(X, y)
        w, b = est.coef_[0], est.intercept_[0]
        p = 1 / (1 + np.exp(-(X @ w + b)))
        smooth = 0.5 * (p - y) @ X + (1 - ratio) * w  # C Σ (p − y) x + λ₂ w, C = 0.5
        l1 = ratio
        nonzero = w != 0
        assert 0 < nonzero.sum() < len(w), "an L1 penalty this strong zeroes some weights"
        np.testing.assert_allclose(smooth[nonzero], -l1 * np.sign(w[nonzero]), atol=2e-3)
        assert np.all(np.abs(smooth[~nonzero]) <= l1 + 2e-3)
        assert abs(0.5 * np.sum(p - y)) < 2e-3  # the unpenalized intercept
        assert est._model.converged

"""scikit-learn's own estimator checks, on the CPU backend for every estimator and on the
GPU (lavapipe in CI) for LogisticRegression, with the expected failures
`downhill.expected_failed_checks` names and explains."""

from sklearn.utils.estimator_checks import parametrize_with_checks

import downhill
from conftest import need_gpu

CPU = [
    downhill.LinearRegression(backend="cpu"),
    downhill.Ridge(backend="cpu"),
    downhill.LogisticRegression(backend="cpu"),
    downhill.SGDClassifier(backend="cpu"),
    downhill.SGDRegressor(backend="cpu"),
]


@parametrize_with_checks(CPU, expected_failed_checks=downhill.expected_failed_checks)
def test_cpu(estimator, check):
    check(estimator)


@parametrize_with_checks(
    [downhill.LogisticRegression(backend="gpu")],
    expected_failed_checks=downhill.expected_failed_checks,
)
def test_gpu(estimator, check):
    need_gpu()
    check(estimator)


def test_the_expected_failures_are_few_and_explained():
    for estimator in CPU + [downhill.LogisticRegression(backend="gpu")]:
        failed = downhill.expected_failed_checks(estimator)
        # One reason at most: LinearRegression's holds for dense and sparse rows alike.
        assert len(set(failed.values())) <= 1, failed
        assert all(len(reason) > 40 for reason in failed.values())
    assert downhill.expected_failed_checks(downhill.LogisticRegression(backend="cpu")) == {}
    assert downhill.expected_failed_checks(downhill.Ridge(backend="cpu")) == {}

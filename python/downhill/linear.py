"""The estimators that reach the optimum: LinearRegression, Ridge and LogisticRegression,
solved by Newton, truncated Newton or L-BFGS (OWL-QN for an L1 penalty) to a relative
gradient tolerance, with scikit-learn's parameters and meanings."""

import numpy as np

from ._base import (
    SOLVERS,
    DownhillEstimator,
    LinearClassifier,
    LinearRegressor,
    check_positive,
    keep_params,
    total_weight,
)

TOL = 1e-8
"""The solvers' default tolerance: ‖∇F‖∞ relative to its value at the start."""


class _Solved(DownhillEstimator):
    def _solver_options(self, l1, l2):
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, not {self.solver!r}")
        check_positive("tol", self.tol, allow_zero=True)
        if self.max_iter is not None:
            check_positive("max_iter", self.max_iter)
        return dict(
            solver=self.solver,
            l1=l1,
            l2=l2,
            tol=float(self.tol),
            max_iter=None if self.max_iter is None else int(self.max_iter),
            fit_intercept=bool(self.fit_intercept),
        )


class _LeastSquares(LinearRegressor, _Solved):
    def _fit_squares(self, X, y, sample_weight, alpha):
        X, y, sample_weight = self._validate_fit(X, y, sample_weight, classifier=False)
        # Σ sᵢ rᵢ² + α‖w‖² over Σ sᵢ: downhill's weighted mean squared error + (λ₂/2)‖w‖².
        l2 = 2.0 * alpha / total_weight(sample_weight, len(y))
        fitted = self._fit_native(
            X, y, sample_weight, model="linear", **self._solver_options(0.0, l2)
        )
        self._warn_unless_converged(fitted)
        self.coef_ = fitted.weights()[:, 0].copy()
        self.intercept_ = float(fitted.bias()[0])
        self.n_iter_ = fitted.n_iter
        return self


class LinearRegression(_LeastSquares):
    """Ordinary least squares: min Σ sᵢ (yᵢ − xᵢ·w − b)².

    Solved by Newton (one step: the normal equations, in the standardized features'
    coordinates) where (d + 1)² fits, else L-BFGS; ``backend`` runs the passes over the
    rows: ``"auto"`` (a hardware GPU when there is one, else the CPU), ``"gpu"`` (any
    wgpu adapter, software ones included), ``"cpu"`` or ``"reference"`` (f64).
    ``devices`` (``"all"``, ``[0, 1]``, ``"cpu,0"``) splits the rows across several.
    """

    def __init__(
        self,
        *,
        fit_intercept=True,
        solver="auto",
        tol=TOL,
        max_iter=None,
        backend="auto",
        devices=None,
    ):
        keep_params(self, locals())

    def fit(self, X, y, sample_weight=None):
        return self._fit_squares(X, y, sample_weight, 0.0)


class Ridge(_LeastSquares):
    """Least squares with an L2 penalty, as scikit-learn's Ridge:
    min Σ sᵢ (yᵢ − xᵢ·w − b)² + α‖w‖² (the intercept is not penalized).

    Parameters as :class:`LinearRegression`'s, with ``alpha``.
    """

    def __init__(
        self,
        alpha=1.0,
        *,
        fit_intercept=True,
        solver="auto",
        tol=TOL,
        max_iter=None,
        backend="auto",
        devices=None,
    ):
        keep_params(self, locals())

    def fit(self, X, y, sample_weight=None):
        check_positive("alpha", self.alpha, allow_zero=True)
        return self._fit_squares(X, y, sample_weight, float(self.alpha))


class LogisticRegression(LinearClassifier, _Solved):
    """Logistic regression, binary (the sigmoid) or multinomial (the softmax) by the number
    of classes, as scikit-learn's:
    min C Σ sᵢ cᵧᵢ ℓ(yᵢ, xᵢ·W + b) + R(W), R = ½‖W‖² (``"l2"``), ‖W‖₁ (``"l1"``),
    l1_ratio‖W‖₁ + (1 − l1_ratio)½‖W‖² (``"elasticnet"``) or 0 (``None``, or C = inf);
    the intercept is not penalized.

    ``solver``: ``"auto"`` (Newton where the Hessian of (d + 1)·k parameters is small,
    Newton-CG there on sparse X, else L-BFGS; OWL-QN with an L1 part), ``"newton"``,
    ``"newton-cg"`` or ``"lbfgs"``.
    ``tol``: converged when ‖∇F‖∞ has fallen to ``tol`` times its value at the start
    (scikit-learn's tol means something else; downhill's default, 1e-8, reaches its
    optimum to about 1e-6 in the coefficients). ``class_weight``: None, ``"balanced"`` or a
    dict from label to weight, multiplied into the sample weights as scikit-learn does.
    ``backend`` and ``devices`` as :class:`LinearRegression`'s.
    """

    def __init__(
        self,
        penalty="l2",
        *,
        C=1.0,
        l1_ratio=None,
        fit_intercept=True,
        class_weight=None,
        solver="auto",
        tol=TOL,
        max_iter=None,
        backend="auto",
        devices=None,
    ):
        keep_params(self, locals())

    def _penalties(self, total):
        """(λ₁, λ₂) of downhill's weighted-mean objective for scikit-learn's C and R."""
        check_positive("C", self.C, allow_inf=True)
        if self.penalty not in ("l2", "l1", "elasticnet", None):
            raise ValueError(
                f"penalty must be 'l2', 'l1', 'elasticnet' or None, not {self.penalty!r}"
            )
        if self.penalty is None or np.isinf(self.C):
            return 0.0, 0.0
        scale = 1.0 / (self.C * total)
        if self.penalty == "l2":
            return 0.0, scale
        if self.penalty == "l1":
            return scale, 0.0
        ratio = self.l1_ratio
        if ratio is None or not (0.0 <= ratio <= 1.0):
            raise ValueError(f"penalty='elasticnet' needs l1_ratio in [0, 1], not {ratio!r}")
        return ratio * scale, (1.0 - ratio) * scale

    def fit(self, X, y, sample_weight=None):
        X, y, sample_weight = self._validate_fit(X, y, sample_weight, classifier=True)
        index, sample_weight = self._classes(y, sample_weight)
        k = len(self.classes_)
        l1, l2 = self._penalties(total_weight(sample_weight, len(y)))
        fitted = self._fit_native(
            X,
            index,
            sample_weight,
            model="logistic" if k == 2 else "softmax",
            classes=k,
            **self._solver_options(l1, l2),
        )
        self._warn_unless_converged(fitted)
        self.coef_ = np.ascontiguousarray(fitted.weights().T)
        self.intercept_ = fitted.bias().copy()
        self.n_iter_ = np.array([fitted.n_iter])
        return self

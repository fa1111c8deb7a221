"""The descent path: SGDClassifier and SGDRegressor, mini-batch gradient descent with
downhill's optimizers, with scikit-learn's parameter names where it has them."""

import numbers

import numpy as np

from ._base import DownhillEstimator, LinearClassifier, LinearRegressor, check_positive, keep_params

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")
LEARNING_RATES = ("constant", "invscaling")


class _Descent(DownhillEstimator):
    """Mini-batches of ``batch_size`` rows, shuffled each epoch (by ``random_state``; None
    means 0, so refits give the same bits), for ``max_iter`` epochs at most; stops early
    when the training loss (the held-out rows' with ``early_stopping``) has not improved by
    ``tol`` for ``n_iter_no_change`` epochs."""

    def _penalties(self):
        check_positive("alpha", self.alpha, allow_zero=True)
        if self.penalty is None:
            return 0.0, 0.0
        if self.penalty == "l2":
            return 0.0, float(self.alpha)
        if self.penalty == "l1":
            return float(self.alpha), 0.0
        if self.penalty == "elasticnet":
            if not (0.0 <= self.l1_ratio <= 1.0):
                raise ValueError(f"l1_ratio must be in [0, 1], not {self.l1_ratio!r}")
            return self.alpha * self.l1_ratio, self.alpha * (1.0 - self.l1_ratio)
        raise ValueError(f"penalty must be 'l2', 'l1', 'elasticnet' or None, not {self.penalty!r}")

    def _descent_options(self, default_loss, scale=1.0):
        """The native fit's options. ``scale``: downhill's loss over scikit-learn's (2 for
        squared error, r² against ½r²), by which the penalty grows and the rate shrinks so
        that the steps are scikit-learn's."""
        if self.loss != default_loss:
            raise ValueError(f"loss must be {default_loss!r} (downhill's), not {self.loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}"
            )
        if self.learning_rate not in LEARNING_RATES:
            raise ValueError(
                f"learning_rate must be one of {', '.join(LEARNING_RATES)}, not "
                f"{self.learning_rate!r}"
            )
        check_positive("eta0", self.eta0)
        check_positive("max_iter", self.max_iter)
        if self.batch_size is not None:
            check_positive("batch_size", self.batch_size)
        check_positive("n_iter_no_change", self.n_iter_no_change)
        if self.tol is not None:
            check_positive("tol", self.tol, allow_zero=True)
        seed = self.random_state
        if seed is None:
            seed = 0
        elif not isinstance(seed, numbers.Integral):
            raise ValueError(f"random_state must be None or an int (downhill's seed), not {seed!r}")
        l1, l2 = (scale * p for p in self._penalties())
        # Adam's steps do not grow with the gradient's scale; the others' do.
        lr = float(self.eta0) if self.optimizer == "adam" else float(self.eta0) / scale
        descent = dict(
            lr=lr,
            epochs=int(self.max_iter),
            batch_size=None if self.batch_size is None else int(self.batch_size),
            optimizer=self.optimizer,
            momentum=float(self.momentum) if self.optimizer in ("momentum", "nesterov") else None,
            power_t=float(self.power_t) if self.learning_rate == "invscaling" else None,
            patience=int(self.n_iter_no_change) if self.tol is not None else None,
            validation_fraction=float(self.validation_fraction) if self.early_stopping else None,
        )
        return dict(
            solver="gd",
            l1=l1,
            l2=l2,
            tol=None if self.tol is None else float(self.tol),
            seed=int(seed) % 2**64,
            fit_intercept=bool(self.fit_intercept),
            descent=descent,
        )

    def _after_fit(self, fitted):
        self.n_iter_ = fitted.n_iter
        # As scikit-learn's: a warning when every epoch ran although tol could stop it.
        if self.tol is not None and fitted.n_iter >= self.max_iter:
            self._warn_unless_converged(fitted)


_DESCENT_DOC = """
    ``eta0``: the learning rate; ``learning_rate``: ``"constant"`` or ``"invscaling"``
    (η / (epoch + 1)^power_t, per epoch); ``optimizer``: ``"sgd"``, ``"momentum"``,
    ``"nesterov"`` (with ``momentum``) or ``"adam"``; ``batch_size`` rows a step (None: all
    of them); ``alpha``, ``penalty`` and ``l1_ratio`` as scikit-learn's SGD:
    mean loss + alpha·R(w). ``backend`` and ``devices`` as LinearRegression's.
"""


class SGDClassifier(LinearClassifier, _Descent):
    __doc__ = (
        "Logistic (two classes) or softmax (more) regression by mini-batch gradient "
        "descent, downhill's descent path; loss is always ``'log_loss'``."
        + _Descent.__doc__
        + _DESCENT_DOC
    )

    def __init__(
        self,
        loss="log_loss",
        *,
        penalty="l2",
        alpha=0.0001,
        l1_ratio=0.15,
        fit_intercept=True,
        max_iter=1000,
        tol=1e-3,
        learning_rate="constant",
        eta0=0.01,
        power_t=0.5,
        optimizer="adam",
        momentum=0.9,
        batch_size=32,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        class_weight=None,
        random_state=None,
        backend="auto",
        devices=None,
    ):
        keep_params(self, locals())

    def fit(self, X, y, sample_weight=None):
        options = self._descent_options("log_loss")
        X, y, sample_weight = self._validate_fit(X, y, sample_weight, classifier=True)
        index, sample_weight = self._classes(y, sample_weight)
        k = len(self.classes_)
        fitted = self._fit_native(
            X, index, sample_weight, model="logistic" if k == 2 else "softmax", classes=k, **options
        )
        self.coef_ = np.ascontiguousarray(fitted.weights().T)
        self.intercept_ = fitted.bias().copy()
        self._after_fit(fitted)
        return self


class SGDRegressor(LinearRegressor, _Descent):
    __doc__ = (
        "Linear regression (squared error) by mini-batch gradient descent, downhill's "
        "descent path; loss is always ``'squared_error'``." + _Descent.__doc__ + _DESCENT_DOC
    )

    def __init__(
        self,
        loss="squared_error",
        *,
        penalty="l2",
        alpha=0.0001,
        l1_ratio=0.15,
        fit_intercept=True,
        max_iter=1000,
        tol=1e-3,
        learning_rate="constant",
        eta0=0.01,
        power_t=0.25,
        optimizer="adam",
        momentum=0.9,
        batch_size=32,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=5,
        random_state=None,
        backend="auto",
        devices=None,
    ):
        keep_params(self, locals())

    def fit(self, X, y, sample_weight=None):
        options = self._descent_options("squared_error", scale=2.0)
        X, y, sample_weight = self._validate_fit(X, y, sample_weight, classifier=False)
        fitted = self._fit_native(X, y, sample_weight, model="linear", **options)
        self.coef_ = fitted.weights()[:, 0].copy()
        self.intercept_ = fitted.bias().copy()
        self._after_fit(fitted)
        return self

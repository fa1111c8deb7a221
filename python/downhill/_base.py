"""What every downhill estimator shares: converting the input once (a C-contiguous float32
X is read in place; a scipy sparse X becomes CSR arrays, copied once more into the
library's CSR, whose passes run on the CPU or the GPU), the native fit and prediction,
the backend options, and the fitted attributes scikit-learn's API promises."""

import numbers
import warnings

import numpy as np
import scipy.sparse as sp
from scipy.special import expit, log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from . import _native

BACKENDS = ("auto", "gpu", "cpu", "reference")
SOLVERS = ("auto", "newton", "newton-cg", "lbfgs")


class DownhillEstimator(BaseEstimator):
    """The shared mechanics. Subclasses define ``__init__`` (their parameters) and
    ``fit``."""

    def _devices_spec(self):
        """``devices`` as the library spells it: None, ``"all"``, ``"0,1"``, ``"cpu,0"``."""
        devices = self.devices
        if devices is None or isinstance(devices, str):
            return devices
        if isinstance(devices, numbers.Integral):
            return str(devices)
        return ",".join(str(d) for d in devices)

    def _check_backend(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {self.backend!r}")

    def _backend_for(self, X):
        """The backend that runs the passes over X: ``auto`` takes the CPU for sparse X
        (the command line's choice too: its f64 sparse passes are exact, and no real GPU
        has measured the GPU's against them yet)."""
        if sp.issparse(X) and self.backend == "auto":
            return "cpu"
        return self.backend

    def _validate_fit(self, X, y, sample_weight, *, classifier):
        """X as C-contiguous float32 (in place when it already is), y as a 1-D array, and
        the sample weights as float32 (None when none are given: the library's unweighted
        pass, which reads no weights). Sparse X of any scipy format becomes CSR."""
        self._check_backend()
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse="csr",
            dtype=np.float32,
            order="C",
            y_numeric=not classifier,
            multi_output=False,
        )
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=np.float32)
            if not np.all(np.isfinite(sample_weight)) or np.any(sample_weight < 0):
                raise ValueError("sample weights must be finite and ≥ 0")
        return X, y, sample_weight

    def _fit_native(self, X, y, sample_weight, *, model, classes=1, **options):
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight, dtype=np.float32)
        fitted = _native.fit(
            native_rows(X),
            np.ascontiguousarray(y, dtype=np.float32),
            model=model,
            classes=classes,
            sample_weight=sample_weight,
            backend=self._backend_for(X),
            devices=self._devices_spec(),
            **options,
        )
        self._model = fitted
        self.solver_ = fitted.solver
        self.backend_ = fitted.backend
        return fitted

    def _warn_unless_converged(self, fitted):
        if not fitted.converged:
            warnings.warn(
                f"downhill's {fitted.solver} did not converge after {fitted.n_iter} "
                f"iterations: {fitted.stop}. Raise max_iter, or loosen tol.",
                ConvergenceWarning,
                stacklevel=3,
            )

    def _decision(self, X):
        """z = X·W + b, n×k float64, computed by the backend."""
        check_is_fitted(self)
        self._check_backend()
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float32, order="C", reset=False)
        return self._model.decision(
            native_rows(X), backend=self._backend_for(X), devices=self._devices_spec()
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def native_rows(X):
    """X as the native module takes it: a dense array as it is, a sparse matrix (CSR
    float32, after ``validate_data``) as ``(indptr int64, indices int32, data float32,
    n_features)``. The library sorts each row's columns and adds repeated ones, as
    ``sum_duplicates`` would."""
    if not sp.issparse(X):
        return X
    X = X.tocsr()
    if X.shape[1] > 2**31:
        raise ValueError(f"sparse X has {X.shape[1]} columns; downhill takes at most 2^31")
    return (
        np.ascontiguousarray(X.indptr, dtype=np.int64),
        np.ascontiguousarray(X.indices, dtype=np.int32),
        np.ascontiguousarray(X.data, dtype=np.float32),
        int(X.shape[1]),
    )


def class_indices(y):
    """np.unique(y, return_inverse=True), after scikit-learn's check that y holds classes.
    Integer-valued numbers (the usual labels) take a counting pass instead of the sort,
    which on a million labels costs more than a tenth of a Newton fit."""
    if y.dtype.kind in "iuf" and y.size:
        lo, hi = y.min(), y.max()
        if hi - lo < 65536:
            shifted = y - lo
            codes = shifted.astype(np.intp)
            if y.dtype.kind == "f" and not np.array_equal(codes, shifted):
                raise ValueError(
                    "Unknown label type: continuous. Maybe you are trying to fit a "
                    "classifier, which expects discrete classes on a regression target "
                    "with continuous values."
                )
            present = np.bincount(codes) > 0
            classes = (np.flatnonzero(present) + lo).astype(y.dtype)
            return classes, (np.cumsum(present) - 1)[codes]
    check_classification_targets(y)
    return np.unique(y, return_inverse=True)


def keep_params(estimator, params):
    """Stores an ``__init__``'s arguments (its ``locals()``) as attributes of the same
    names, as scikit-learn's API asks: no checks, no changes (``fit`` checks them)."""
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)


def total_weight(sample_weight, rows):
    """Σ sᵢ (the row count without weights), which turns scikit-learn's summed objectives
    into downhill's weighted means."""
    if sample_weight is None:
        return float(rows)
    total = float(np.sum(sample_weight, dtype=np.float64))
    if not total > 0:
        raise ValueError("the sample weights sum to 0: there is nothing to fit")
    return total


def check_positive(name, value, *, allow_zero=False, allow_inf=False):
    ok = isinstance(value, numbers.Real) and not np.isnan(value)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    ok = ok and (allow_inf or np.isfinite(value))
    if not ok:
        bound = "≥ 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a number {bound}, not {value!r}")


class LinearClassifier(ClassifierMixin):
    """Classes as scikit-learn numbers them (``classes_``, sorted), and what a classifier
    makes of z: one score a row for two classes (> 0 for ``classes_[1]``), else one a
    class."""

    def _classes(self, y, sample_weight):
        """The class index of each label, and the sample weights times ``class_weight``."""
        self.classes_, index = class_indices(y)
        if len(self.classes_) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {self.classes_[0]!r}"
            )
        if self.class_weight is not None:
            # "balanced" counts the rows by their sample weights, as scikit-learn does.
            per_class = compute_class_weight(
                self.class_weight, classes=self.classes_, y=y, sample_weight=sample_weight
            )
            per_row = per_class[index].astype(np.float32)
            sample_weight = per_row if sample_weight is None else sample_weight * per_row
        return index, sample_weight

    def decision_function(self, X):
        z = self._decision(X)
        return z[:, 0] if z.shape[1] == 1 else z

    def predict_proba(self, X):
        z = self._decision(X)
        if z.shape[1] == 1:
            p = expit(z[:, 0])
            return np.column_stack([1.0 - p, p])
        return softmax(z, axis=1)

    def predict_log_proba(self, X):
        z = self._decision(X)
        if z.shape[1] == 1:
            return np.column_stack([-np.logaddexp(0.0, z[:, 0]), -np.logaddexp(0.0, -z[:, 0])])
        return log_softmax(z, axis=1)

    def predict(self, X):
        z = self._decision(X)
        best = (z[:, 0] > 0).astype(int) if z.shape[1] == 1 else np.argmax(z, axis=1)
        return self.classes_[best]


class LinearRegressor(RegressorMixin):
    """ŷ = X·w + b: one output, so y is one column."""

    def predict(self, X):
        return self._decision(X)[:, 0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = False
        return tags

"""downhill from Python: scikit-learn-compatible regression estimators over the downhill
Rust library, fitted on the GPU (wgpu: Vulkan, Metal, DX12) or the CPU.

>>> import downhill
>>> from sklearn.datasets import load_breast_cancer
>>> X, y = load_breast_cancer(return_X_y=True)
>>> clf = downhill.LogisticRegression(C=1.0, backend="cpu").fit(X, y)
>>> clf.score(X, y) > 0.9
True
"""

from ._checks import expected_failed_checks
from ._native import __version__
from ._native import devices as _devices
from .linear import LinearRegression, LogisticRegression, Ridge
from .sgd import SGDClassifier, SGDRegressor

__all__ = [
    "LinearRegression",
    "LogisticRegression",
    "Ridge",
    "SGDClassifier",
    "SGDRegressor",
    "devices",
    "expected_failed_checks",
    "__version__",
]


def devices():
    """The GPU adapters wgpu sees, in the order ``devices=`` indexes them: a list of dicts
    with ``index``, ``name``, ``type`` (DiscreteGpu, IntegratedGpu, Cpu, ...), ``api``
    (Vulkan, Metal, Dx12) and ``hardware`` (False for software renderers such as Mesa's
    llvmpipe). ``backend="auto"`` takes the best hardware one, else the CPU."""
    return _devices()

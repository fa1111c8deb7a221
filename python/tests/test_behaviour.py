"""What Python users expect of an estimator beyond its numbers: pickling, cloning and
parameters, class labels of any type, pandas input, errors as ValueError or
RuntimeError with the library's message, ConvergenceWarning, the GIL released during a
fit, Ctrl-C as KeyboardInterrupt, and X read in place."""

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris, make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

import downhill
from conftest import need_gpu
from downhill import _native


def breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


ESTIMATORS = [
    downhill.LinearRegression(backend="cpu"),
    downhill.Ridge(alpha=2.0, backend="cpu"),
    downhill.LogisticRegression(C=0.5, backend="cpu"),
    downhill.SGDClassifier(max_iter=20, backend="cpu"),
    downhill.SGDRegressor(max_iter=20, backend="cpu"),
]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_pickled_estimators_predict_the_same_bits(estimator):
    X, y = breast_cancer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fitted = clone(estimator).fit(X, y)
    again = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(again.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(again.coef_, fitted.coef_)
    assert again.get_params() == fitted.get_params()
    assert "Model.from_json" not in repr(again)


def test_parameters_clone_and_repr_as_scikit_learns():
    est = downhill.LogisticRegression(C=0.25, solver="lbfgs", backend="cpu")
    assert repr(est) == "LogisticRegression(C=0.25, backend='cpu', solver='lbfgs')"
    copy = clone(est)
    assert copy.get_params() == est.get_params() and copy is not est
    copy.set_params(C=4.0, penalty="l1")
    assert (copy.C, copy.penalty, est.C) == (4.0, "l1", 0.25)


def test_class_labels_of_any_type_come_back_as_given():
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    est = downhill.LogisticRegression(backend="cpu").fit(X, names)
    assert list(est.classes_) == ["setosa", "versicolor", "virginica"]
    assert est.score(X, names) > 0.95
    assert est.predict(X[:3]).dtype == names.dtype
    np.testing.assert_allclose(est.predict_proba(X).sum(axis=1), 1.0, atol=1e-12)
    binary = downhill.LogisticRegression(backend="cpu").fit(X, np.where(y == 0, -1, 1))
    assert list(binary.classes_) == [-1, 1] and binary.decision_function(X).shape == (150,)


def test_pandas_frames_name_the_features():
    pandas = pytest.importorskip("pandas")
    X, y = breast_cancer()
    frame = pandas.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = downhill.LogisticRegression(backend="cpu").fit(frame, pandas.Series(y))
    assert list(est.feature_names_in_) == list(frame.columns)
    with pytest.warns(UserWarning, match="feature names"):
        plain = est.predict(X.astype(np.float32))
    np.testing.assert_array_equal(est.predict(frame), plain)


def test_mistakes_raise_valueerror_with_the_librarys_message():
    X, y = breast_cancer()
    cases = [
        (downhill.LogisticRegression(backend="tpu"), "backend must be one of"),
        (downhill.LogisticRegression(solver="saga", backend="cpu"), "solver must be one of"),
        (downhill.LogisticRegression(C=-1.0, backend="cpu"), "C must be a number > 0"),
        (downhill.LogisticRegression(devices="7", backend="cpu"), "adapter"),
        (downhill.SGDClassifier(optimizer="rmsprop", backend="cpu"), "optimizer must be one of"),
        (downhill.SGDClassifier(loss="hinge", backend="cpu"), "loss must be 'log_loss'"),
        # The library's own refusal, passed on: newton takes no L1 penalty.
        (downhill.LogisticRegression(penalty="l1", solver="newton", backend="cpu"), "OWL-QN"),
    ]
    for est, message in cases:
        with pytest.raises((ValueError, RuntimeError), match=message):
            est.fit(X, y)
    with pytest.raises(ValueError, match="NaN"):
        downhill.LogisticRegression(backend="cpu").fit(np.where(X > 3, np.nan, X), y)
    fitted = downhill.LogisticRegression(backend="cpu").fit(X, y)
    with pytest.raises(ValueError, match="30 features"):
        fitted.predict(X[:, :5])


def test_a_device_problem_is_a_runtimeerror():
    # No adapter by that name: the GPU cannot be opened.
    code = textwrap.dedent(
        """
        import numpy as np, downhill
        try:
            downhill.LogisticRegression(backend="gpu").fit(np.eye(4), [0, 1, 0, 1])
        except RuntimeError as e:
            print("RuntimeError:", e)
        """
    )
    env = dict(os.environ, WGPU_ADAPTER_NAME="no such adapter")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert "RuntimeError:" in out.stdout and "no such adapter" in out.stdout, out


def test_a_solver_stopped_short_warns():
    X, y = breast_cancer()
    with pytest.warns(ConvergenceWarning, match="did not converge after 1 iterations"):
        est = downhill.LogisticRegression(max_iter=1, backend="cpu").fit(X, y)
    assert est.n_iter_[0] == 1


def test_x_is_read_in_place_and_left_as_it_was():
    X, y = breast_cancer()
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    assert _native.shares_memory(X32)
    before = X32.copy()
    X32.setflags(write=False)  # read-only arrays are accepted, and not written
    downhill.LogisticRegression(backend="cpu").fit(X32, y)
    np.testing.assert_array_equal(X32, before)
    with pytest.raises(ValueError, match="C-contiguous"):
        _native.shares_memory(np.asfortranarray(X32))


def test_a_large_fit_copies_no_x():
    # A separate process, so that its peak resident memory is this fit's alone: X is
    # 256 MB of float32; the fit may add the labels, the weights and its own buffers, but
    # not a copy of X.
    code = textwrap.dedent(
        """
        import resource, numpy as np, downhill
        rng = np.random.default_rng(0)
        X = rng.standard_normal((1_000_000, 64), dtype=np.float32)
        y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.float32)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        downhill.LogisticRegression(backend="cpu").fit(X, y)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(after - before, X.nbytes)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    grown, x_bytes = map(int, out.stdout.split())
    assert grown < 0.25 * x_bytes, f"the fit grew the peak by {grown} bytes; X is {x_bytes}"


def test_the_gil_is_released_while_fitting():
    X, y = make_classification(n_samples=20000, n_features=20, random_state=0)
    est = downhill.SGDClassifier(max_iter=300, tol=None, batch_size=64, backend="cpu")
    ticks = 0
    done = threading.Event()

    def count():
        nonlocal ticks
        while not done.is_set():
            ticks += 1

    counter = threading.Thread(target=count)
    counter.start()
    start, before = time.perf_counter(), ticks
    est.fit(X, y)
    seconds, during = time.perf_counter() - start, ticks - before
    done.set()
    counter.join()
    # A fit that held the GIL would let the counting thread tick only in the instants
    # around it; one that releases it lets it count on all through the fit.
    assert during > 1_000_000, (seconds, during)


def test_ctrl_c_stops_a_fit_with_keyboardinterrupt():
    code = textwrap.dedent(
        """
        import sys, time, numpy as np, downhill
        X = np.random.default_rng(0).standard_normal((20000, 20), dtype=np.float32)
        y = (X[:, 0] > 0).astype(int)
        print("fitting", flush=True)
        start = time.perf_counter()
        try:
            est = downhill.SGDClassifier(max_iter=100000, tol=None, batch_size=16, backend="cpu")
            est.fit(X, y)
        except KeyboardInterrupt:
            print(f"KeyboardInterrupt after {time.perf_counter() - start:.1f} s", flush=True)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "fitting"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert "KeyboardInterrupt after" in out, out
    assert float(out.split()[2]) < 30


def test_devices_lists_the_adapters_and_parallel_fits_agree():
    for d in downhill.devices():
        assert set(d) == {"index", "name", "type", "api", "hardware"}
    X, y = breast_cancer()
    one = downhill.LogisticRegression(backend="cpu").fit(X, y)
    two = downhill.LogisticRegression(devices="cpu,cpu").fit(X, y)
    np.testing.assert_allclose(two.coef_, one.coef_, atol=1e-6)


def test_the_gpu_fits_what_the_cpu_fits():
    need_gpu()
    X, y = breast_cancer()
    cpu = downhill.LogisticRegression(backend="cpu").fit(X, y)
    for solver in ["newton", "lbfgs"]:
        gpu = downhill.LogisticRegression(backend="gpu", solver=solver).fit(X, y)
        assert "gpu" in gpu.backend_
        np.testing.assert_allclose(gpu.coef_, cpu.coef_, atol=1e-5)
        np.testing.assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), atol=1e-5)
    sgd = downhill.SGDClassifier(backend="gpu", max_iter=50, tol=None).fit(X, y)
    assert sgd.score(X, y) > 0.95

"""downhill from Python against downhill from Rust and against scikit-learn, on the same
rows in the same run: a logistic fit at C = 1 by Newton on the CPU backend.

    python python/bench/parity.py [ROWS] [FEATURES] [REPEATS]

Defaults 1 000 000 × 64 float32, 3 repeats (the best of each is compared). Writes the rows
to a temporary directory for the Rust side (`cargo run --release --example parity`, run
from the repository root), fits them from Python with `downhill.LogisticRegression`, and
with scikit-learn's LogisticRegression (lbfgs, its default, and newton-cholesky) on the
same arrays. Prints the seconds, the ratios, the largest coefficient difference from
scikit-learn's newton-cholesky (the exact optimum), downhill's L-BFGS at the accuracy
scikit-learn's defaults reach, and how much the Python fit grew the
process's peak memory against X's size (a copy of X would add all of it).
"""

import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression

import downhill

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rows(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float32)
    w = rng.standard_normal(d) / np.sqrt(d) * 2
    p = 1 / (1 + np.exp(-(X @ w + 0.5)))
    y = (rng.random(n) < p).astype(np.float32)
    return X, y


def best_of(repeats, fit):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fit()
        times.append(time.perf_counter() - start)
    return min(times), result


def peak_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    n, d, repeats = (int(a) for a in (sys.argv[1:] + ["1000000", "64", "3"][len(sys.argv) - 1 :]))
    X, y = rows(n, d)
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "x.npy"), X)
        np.save(os.path.join(tmp, "y.npy"), y)
        rust = subprocess.run(
            [
                "cargo",
                "run",
                "--quiet",
                "--release",
                "--example",
                "parity",
                "--",
                tmp,
                str(repeats),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    rust_seconds = min(float(line) for line in rust.stdout.split())

    ours = downhill.LogisticRegression(C=1.0, solver="newton", backend="cpu")
    before = peak_bytes()
    ours.fit(X, y)
    grown = peak_bytes() - before
    python_seconds, ours = best_of(repeats, lambda: ours.fit(X, y))

    # At the accuracy scikit-learn's defaults stop at (its tol 1e-4 leaves ~1e-5 in the
    # coefficients): downhill's L-BFGS with a looser tolerance than its default 1e-8.
    loose = downhill.LogisticRegression(C=1.0, solver="lbfgs", tol=1e-5, backend="cpu")
    loose_seconds, loose = best_of(repeats, lambda: loose.fit(X, y))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lbfgs_seconds, lbfgs = best_of(1, lambda: LogisticRegression(C=1.0).fit(X, y))
        exact_seconds, exact = best_of(
            1, lambda: LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-10).fit(X, y)
        )

    def gap(model):
        return max(
            np.abs(model.coef_ - exact.coef_).max(),
            np.abs(model.intercept_ - exact.intercept_).max(),
        )

    print(f"logistic, C = 1, {n} × {d} float32, newton on the CPU; best of {repeats}")
    print(f"downhill from Rust    {rust_seconds:8.3f} s")
    print(
        f"downhill from Python  {python_seconds:8.3f} s  "
        f"({python_seconds / rust_seconds:.3f}× Rust; {ours.n_iter_[0]} iterations; "
        f"|Δcoef| {gap(ours):.1e} from scikit-learn's newton-cholesky)"
    )
    print(
        f"  peak memory grew by {grown / 2**20:.1f} MiB during the first fit "
        f"(X is {X.nbytes / 2**20:.0f} MiB; X read in place: "
        f"{downhill._native.shares_memory(X)})"
    )
    print(
        f"scikit-learn lbfgs    {lbfgs_seconds:8.3f} s  "
        f"(downhill takes {python_seconds / lbfgs_seconds:.3f}× its time; "
        f"|Δcoef| {gap(lbfgs):.1e})"
    )
    print(
        f"downhill lbfgs, tol 1e-5 {loose_seconds:8.3f} s  "
        f"({loose_seconds / lbfgs_seconds:.3f}× scikit-learn lbfgs's time; "
        f"|Δcoef| {gap(loose):.1e})"
    )
    print(
        f"scikit-learn newton-cholesky {exact_seconds:8.3f} s  "
        f"(downhill takes {python_seconds / exact_seconds:.3f}× its time)"
    )


if __name__ == "__main__":
    main()

"""The data and the peers of `downhill bench --to-optimum`.

Two commands, run by the bench as a child Python with numpy and scikit-learn:

  python3 to_optimum.py make DIR ROWS FEATURES CLASSES SEED [NNZ]
      Writes DIR/x.npy (float32, C order) and DIR/y.npy (float32): an ill-conditioned
      problem, the features standard normal rows rotated by a random orthogonal matrix and
      scaled over 1.5 decades (column j by 10^(1.5 j / (d - 1))), labels drawn from a
      logistic (CLASSES = 2: 0/1) or softmax (class indices) model whose logits have a
      standard deviation of about 2.
      With NNZ (logistic only): sparse binary rows instead, DIR/x.npz (scipy CSR,
      float32), NNZ draws a row of features with Zipf-distributed popularity (feature j
      with probability ∝ 1/(j + 1)^1.1, as hashed categorical columns are; repeats
      merged), the labels from a logistic model with standard normal weights scaled so
      that the logits have a standard deviation of about 2.

  python3 to_optimum.py peers DIR C REL < traces.json
      Reads downhill's traces from stdin ({"traces": [{"name", "seconds": [...],
      "params": [[W row-major d x k, then b], ...]}]}), fits scikit-learn's lbfgs and
      newton-cholesky LogisticRegression(C) on the same rows (on sparse rows: lbfgs, and
      LIBLINEAR's -s 0 when liblinear-multicore is installed), and measures everyone's F
      in f64 in one place:
          F = mean loss + (1 / (2 C n)) |W|^2        (scikit-learn's objective / (C n))
      The best F anyone reached sets the target best + REL * |best|. A scikit-learn
      solver's time to the target is that of the shortest fit (max_iter found by doubling,
      then bisection) whose F is within it; a downhill trace's is the time of its first
      iterate within it (found by bisection: F decreases along a trace). LIBLINEAR has no
      unpenalized intercept (its rows carry a penalized column of ones), so it is judged
      on its own objective against the best it reached: the time of its fastest run, over
      a sequence of tolerances, within REL of that.
      Prints one JSON object.
"""
import json
import sys
import time
import warnings

import numpy as np

CHUNK = 100_000


def make(out, rows, features, classes, seed):
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.standard_normal((features, features)))
    scale = 10.0 ** (1.5 * np.arange(features) / max(features - 1, 1))
    mix = rotation * scale
    outputs = 1 if classes == 2 else classes
    true_w = rng.standard_normal((features, outputs)) * 2.0 / np.sqrt(features)
    true_w /= scale[:, None]
    true_b = rng.standard_normal(outputs) * 0.5
    x = np.lib.format.open_memmap(f"{out}/x.npy", mode="w+", dtype=np.float32,
                                  shape=(rows, features))
    y = np.empty(rows, dtype=np.float32)
    for start in range(0, rows, CHUNK):
        end = min(start + CHUNK, rows)
        block = (rng.standard_normal((end - start, features)) @ mix).astype(np.float32)
        x[start:end] = block
        z = block.astype(np.float64) @ true_w + true_b
        if classes == 2:
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            y[start:end] = rng.random(end - start) < p
        else:
            y[start:end] = np.argmax(z + rng.gumbel(size=z.shape), axis=1)
    x.flush()
    del x
    np.save(f"{out}/y.npy", y)


def sparse_problem(rows, features, nnz, seed):
    """Sparse binary rows (scipy CSR, float32) and 0/1 labels: see `make` with NNZ."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, features + 1) ** 1.1
    p /= p.sum()
    cols = rng.choice(features, size=rows * nnz, p=p).astype(np.int32)
    at = np.repeat(np.arange(rows), nnz)
    x = sp.csr_matrix((np.ones(rows * nnz, np.float32), (at, cols)), shape=(rows, features))
    x.sum_duplicates()
    x.data[:] = 1.0
    z = x @ rng.standard_normal(features)
    z *= 2.0 / max(z.std(), 1e-12)
    y = (rng.random(rows) < 1 / (1 + np.exp(-(z - z.mean())))).astype(np.float32)
    return x, y


def make_sparse(out, rows, features, nnz, seed):
    import scipy.sparse as sp

    x, y = sparse_problem(rows, features, nnz, seed)
    sp.save_npz(f"{out}/x.npz", x, compressed=False)
    np.save(f"{out}/y.npy", y)


def liblinear_peer(x, y, c):
    """LIBLINEAR -s 0 at a sequence of tolerances: [(seconds, F of its own objective, F
    with its last weight taken as the bias)], or None when it is not installed."""
    try:
        import scipy.sparse as sp
        from liblinear.liblinearutil import parameter, train
        from liblinear.liblinearutil import problem as ll_problem
    except ImportError:
        return None
    n, d = x.shape
    xb = sp.hstack([x, np.ones((n, 1), np.float32)], format="csr")
    prob = ll_problem(2 * y.astype(np.float64) - 1, xb)
    runs = []
    for eps in [1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7]:
        start = time.perf_counter()
        model = train(prob, parameter(f"-s 0 -c {c} -e {eps} -q"))
        seconds = time.perf_counter() - start
        w = np.array([model.w[j] for j in range(d + 1)])
        if model.label[0] != 1:
            w = -w
        shared = objective(x, y, 2, c, w[:d, None], w[d:])
        runs.append((seconds, shared + w[d] ** 2 / (2 * c * n), shared))
    return runs


def objective(x, y, classes, c, w, b):
    """F in f64 over chunks of rows: mean loss + |W|^2 / (2 C n)."""
    n = x.shape[0]
    total = 0.0
    for start in range(0, n, CHUNK):
        z = np.asarray(x[start:start + CHUNK].astype(np.float64) @ w) + b
        labels = y[start:start + CHUNK]
        if classes == 2:
            z = z[:, 0]
            total += np.sum(np.logaddexp(0.0, z) - labels * z)
        else:
            top = z.max(axis=1)
            lse = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
            total += np.sum(lse - z[np.arange(len(z)), labels.astype(np.int64)])
    return total / n + 0.5 * np.sum(w * w) / (c * n)


def unflatten(flat, features, outputs):
    flat = np.asarray(flat, dtype=np.float64)
    return flat[:features * outputs].reshape(features, outputs), flat[features * outputs:]


def sklearn_fit(x, y, c, solver, max_iter):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, solver=solver, tol=1e-12, max_iter=max_iter)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        model.fit(x, y)
        seconds = time.perf_counter() - start
    w = model.coef_.T.astype(np.float64)
    b = model.intercept_.astype(np.float64)
    return seconds, w, b, int(np.max(model.n_iter_))


class Peer:
    """A scikit-learn solver's fits by max_iter: (seconds, F, iterations run)."""

    def __init__(self, x, y, classes, c, solver):
        self.x, self.y, self.classes, self.c, self.solver = x, y, classes, c, solver
        self.fits = {}

    def at(self, max_iter):
        if max_iter not in self.fits:
            seconds, w, b, ran = sklearn_fit(self.x, self.y, self.c, self.solver, max_iter)
            f = objective(self.x, self.y, self.classes, self.c, w, b)
            self.fits[max_iter] = (seconds, f, ran)
        return self.fits[max_iter]

    def converge(self, limit):
        """Doubles max_iter from 1 until F stops falling past 8 (a fit that stopped on its own gives the
        same F at twice the iterations) or max_iter reaches `limit`. The iterations a fit
        reports are not trusted for this: newton-cholesky that falls back to lbfgs on an
        ill-conditioned Hessian reports max_iter - 1 while still going."""
        max_iter, last = 1, None
        while True:
            f = self.at(max_iter)[1]
            if max_iter >= limit or (max_iter > 8 and f >= last - 1e-15 * abs(last)):
                return min(f, last if last is not None else f)
            last, max_iter = f, max_iter * 2

    def to_target(self, target):
        """The fit with the least max_iter whose F is within the target."""
        reached = sorted(m for m, (_, f, _) in self.fits.items() if f <= target)
        if not reached:
            return None
        hi = reached[0]
        lo = max([m for m in self.fits if m < hi], default=0)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.at(mid)[1] <= target:
                hi = mid
            else:
                lo = mid
        return hi


def peers(out, c, rel):
    import os

    from sklearn import __version__ as sklearn_version

    sparse = os.path.exists(f"{out}/x.npz")
    if sparse:
        import scipy.sparse as sp

        x = sp.load_npz(f"{out}/x.npz").tocsr()
    else:
        x = np.load(f"{out}/x.npy")
    y = np.load(f"{out}/y.npy")
    classes = max(int(y.max()) + 1, 2)
    outputs = 1 if classes == 2 else classes
    traces = json.load(sys.stdin)["traces"]
    features = x.shape[1]

    def trace_f(trace, i):
        w, b = unflatten(trace["params"][i], features, outputs)
        return objective(x, y, classes, c, w, b)

    finals = {t["name"]: trace_f(t, len(t["params"]) - 1) for t in traces}
    # newton-cholesky's dense Hessian is out of reach of wide sparse rows.
    names = ("lbfgs",) if sparse else ("lbfgs", "newton-cholesky")
    solvers = {s: Peer(x, y, classes, c, s) for s in names}
    limits = {"lbfgs": 100_000, "newton-cholesky": 1_000}
    sk_finals = {s: p.converge(limits[s]) for s, p in solvers.items()}
    best = min(list(finals.values()) + list(sk_finals.values()))
    target = best + rel * abs(best)
    result = {"best": best, "target": target, "rel": rel, "sklearn": sklearn_version,
              "downhill": [], "peers": []}
    for t in traces:
        n = len(t["params"])
        first = None
        if finals[t["name"]] <= target:
            lo, hi = -1, n - 1
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if trace_f(t, mid) <= target:
                    hi = mid
                else:
                    lo = mid
            first = hi
        result["downhill"].append({"name": t["name"], "final": finals[t["name"]],
                                   "first_within": first})
    for name, peer in solvers.items():
        at = peer.to_target(target)
        entry = {"name": f"sklearn {name}", "final": sk_finals[name]}
        if at is None:
            entry.update(seconds=None, iterations=None)
        else:
            seconds, _, ran = peer.at(at)
            entry.update(seconds=seconds, iterations=ran)
        result["peers"].append(entry)
    own = liblinear_peer(x, y, c) if sparse else None
    if own:
        own_best = min(f for _, f, _ in own)
        within = [s for s, f, _ in own if f <= own_best + rel * abs(own_best)]
        result["peers"].append({"name": "liblinear -s 0 (own F)", "final": own[-1][2],
                                "seconds": min(within), "iterations": None})
    print(json.dumps(result))


def main():
    command = sys.argv[1]
    if command == "make":
        out, rows, features, classes, seed = sys.argv[2:7]
        if len(sys.argv) > 7:
            make_sparse(out, int(rows), int(features), int(sys.argv[7]), int(seed))
        else:
            make(out, int(rows), int(features), int(classes), int(seed))
    elif command == "peers":
        out, c, rel = sys.argv[2:5]
        peers(out, float(c), float(rel))
    else:
        sys.exit(f"unknown command {command!r}: expected make or peers")


if __name__ == "__main__":
    main()

"""One epoch of full-batch logistic regression in numpy, the baseline of `downhill bench`.

The epoch is what the issue names: p = 1/(1+exp(-(X@w+b))), then X.T @ (p-y)/n and the
bias gradient, float32 throughout (numpy's BLAS does the two products).

usage: python3 numpy_epoch.py ROWS FEATURES REPS
prints one JSON object: {"rows", "features", "seconds": [one per rep], "blas": "..."}
"""
import json
import sys
import time

import numpy as np


def main():
    rows, features, reps = (int(a) for a in sys.argv[1:4])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, features), dtype=np.float32)
    y = (rng.random(rows, dtype=np.float32) < 0.5).astype(np.float32)
    w = (rng.standard_normal(features, dtype=np.float32) * 0.1).astype(np.float32)
    b = np.float32(0.0)
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
        r = p - y
        grad_w = x.T @ r / np.float32(rows)
        grad_b = r.mean()
        seconds.append(time.perf_counter() - start)
        assert grad_w.dtype == np.float32 and np.isfinite(grad_b)
    config = np.__config__.CONFIG if hasattr(np.__config__, "CONFIG") else {}
    blas = config.get("Build Dependencies", {}).get("blas", {}).get("name", "unknown")
    print(json.dumps({"rows": rows, "features": features, "seconds": seconds, "blas": blas}))


if __name__ == "__main__":
    main()

"""One epoch of full-batch logistic or softmax regression in numpy, the baseline of
`downhill bench`.

The logistic epoch is what the issue names: p = 1/(1+exp(-(X@w+b))), then X.T @ (p-y)/n
and the bias gradient. With CLASSES > 1 it is softmax: Z = X@W + b, P = softmax(Z) (row max
subtracted), then X.T @ (P - Y)/n and the bias gradient. float32 throughout (numpy's BLAS
does the products).

usage: python3 numpy_epoch.py ROWS FEATURES REPS [CLASSES]
prints one JSON object: {"rows", "features", "classes", "seconds": [one per rep], "blas"}
"""
import json
import sys
import time

import numpy as np


def logistic_epoch(x, y, w, b):
    p = 1.0 / (1.0 + np.exp(-(x @ w + b)))
    r = p - y
    grad_w = x.T @ r / np.float32(len(y))
    grad_b = r.mean()
    assert grad_w.dtype == np.float32 and np.isfinite(grad_b)


def softmax_epoch(x, labels, w, b):
    z = x @ w + b
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    z[np.arange(len(labels)), labels] -= 1.0
    grad_w = x.T @ z / np.float32(len(labels))
    grad_b = z.mean(axis=0)
    assert grad_w.dtype == np.float32 and np.isfinite(grad_b).all()


def main():
    rows, features, reps = (int(a) for a in sys.argv[1:4])
    classes = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, features), dtype=np.float32)
    if classes == 1:
        y = (rng.random(rows, dtype=np.float32) < 0.5).astype(np.float32)
        w = (rng.standard_normal(features, dtype=np.float32) * 0.1).astype(np.float32)
        b = np.float32(0.0)
        epoch = logistic_epoch
    else:
        y = rng.integers(0, classes, rows)
        w = (rng.standard_normal((features, classes), dtype=np.float32) * 0.01).astype(np.float32)
        b = np.zeros(classes, dtype=np.float32)
        epoch = softmax_epoch
    seconds = []
    for _ in range(reps):
        start = time.perf_counter()
        epoch(x, y, w, b)
        seconds.append(time.perf_counter() - start)
    config = np.__config__.CONFIG if hasattr(np.__config__, "CONFIG") else {}
    blas = config.get("Build Dependencies", {}).get("blas", {}).get("name", "unknown")
    print(json.dumps({"rows": rows, "features": features, "classes": classes,
                      "seconds": seconds, "blas": blas}))


if __name__ == "__main__":
    main()

"""Reading sparse rows: downhill's libsvm reader against scikit-learn's load_svmlight_file
on the same file, in one run, and downhill's peak memory against the CSR's bytes.

    python bench/libsvm_reading.py [ROWS] [FEATURES_LOG2] [NNZ_PER_ROW] [SEED]

Defaults 400 000 rows × 2^18 binary features, 52 Zipf draws a row (about 40 distinct
non-zeros), seed 0: the sparse problem of `downhill bench --to-optimum --problems
400000x262144@52` (bench/to_optimum.py makes both), written as libsvm text. downhill's
time is the read its -v log reports; its peak is GNU time's maximum resident set of the
whole process (a fit's first iteration included). Run from the repository root after
`cargo build --release`, with numpy, scipy and scikit-learn.
"""

import os
import re
import subprocess
import sys
import tempfile
import time

from sklearn.datasets import dump_svmlight_file, load_svmlight_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from to_optimum import sparse_problem

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    n, log2, nnz, seed = (
        int(a) for a in (sys.argv[1:] + ["400000", "18", "52", "0"][len(sys.argv) - 1 :])
    )
    x, y = sparse_problem(n, 2**log2, nnz, seed)
    print(f"{n} × {2**log2}, {x.nnz / n:.1f} non-zeros a row")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.svm")
        dump_svmlight_file(x, y, path, zero_based=True)
        out = subprocess.run(
            [
                "/usr/bin/time",
                "-f",
                "peak %M KiB",
                os.path.join(ROOT, "target/release/downhill"),
                "fit",
                "--model",
                "logistic",
                "--data",
                path,
                "--backend",
                "cpu",
                "--solver",
                "lbfgs",
                "--max-iter",
                "1",
                "-v",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        ours = float(re.search(r"non-zeros\) from .* in ([0-9.]+) s", out.stderr).group(1))
        peak = 1024 * int(re.search(r"peak ([0-9]+) KiB", out.stderr).group(1))
        start = time.perf_counter()
        load_svmlight_file(path)
        theirs = time.perf_counter() - start
        csr = 4 * x.nnz + 8 * (n + 1)
        print(
            f"reading {os.path.getsize(path) / 2**20:.0f} MiB of libsvm: downhill {ours:.2f} s, "
            f"scikit-learn's load_svmlight_file {theirs:.2f} s ({theirs / ours:.1f}× "
            f"downhill's); downhill's whole process peaked at {peak / csr:.2f}× the CSR's "
            f"{csr / 2**20:.0f} MiB"
        )


if __name__ == "__main__":
    main()

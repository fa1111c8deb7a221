"""PyTorch on a CUDA GPU beside `downhill bench`: the peer and the ceilings of a GPU run.

Prints one JSON object a line:
- {"what": "copy", ...}: a device-to-device copy of 4 GiB, GB/s counting bytes read and written
  (the memory-bound floor's bandwidth).
- {"what": "sgemm", "tf32": false, ...}: an 8192 x 8192 x 8192 float32 product with TF32 off,
  the device's float32 rate as cuBLAS reaches it (the compute-bound ceiling of a float32 epoch).
- {"what": "epoch", ...} for each ROWSxFEATURES[xCLASSES]: the same epoch as
  bench/numpy_epoch.py (logistic: p = 1/(1+exp(-(X@w+b))), X.T @ (p-y)/n; softmax: Z = X@W + b,
  P = softmax(Z), X.T @ (P - Y)/n and the bias gradient), float32, TF32 off and then on.
Each time is the median of REPS runs timed with CUDA events after three warm-ups, on
random normal data (never zeros).

usage: python3 torch_epoch.py REPS SHAPE...
"""

import json
import statistics
import sys

import torch


def timed(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def copy_bandwidth(reps):
    src = torch.randn(1 << 30, device="cuda")
    dst = torch.empty_like(src)
    seconds = timed(lambda: dst.copy_(src), reps)
    return {
        "what": "copy",
        "bytes": 2 * src.numel() * 4,
        "seconds": seconds,
        "gb_per_s": 2 * src.numel() * 4 / seconds / 1e9,
    }


def sgemm_rate(reps, n=8192):
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    seconds = timed(lambda: a @ b, reps)
    return {
        "what": "sgemm",
        "n": n,
        "tf32": False,
        "seconds": seconds,
        "tflop_per_s": 2 * n**3 / seconds / 1e12,
    }


def epoch_time(rows, features, classes, reps, tf32):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(rows, features, device="cuda", generator=gen)
    if classes == 1:
        y = (torch.rand(rows, device="cuda", generator=gen) < 0.5).float()
        w = torch.randn(features, device="cuda", generator=gen) * 0.1

        def epoch():
            r = torch.sigmoid(x @ w) - y
            return x.T @ r / rows, r.mean()

        flops = 4 * rows * features
    else:
        labels = torch.randint(0, classes, (rows,), device="cuda", generator=gen)
        w = torch.randn(features, classes, device="cuda", generator=gen) * 0.01
        b = torch.zeros(classes, device="cuda")

        def epoch():
            p = torch.softmax(torch.addmm(b, x, w), dim=1)
            p[torch.arange(rows, device="cuda"), labels] -= 1.0
            return x.T @ p / rows, p.mean(dim=0)

        flops = 4 * rows * features * classes
    seconds = timed(epoch, reps)
    return {
        "what": "epoch",
        "rows": rows,
        "features": features,
        "classes": classes,
        "tf32": tf32,
        "seconds": seconds,
        "gflop_per_s": flops / seconds / 1e9,
        "gb_per_s": rows * features * 4 / seconds / 1e9,
    }


def main():
    reps = int(sys.argv[1])
    print(
        json.dumps(
            {
                "what": "device",
                "name": torch.cuda.get_device_name(),
                "torch": torch.__version__,
            }
        ),
        flush=True,
    )
    print(json.dumps(copy_bandwidth(reps)), flush=True)
    print(json.dumps(sgemm_rate(reps)), flush=True)
    for shape in sys.argv[2:]:
        sizes = [int(v) for v in shape.split("x")]
        rows, features = sizes[:2]
        classes = sizes[2] if len(sizes) > 2 else 1
        for tf32 in (False, True):
            print(
                json.dumps(epoch_time(rows, features, classes, reps, tf32)), flush=True
            )


if __name__ == "__main__":
    main()

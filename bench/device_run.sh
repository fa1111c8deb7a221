#!/usr/bin/env bash
# One prepared run on a lent NVIDIA GPU (README: "On a real GPU"). Built here, carried there:
#   .device/bins.tar.gz  stripped release binaries (downhill, the tiled_products example, GPU test suites)
#   .gl/*.deb            the Vulkan loader (the device tool's README says how to fetch it)
# usage there: bash bench/device_run.sh SECONDS [STEP...]   (STEP: tests torch tiled bench big optimum)
# Every step runs under what is left of SECONDS; everything lands in $OUT/log.txt. The first
# try (2026-12-05, an H100, all steps in one 320 s call) lost the machine and returned nothing:
# send the default short call first, then the other steps.
set -u -o pipefail
budget=${1:-300}
shift
steps=${*:-tiled torch}
deadline=$(($(date +%s) + budget))
log=$OUT/log.txt

if [ -z "${NO_GL:-}" ]; then
    for f in .gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
    icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
    [ -f $icd ] || icd=$(find / -name 'nvidia_icd*.json' 2>/dev/null | head -1)
    export VK_DRIVER_FILES=$icd
fi
export XDG_RUNTIME_DIR=/tmp DOWNHILL_REQUIRE_GPU=1 PYTHONUNBUFFERED=1
D=/tmp/bin
mkdir -p $D target/release /work
tar xzf .device/bins.tar.gz -C $D
cp $D/downhill target/release/downhill
# The suites find their fixtures and the binary by the path they were built at.
[ -e /work/main ] || ln -s "$PWD" /work/main

# step NAME LIMIT COMMAND...: runs COMMAND under min(LIMIT, time left), its output into the log.
step() {
    local name=$1 limit=$2 left
    shift 2
    left=$((deadline - $(date +%s)))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -le 5 ]; then
        echo "== $name: skipped, no time left" | tee -a "$log"
        return
    fi
    local start=$SECONDS
    echo "== $name (limit ${limit}s): $*" | tee -a "$log"
    timeout "$limit" "$@" >>"$log" 2>&1
    echo "== $name: rc $? in $((SECONDS - start))s" | tee -a "$log"
}

{
    date -u
    echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
    nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm,power.limit,memory.total --format=csv
    nproc
} >>"$log" 2>&1
step devices 20 $D/downhill devices
grep -q "${ADAPTER:-NVIDIA}" "$log" || { echo "no ${ADAPTER:-NVIDIA} adapter"; tail -30 "$log"; exit 1; }

suites() {
    local pids=()
    for t in gpu_products gradients wide gpu_curvature gpu_sparse descent streaming solvers; do
        ($D/$t --test-threads 1 >"/tmp/$t.txt" 2>&1; echo "$t: rc $? $(grep -E '^test result' "/tmp/$t.txt")") &
        pids+=($!)
    done
    wait "${pids[@]}"
}
suite_results() {
    for t in gpu_products gradients wide gpu_curvature gpu_sparse descent streaming solvers; do
        echo "$t: $(grep -h '^test result' "/tmp/$t.txt" || echo 'unfinished')"
    done
    grep -hE -A8 'panicked|^failures' /tmp/*.txt | head -80
}
export -f suites
export D

for s in $steps; do
    case $s in
    tests) step tests 150 bash -c suites
        suite_results >>"$log" 2>&1 ;;
    torch) step torch 60 python3 bench/torch_epoch.py 20 20000x2048x1000 2000000x64 200000x512 ;;
    tiled) step tiled 120 $D/tiled_products 20000x2048x1000 20000x2048x33 20000x2048x64 20000x2048x128 ;;
    bench) step bench 120 $D/downhill --quiet bench --backends gpu --no-numpy \
        --shapes 2000000x64,200000x512,10000000x256,20000x2048x1000 ;;
    big) for b in gpu cpu; do
        step "big_$b" 60 $D/downhill --quiet fit --model logistic --rows 10000000 --features 256 \
            --epochs 3 --lr 0.1 --backend $b --json
    done ;;
    optimum) export DOWNHILL_PYTHON=python3
        step optimum 150 $D/downhill --quiet bench --to-optimum \
        --backends gpu,cpu --problems 1000000x64,200000x64x10 ;;
    esac
done
date -u >>"$log"

#!/usr/bin/env bash
# One command on a GPU machine: build the CUDA extension in place, test, sanitize, benchmark.
#
#   bash scripts/gpu_check.sh            # from the repository root; results in $OUT (default ./gpu_out)
#
# Needs python3 with torch, triton, pytest, pybind11, cmake, ninja and nvcc (no network: nothing
# is installed or downloaded). Writes only $OUT/gpu_check.log, $OUT/summary.json and one
# $OUT/<benchmark>.json per benchmarks/gpu_*.py. Every step has a time limit and the whole run
# stays under KF_CHECK_BUDGET seconds (default 540); a step that would start too late is skipped.
set -uo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${OUT:-$ROOT/gpu_out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG=$OUT/gpu_check.log
STEPS=$(mktemp)               # name<TAB>status<TAB>rc<TAB>seconds, outside $OUT
BUDGET=${KF_CHECK_BUDGET:-540}
PY=${PYTHON:-python3}
ARCH=${KERNELFLOW_CUDA_ARCHITECTURES:-90}
: > "$LOG"

export PYTHONPATH=$ROOT/python${PYTHONPATH:+:$PYTHONPATH}
export PYTHONDONTWRITEBYTECODE=1
export KERNELFLOW_COMMIT=${KERNELFLOW_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
unset TRITON_INTERPRET        # real Triton kernels on the GPU
# nvcc and compute-sanitizer may live in the toolkit folder rather than on PATH
for d in ${CUDA_HOME:-} /usr/local/cuda /usr/local/cuda-13*; do
  if [ -x "$d/bin/nvcc" ] && ! command -v nvcc > /dev/null; then export PATH=$PATH:$d/bin; fi
done
SANITIZER=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer /usr/local/cuda*/compute-sanitizer/compute-sanitizer 2> /dev/null | head -1)
SANITIZER=${SANITIZER:-compute-sanitizer}

log() { echo "$*" | tee -a "$LOG"; }

# step NAME LIMIT_S CMD...: run CMD (a program: shell functions go through `bash -c` after
# `export -f`) with a time limit capped by what is left of the budget.
step() {
  local name=$1 limit=$2; shift 2
  local left=$((BUDGET - SECONDS - 5))
  if ((left < 15)); then
    log "=== $name: SKIPPED (time budget spent)"
    printf '%s\tskip\t\t0\n' "$name" >> "$STEPS"
    return 0
  fi
  ((limit > left)) && limit=$left
  log "=== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout -k 10 "$limit" "$@" 2>&1 | tee -a "$LOG"
  local rc=${PIPESTATUS[0]}
  local dt=$((SECONDS - t0)) status=pass
  ((rc != 0)) && status=fail
  ((rc == 124 || rc == 137)) && status=timeout
  log "=== $name: $status (rc=$rc, ${dt}s)"
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$dt" >> "$STEPS"
  return $rc
}

log "kernelflow gpu_check $(date -u +%Y-%m-%dT%H:%M:%SZ) commit $KERNELFLOW_COMMIT"
step environment 30 bash -c 'set -e; nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nvcc --version | tail -2; '"$PY"' -c "import torch, triton; print(\"torch\", torch.__version__, \"cuda\", torch.version.cuda, \"triton\", triton.__version__)"'

build() {
  cmake -S . -B build/gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DKERNELFLOW_CUDA=ON \
    -DKERNELFLOW_CUDA_ARCHITECTURES="$ARCH" -Dpybind11_DIR="$($PY -m pybind11 --cmakedir)" \
    -DPython_EXECUTABLE="$(command -v $PY)" && cmake --build build/gpu -j "$(nproc)" || return 1
  local so
  so=$(ls build/gpu/_C*.so | head -1) || return 1
  rm -f python/kernelflow/_C*.so
  ln -sf "../../$so" python/kernelflow/
}
export PY ARCH
export -f build
if step build 240 bash -c build; then BUILT=1; else BUILT=0; fi

info() {
  $PY - <<'PY'
import json, sys
import kernelflow
info = kernelflow.build_info()
print(json.dumps(info, indent=1))
ok = info.get("cuda_kernels") and info.get("cuda_devices_kernelflow", 0) > 0 and "cuda" in info.get("backends_cuda", [])
sys.exit(0 if ok else 1)
PY
}
export -f info
step build_info 60 bash -c info

# rc 5 = no test carries the gpu marker yet: not a failure
step pytest_gpu 120 bash -c '"$0" -m pytest -q -m gpu -p no:cacheprovider tests; rc=$?; ((rc == 5)) && rc=0; exit $rc' "$PY"

# no caching allocator: every tensor is its own allocation, so out-of-bounds accesses are caught
step memcheck 90 env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool memcheck --error-exitcode 1 --leak-check no $PY scripts/sanitize_kernels.py
step racecheck 90 env PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool racecheck --error-exitcode 1 $PY scripts/sanitize_kernels.py

run_bench() {
  $PY - "$1" "$2" <<'PY'
import importlib.util, sys
spec = importlib.util.spec_from_file_location("bench_module", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
sys.exit(mod.main(sys.argv[2]) or 0)
PY
}
export -f run_bench
for f in benchmarks/gpu_*.py; do
  [ -e "$f" ] || continue
  name=$(basename "$f" .py)
  step "$name" 200 bash -c 'run_bench "$1" "$2"' _ "$f" "$OUT/$name.json"
done

# TensorRT engines (fp16 and int8 QDQ) only where the tensorrt package imports; absent, the step is skipped
if $PY -c "import tensorrt" 2>/dev/null; then
  step tensorrt 240 bash -c '"$0" -m pytest -q -p no:cacheprovider tests/test_deploy_tensorrt.py && "$0" benchmarks/bench_export.py --tensorrt --out "$1/export_tensorrt.json"' "$PY" "$OUT"
else
  log "tensorrt: skipped (import tensorrt fails here)"
fi

# last, so that a slow suite cannot starve the sanitizers and benchmarks: it gets what is left
step pytest_all 300 $PY -m pytest -q -p no:cacheprovider tests

# summary.json and the table
$PY - "$STEPS" "$OUT/summary.json" "$BUILT" <<'PY' 2>&1 | tee -a "$LOG"
import datetime, json, os, sys
steps = []
for line in open(sys.argv[1]):
    name, status, rc, secs = line.rstrip("\n").split("\t")
    steps.append({"step": name, "status": status, "rc": int(rc) if rc else None, "seconds": int(secs)})
try:
    import torch
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
except Exception as e:
    device = f"torch import failed: {e}"
doc = {"device": device, "commit": os.environ.get("KERNELFLOW_COMMIT", "unknown"),
       "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
       "built": sys.argv[3] == "1", "passed": all(s["status"] in ("pass", "skip") for s in steps)
       and any(s["status"] == "pass" for s in steps),
       "complete": all(s["status"] != "skip" for s in steps), "steps": steps}
with open(sys.argv[2], "w") as f:
    json.dump(doc, f, indent=1)
w = max(len(s["step"]) for s in steps)
print(f"\n{'step'.ljust(w)}  status   rc    s")
for s in steps:
    print(f"{s['step'].ljust(w)}  {s['status']:7s}  {'' if s['rc'] is None else s['rc']:>3}  {s['seconds']:>3}")
print(f"{device}, commit {doc['commit']}: {'PASS' if doc['passed'] else 'FAIL'}"
      f"{'' if doc['complete'] else ' (incomplete: steps skipped for time)'} ({sum(s['seconds'] for s in steps)} s)")
PY
rm -f "$STEPS"
grep -q '"passed": true' "$OUT/summary.json"

#!/usr/bin/env bash
# One command for a lent GPU machine: build the extension in place (ptxas log kept), run every
# test marked cuda or triton, time the fused CUDA kernels against the reference, run the
# benchmark suites, and write it all as JSON.
#
#   benchmarks/gpu_check.sh [OUTDIR]        OUTDIR defaults to $OUT if set, else ./gpu_check_out
#
# Environment:
#   PYTHON               interpreter with torch and the build/test deps (default: python3)
#   GPU_CHECK_BUDGET_S   wall-clock budget for everything, seconds (default 470); each step gets
#                        at most what is left and is stopped (rc 124) when it runs out
#   GPU_CHECK_ALL_ARCHS  1: build sm_80..sm_90+PTX as CI does (default: only this GPU's arch, faster)
#   GPU_CHECK_FULL       1: full benchmark grids instead of --quick ones
#   GPU_CHECK_STEPS      which steps to run (default: all, in this order)
#                        "build tests kernel_timings bench_cli pytest_benchmarks"; e.g. a warm
#                        machine's second call: GPU_CHECK_STEPS="kernel_timings bench_cli"
#
# Every step runs even when an earlier one failed; each one's exit code, time and log land in
# OUTDIR (steps.tsv, <step>.log) and in OUTDIR/gpu_check.json. Exit status: 0 if all passed.
set -u
cd "$(dirname "$0")/.."
OUTDIR="${1:-${OUT:-$PWD/gpu_check_out}}"
mkdir -p "$OUTDIR"
OUTDIR="$(cd "$OUTDIR" && pwd)"
PY="${PYTHON:-python3}"
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-470}
STEPS="$OUTDIR/steps.tsv"
printf 'step\trc\tseconds\n' > "$STEPS"

STEPS_WANTED=" ${GPU_CHECK_STEPS:-build tests kernel_timings bench_cli pytest_benchmarks} "

remaining() { echo $((START + BUDGET - $(date +%s))); }
wanted() { [[ "$STEPS_WANTED" == *" $1 "* ]]; }

# run_step NAME CAP_S CMD...: runs CMD with a timeout of min(CAP_S, budget left), output to NAME.log
run_step() {
  local name=$1 cap=$2
  shift 2
  local left limit t0 rc dt
  left=$(remaining)
  limit=$((cap < left ? cap : left))
  if ((limit < 15)); then
    echo "=== $name: SKIPPED (budget spent)"
    printf '%s\tskipped\t0\n' "$name" >> "$STEPS"
    return
  fi
  echo "=== $name (at most ${limit}s): $*"
  t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > "$OUTDIR/$name.log" 2>&1
  rc=$?
  dt=$(($(date +%s) - t0))
  printf '%s\t%s\t%s\n' "$name" "$rc" "$dt" >> "$STEPS"
  if ((rc == 0)); then
    echo "    ok (${dt}s)"
  else
    [[ $rc == 124 || $rc == 137 ]] && echo "    TIMED OUT after ${dt}s" || echo "    FAILED rc=$rc (${dt}s)"
    echo "    last lines of $OUTDIR/$name.log:"
    tail -n 30 "$OUTDIR/$name.log" | sed 's/^/    | /'
  fi
}

echo "gpu_check: output in $OUTDIR, budget ${BUDGET}s, python $PY"
"$PY" - > "$OUTDIR/environment.log" 2>&1 <<'EOF'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "devices", torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    print(i, torch.cuda.get_device_name(i), torch.cuda.get_device_capability(i))
EOF
command -v nvidia-smi > /dev/null && nvidia-smi >> "$OUTDIR/environment.log" 2>&1
cat "$OUTDIR/environment.log"

# ---------------------------------------------------------------- build (in place, this torch)
if wanted build; then
  if [[ "${GPU_CHECK_ALL_ARCHS:-0}" != 1 ]]; then
    ARCH=$("$PY" -c "import torch; print('%d.%d' % torch.cuda.get_device_capability())" 2>/dev/null)
    [[ -n "$ARCH" ]] && export TAYLOR_FAST_CUDA_ARCHS="$ARCH"
  fi
  touch csrc/cuda/*.cu  # recompile the kernels so ptxas prints their registers and spills
  run_step build 300 env TAYLOR_FAST_CUDA=ON TAYLOR_FAST_PTXAS_VERBOSE=1 CUDAFLAGS="--threads 4" \
    "$PY" -m pip install -v --no-build-isolation --no-deps -e .
  run_step ptxas 30 "$PY" benchmarks/ptxas_report.py "$OUTDIR/build.log" --json "$OUTDIR/ptxas.json"
fi

# ---------------------------------------------------------------- tests
wanted tests && run_step tests 240 "$PY" -m pytest -m "cuda or triton" -q -rfEs -p no:cacheprovider \
  --junitxml="$OUTDIR/tests.xml"

# ---------------------------------------------------------------- benchmarks
wanted kernel_timings && run_step kernel_timings 150 "$PY" benchmarks/cuda_kernel_timings.py --compile \
  --json "$OUTDIR/cuda_kernel_timings.json"
QUICK=(--quick)
[[ "${GPU_CHECK_FULL:-0}" == 1 ]] && QUICK=()
wanted bench_cli && run_step bench_cli 180 "$PY" -m taylor_fast bench --device cuda ${QUICK[@]+"${QUICK[@]}"} --json "$OUTDIR/bench_cuda.json"
if ! wanted pytest_benchmarks; then
  :
elif compgen -G "benchmarks/test_*.py" > /dev/null; then
  GRID=()
  if [[ "${GPU_CHECK_FULL:-0}" != 1 ]] && "$PY" -m pytest benchmarks --help 2>/dev/null | grep -q -- --taylor-grid; then
    GRID=(--taylor-grid quick)
  fi
  run_step pytest_benchmarks 180 "$PY" -m pytest benchmarks -m cuda -q -p no:cacheprovider ${GRID[@]+"${GRID[@]}"} \
    --benchmark-json="$OUTDIR/pytest_benchmark_cuda.json"
else
  echo "=== pytest_benchmarks: no benchmarks/test_*.py suite here, skipped"
  printf 'pytest_benchmarks\tabsent\t0\n' >> "$STEPS"
fi

# ---------------------------------------------------------------- summary
"$PY" benchmarks/gpu_check_summary.py "$OUTDIR"

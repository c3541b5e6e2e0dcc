#!/usr/bin/env bash
# The one command for a lent GPU machine (benchmarks/README.md, "The GPU run"): staged and
# time-boxed so that a single 10-minute call brings back complete results.
#
#   bash benchmarks/gpu_check.sh [--out DIR] [--dry-run]
#
# Stages, in priority order, each with its own time cap (seconds); the whole run stops after
# GPU_CHECK_BUDGET_S (default 480). A stage that fails or runs out of time does not stop the
# later ones. A stage past its cap gets SIGINT first (pytest then still writes its report and
# summary), SIGKILL 15 s later.
#   env       environment report: GPU, driver, torch, CUDA, Triton, the tools below      30
#   build     the extension for this GPU's arch only, ptxas report of the CUDA kernels   160
#   cuda      pytest -m "cuda and not triton", but the property test                     100
#   triton    pytest -m triton, but the property test; pinned configs (one compile per
#             kernel and dtype), over xdist workers                                       130
#   headline  taylor-fast bench --grid headline (order 3, hidden 32, 4x3x512x512 and
#             1x3x1080x1920, TF32 / fp32 / bf16, eager vs fused, compiled vs fused)       90
#   rest      the property test on cuda and triton (a child process per example, each
#             paying CUDA's start-up; Triton's random shapes and dtypes, a compile each),
#             CUDA kernel timings (SIMT vs tensor cores), the quick bench grid             rest
#
# --dry-run runs the same machinery on a machine without a GPU: each stage that needs one is
# replaced by its CPU equivalent at tiny sizes (the CUDA kernels in the host emulator, Triton
# in its interpreter, the bench on the CPU); `make test` runs it (tests/test_gpu_check.py).
#
# What comes back (at most 8 files, so the rest is bundled) in DIR (default $OUT, else
# ./gpu_check_out), each written as soon as its stage ends:
#   gpu_check.json     every stage's status and seconds, the environment, test counts and failures
#   gpu_check.log      everything every stage printed
#   tests_cuda.xml, tests_triton.xml, tests_property.xml      JUnit reports
#   bench_headline.json  the headline taylor-fast bench document (marked partial if cut off)
#   details.tar.gz     per-stage logs, the build log, ptxas.json, cuda_kernel_timings.json,
#                      bench_rest.json
#
# Environment: PYTHON (default python3), GPU_CHECK_BUDGET_S (default 480), GPU_CHECK_CAPS
# ("stage=seconds ..." overrides caps), GPU_CHECK_STAGES (default: all, in the order above).
set -u
cd "$(dirname "$0")/.."

DRY=0
OUTDIR="${OUT:-$PWD/gpu_check_out}"
while (($#)); do
  case "$1" in
    --dry-run) DRY=1 ;;
    --out) OUTDIR="$2"; shift ;;
    *) echo "gpu_check.sh: unknown argument '$1' (expected --out DIR or --dry-run)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUTDIR" && OUTDIR="$(cd "$OUTDIR" && pwd)"
WORK="$(mktemp -d)"  # per-stage logs and side files, bundled into details.tar.gz
PY="${PYTHON:-python3}"
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-480}
STAGES="${GPU_CHECK_STAGES:-env build cuda triton headline rest}"
declare -A CAP=([env]=30 [build]=160 [cuda]=100 [triton]=130 [headline]=90 [rest]=9999)
for pair in ${GPU_CHECK_CAPS:-}; do CAP[${pair%%=*}]=${pair#*=}; done
LOG="$OUTDIR/gpu_check.log"
: > "$LOG"
printf 'stage\tstatus\texit_code\tseconds\n' > "$WORK/stages.tsv"
export PYTHONUNBUFFERED=1 GPU_CHECK_DRY_RUN=$DRY

say() { echo "$*" | tee -a "$LOG"; }
remaining() { echo $((START + BUDGET - $(date +%s))); }

summarise() {
  "$PY" benchmarks/gpu_check_summary.py "$OUTDIR" "$WORK" >> "$WORK/summary.log" 2>&1
  tar -czf "$OUTDIR/details.tar.gz" -C "$WORK" . 2>/dev/null
}

# stage NAME COMMAND: run the bash COMMAND under the stage's cap (or what is left of the budget),
# log it, record it. The command runs in its own bash so that `timeout` can signal all of it.
stage() {
  local name=$1 command=$2
  [[ " $STAGES " == *" $name "* ]] || return 0
  local left cap limit t0 rc status
  left=$(remaining)
  cap=${CAP[$name]}
  limit=$((cap < left ? cap : left))
  if ((left < 10)); then
    say "=== $name: skipped, the ${BUDGET} s budget is spent"
    printf '%s\tskipped\t\t0\n' "$name" >> "$WORK/stages.tsv"
    summarise
    return 0
  fi
  say "=== $name (at most ${limit} s): $command"
  t0=$(date +%s)
  timeout -s INT -k 15 "$limit" bash -c "$command" > "$WORK/$name.log" 2>&1
  rc=$?
  cat "$WORK/$name.log" >> "$LOG"
  case $rc in
    0) status=passed ;;
    124 | 137) status="timed out" ;;
    *) status=failed ;;
  esac
  printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$(($(date +%s) - t0))" >> "$WORK/stages.tsv"
  say "    $status (exit $rc, $(($(date +%s) - t0)) s)"
  if [[ $status != passed ]]; then tail -n 15 "$WORK/$name.log" | sed 's/^/    | /'; fi
  summarise
}

export PY WORK OUTDIR
PYTEST="\"\$PY\" -m pytest -q -rfE -p no:cacheprovider"
# xdist spreads the Triton compiles (CPU work, seconds each) over the machine's cores
XDIST=""
if "$PY" -c "import xdist" 2> /dev/null; then XDIST="-n ${GPU_CHECK_WORKERS:-8}"; fi

say "gpu_check: $( ((DRY)) && echo "DRY RUN (no GPU: CPU equivalents at tiny sizes), " )output in $OUTDIR, budget ${BUDGET} s, python $PY"

# ------------------------------------------------------------------ 1. environment, tools
stage env '"$PY" benchmarks/gpu_check_summary.py --environment "$WORK/environment.json"'

# ------------------------------------------------------------------ 2. build
if ((DRY)); then
  stage build '"$PY" -m taylor_fast info --json'
else
  stage build '
    arch=$("$PY" -c "import torch; print(\"%d.%d\" % torch.cuda.get_device_capability())") || exit 1
    touch csrc/cuda/*.cu  # recompiled, so that ptxas prints every kernel'"'"'s registers and spills
    TAYLOR_FAST_CUDA=ON TAYLOR_FAST_CUDA_ARCHS="$arch" TAYLOR_FAST_PTXAS_VERBOSE=1 \
      CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$PY" -m pip install -v --no-build-isolation --no-deps -e . \
      > "$WORK/pip_build.log" 2>&1 || { tail -n 60 "$WORK/pip_build.log"; exit 1; }
    "$PY" benchmarks/ptxas_report.py "$WORK/pip_build.log" --json "$WORK/ptxas.json"'
fi

# The headline bench's compiles (Triton kernels, the compiled reference) run in the background
# while the test stages run: the tests leave most CPU cores idle, the bench would not.
if ((DRY)); then WARM_ARGS="--device cpu --size 1x3x16x16 --backends reference,cpu"; else WARM_ARGS=""; fi
WARMUP_PID=""
if [[ " $STAGES " == *" headline "* ]]; then
  "$PY" benchmarks/gpu_warmup.py $WARM_ARGS > "$WORK/warmup.log" 2>&1 &
  WARMUP_PID=$!
  say "=== warm-up for the headline bench started in the background (pid $WARMUP_PID, $WORK/warmup.log)"
fi

# wait_for_warmup: the headline stage waits for it, up to what the budget allows
wait_for_warmup() {
  [[ -n "$WARMUP_PID" ]] || return 0
  local deadline=$((START + BUDGET - ${CAP[headline]}))
  while kill -0 "$WARMUP_PID" 2> /dev/null && (($(date +%s) < deadline)); do sleep 1; done
  if kill -0 "$WARMUP_PID" 2> /dev/null; then
    kill -INT "$WARMUP_PID" 2> /dev/null
    say "=== warm-up stopped unfinished: the headline bench compiles the rest itself"
  fi
  wait "$WARMUP_PID" 2> /dev/null
  say "=== warm-up: $(tail -n 1 "$WORK/warmup.log")"
  cat "$WORK/warmup.log" >> "$LOG"
}

# ------------------------------------------------------------------ 3-4. correctness
if ((DRY)); then
  stage cuda "$PYTEST tests/test_cuda_emulated.py -k 'step_forward_and_backward or zero_hidden' \
    --junitxml=\"\$OUTDIR/tests_cuda.xml\""
  stage triton "$PYTEST tests/test_backend_conformance.py -k 'step_and_every_gradient and triton' --junitxml=\"\$OUTDIR/tests_triton.xml\""
else
  NOT_PROPERTY="-k 'not test_random_calls_give_the_reference_result'"
  stage cuda "$PYTEST -m 'cuda and not triton' $NOT_PROPERTY --junitxml=\"\$OUTDIR/tests_cuda.xml\""
  stage triton "TAYLOR_FAST_TRITON_AUTOTUNE=0 $PYTEST $XDIST -m triton $NOT_PROPERTY \
    --junitxml=\"\$OUTDIR/tests_triton.xml\""
fi

# ------------------------------------------------------------------ 5-6. benchmarks
wait_for_warmup
if ((DRY)); then
  SMALL="--device cpu --size 1x3x16x16 --backends reference,cpu"
  stage headline "\"\$PY\" -m taylor_fast bench --grid headline $SMALL --json \"\$OUTDIR/bench_headline.json\""
  stage rest "$PYTEST tests/test_ops_property.py -k 'reference and random_calls' \
      --junitxml=\"\$OUTDIR/tests_property.xml\";
    \"\$PY\" -m taylor_fast bench --grid quick $SMALL --json \"\$WORK/bench_rest.json\""
else
  stage headline '"$PY" -m taylor_fast bench --device cuda --grid headline --json "$OUTDIR/bench_headline.json"'
  stage rest "TAYLOR_FAST_TRITON_AUTOTUNE=0 $PYTEST tests/test_ops_property.py -m 'cuda or triton' \
      --junitxml=\"\$OUTDIR/tests_property.xml\";
    \"\$PY\" benchmarks/cuda_kernel_timings.py --quick --json \"\$WORK/cuda_kernel_timings.json\";
    \"\$PY\" -m taylor_fast bench --device cuda --grid quick --json \"\$WORK/bench_rest.json\""
fi

summarise
say "gpu_check: done in $(($(date +%s) - START)) s"
"$PY" benchmarks/gpu_check_summary.py "$OUTDIR" "$WORK" --print | tee -a "$LOG"
status=${PIPESTATUS[0]}
tar -czf "$OUTDIR/details.tar.gz" -C "$WORK" .
rm -rf "$WORK"
exit $status

#!/usr/bin/env bash
# The ONE script of issue 11 for the lent GPU machine: every GPU measurement of the kit in one run.
#
#   on the GPU machine, from the repository root:  bash benchmarks/gpu/run.sh
#   dry run on this CPU machine (tiny sizes):       bash benchmarks/gpu/run.sh --dry-run
#
# Installs the carried wheels (.whl/, ignored through .git/info/exclude) into /tmp/site, seeds the gpu-check
# workdir with the carried demo features (.gpu_data/, likewise), puts the
# repository and /tmp/site on PYTHONPATH (the kit is not pip-installed: the device's Python is 3.12),
# then hands over to benchmarks/gpu/run.py, which runs every stage with its own time limit and
# records each stage's outcome in $OUT/summary.json (a failing stage never stops the next).
set -u
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD/benchmarks/results/gpu/out}"
mkdir -p "$OUT"
if [ "${1:-}" = "--dry-run" ]; then
  PY="${PYTHON:-.venv/bin/python}"
else
  PY="${PYTHON:-python3}"
  if ls .whl/*.whl > /dev/null 2>&1; then
    started=$(date +%s)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      > "$OUT/install.log" 2>&1
    echo "{\"rc\": $?, \"seconds\": $(( $(date +%s) - started ))}" > "$OUT/install.json"
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  # .gpu_data/runs (ignored, carried): the demo data's annotations and CLIP features, so the gpu_check
  # stage skips rendering and feature extraction (the features stage tests GPU extraction on its own).
  if [ -d .gpu_data/runs ]; then
    mkdir -p /tmp/matr-gpu-check && cp -r .gpu_data/runs /tmp/matr-gpu-check/
  fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg HF_HUB_OFFLINE=1
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
exec "$PY" benchmarks/gpu/run.py --out "$OUT" "$@"

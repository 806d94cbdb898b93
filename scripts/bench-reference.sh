#!/usr/bin/env bash
# changedet against the official ClearSCD code on this machine, in alternating rounds (so that the
# machine's noise falls on both), at the same thread count: inference of one 512² pair and a
# training step of 4 × 256² pairs with the full objective. Prints each side's median over the
# rounds (each round itself a median of 5 runs after a warm-up) and the ratios.
# The reference comes from its repository (tangkai-RS/ClearSCD at 3acccae, the commit the golden
# tests were made from; or $CHANGEDET_CLEARSCD_REPO, a folder holding its code) and its pure-Python
# dependencies, installed with pip --target into .cache/reference/; nothing of it enters changedet.
# Usage: bash scripts/bench-reference.sh [ROUNDS]   (CHANGEDET_THREADS: threads, default all cores)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds="${1:-5}"
threads="${CHANGEDET_THREADS:-$(nproc)}"
bash scripts/setup.sh >/dev/null
ref="$root/.cache/reference"
code="${CHANGEDET_CLEARSCD_REPO:-$ref/ClearSCD}"
if [ -n "${CHANGEDET_CLEARSCD_REPO:-}" ] && [ ! -f "$code/model/ClearSCD.py" ]; then
  echo "bench-reference: $code holds no model/ClearSCD.py" >&2
  exit 1
fi
if [ ! -f "$code/model/ClearSCD.py" ]; then
  rm -rf "$code"
  git clone -q https://github.com/tangkai-RS/ClearSCD "$code"
  git -C "$code" checkout -q 3acccae
fi
if [ ! -d "$ref/site/segmentation_models_pytorch" ]; then
  .venv/bin/python -m pip install -q --no-deps --target "$ref/site" segmentation-models-pytorch==0.3.3 \
    efficientnet-pytorch==0.7.1 timm==0.9.2 pretrainedmodels==0.7.4 torchvision==0.28.0 einops==0.8.2 \
    pillow tqdm six huggingface_hub safetensors pyyaml packaging filelock fsspec
fi
changedet="${CHANGEDET_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/changedet}"
[[ -n "${CHANGEDET_BIN:-}" ]] || cargo build -q --release --locked -p changedet
results="$(mktemp)"
for round in $(seq "$rounds"); do
  "$changedet" --threads "$threads" bench --model clearscd --size 512 --train-size 256 --batch-size 4 --iters 5 --device cpu \
    | awk -v round="$round" '/^inference/ {print "changedet inference " $2} /^training step/ {print "changedet train " $3}' >> "$results"
  OMP_NUM_THREADS="$threads" PYTHONPATH="$ref/site" .venv/bin/python scripts/reference/clearscd_bench.py "$code" --iters 5 2>/dev/null \
    | tail -n 1 | .venv/bin/python -c 'import json, sys; r = json.load(sys.stdin); print("reference inference", r["inference_ms"]); print("reference train", r["train_step_ms"])' >> "$results"
  echo "round $round of $rounds done" >&2
done
.venv/bin/python - "$results" "$threads" "$rounds" <<'PY'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    side, what, ms = line.split()
    times.setdefault((side, what), []).append(float(ms))
print(f"ClearSCD on the CPU, {sys.argv[2]} threads, median of {sys.argv[3]} alternating rounds")
for what, label in [("inference", "inference, one 512² pair"), ("train", "training step, 4 × 256², full objective")]:
    ours, theirs = statistics.median(times[("changedet", what)]), statistics.median(times[("reference", what)])
    print(f"{label:<42} changedet {ours:8.0f} ms   reference {theirs:8.0f} ms   ratio {ours / theirs:.2f}")
PY
rm -f "$results"

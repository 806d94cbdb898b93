#!/usr/bin/env bash
# changedet against a paper's official code on this machine, in alternating rounds (so that the
# machine's noise falls on both), at the same thread count, on the same torch build: inference of
# one pair and a training step with the reference recipe's objective and optimiser. Prints each
# side's median over the rounds (each round itself a median of 5 runs after a warm-up) and the
# ratios.
#   clearscd:   one 512² pair; 4 × 256², full objective. tangkai-RS/ClearSCD at 3acccae (the
#               commit of the golden tests) with segmentation-models-pytorch 0.3.3,
#               efficientnet-pytorch 0.7.1, timm 0.9.2 ($CHANGEDET_CLEARSCD_REPO: a folder
#               holding its code instead of a clone).
#   changeclip: RN50, one 256² pair; 2 × 256². dyzy41/ChangeCLIP at f71a0a3 (its mmsegmentation
#               1.1 fork) with mmengine 0.10.7 and mmcv-lite 2.0.1 ($CHANGEDET_CHANGECLIP_REPO).
# Dependencies are installed with pip --target into .cache/reference/; nothing of them enters
# changedet. The harnesses are scripts/reference/MODEL_bench.py.
# Usage: bash scripts/bench-reference.sh [ROUNDS] [clearscd|changeclip]
#   (CHANGEDET_THREADS: threads, default all cores; CHANGEDET_BIN: a changedet binary to use;
#   CHANGEDET_PROFILE=N: afterwards, both sides' N longest operators of one inference and one
#   training step, by self time, from torch's profiler on each side)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
rounds="${1:-5}"
model="${2:-clearscd}"
threads="${CHANGEDET_THREADS:-$(nproc)}"
# The reference runs on the same torch from Python, so the full variant (see setup.sh).
CHANGEDET_TORCH=full bash scripts/setup.sh >/dev/null
ref="$root/.cache/reference"
case "$model" in
  clearscd)
    code="${CHANGEDET_CLEARSCD_REPO:-$ref/ClearSCD}" url=https://github.com/tangkai-RS/ClearSCD commit=3acccae
    marker=model/ClearSCD.py site="$ref/site"
    packages=(segmentation-models-pytorch==0.3.3 efficientnet-pytorch==0.7.1 timm==0.9.2 pretrainedmodels==0.7.4
      torchvision==0.28.0 einops==0.8.2 pillow tqdm six huggingface_hub safetensors pyyaml packaging filelock fsspec)
    ours=(bench --model clearscd --size 512 --train-size 256 --batch-size 4)
    theirs=()
    labels=("inference, one 512² pair" "training step, 4 × 256², full objective")
    ;;
  changeclip)
    code="${CHANGEDET_CHANGECLIP_REPO:-$ref/ChangeCLIP}" url=https://github.com/dyzy41/ChangeCLIP commit=f71a0a3
    marker=mmseg/models/segmentors/ChangeCLIPCD.py site="$ref/changeclip-site"
    packages=(mmengine==0.10.7 mmcv-lite==2.0.1 timm==0.9.2 torchvision==0.28.0 addict yapf termcolor rich prettytable
      opencv-python-headless matplotlib seaborn ftfy regex wcwidth pygments markdown-it-py mdurl platformdirs
      tomli pandas numpy scipy kiwisolver cycler pyparsing fonttools contourpy python-dateutil pytz tzdata six
      pillow packaging pyyaml huggingface_hub safetensors filelock fsspec tqdm)
    ours=(bench --model changeclip-rn50 --size 256 --batch-size 2)
    theirs=(--size 256 --batch-size 2)
    labels=("RN50 inference, one 256² pair" "RN50 training step, 2 × 256²")
    ;;
  *)
    echo "bench-reference: no reference harness for '$model' (clearscd, changeclip)" >&2
    exit 1
    ;;
esac
if [ ! -f "$code/$marker" ]; then
  if [[ "$code" != "$ref/"* ]]; then
    echo "bench-reference: $code holds no $marker" >&2
    exit 1
  fi
  rm -rf "$code"
  git clone -q "$url" "$code"
  git -C "$code" checkout -q "$commit"
fi
if [ ! -f "$site/.installed" ]; then
  .venv/bin/python -m pip install -q --no-deps --upgrade --target "$site" "${packages[@]}"
  touch "$site/.installed"
fi
changedet="${CHANGEDET_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/changedet}"
[[ -n "${CHANGEDET_BIN:-}" ]] || cargo build -q --release --locked -p changedet
results="$(mktemp)"
for round in $(seq "$rounds"); do
  "$changedet" --threads "$threads" "${ours[@]}" --iters 5 --device cpu \
    | awk '/^inference/ {print "changedet inference " $2} /^training step/ {print "changedet train " $3}' >> "$results"
  OMP_NUM_THREADS="$threads" PYTHONPATH="$site" .venv/bin/python "scripts/reference/${model}_bench.py" "$code" "${theirs[@]}" --iters 5 2>/dev/null \
    | tail -n 1 | .venv/bin/python -c 'import json, sys; r = json.load(sys.stdin); print("reference inference", r["inference_ms"]); print("reference train", r["train_step_ms"])' >> "$results"
  echo "round $round of $rounds done" >&2
done
.venv/bin/python - "$results" "$threads" "$rounds" "$model" "${labels[@]}" <<'PY'
import statistics, sys
results, threads, rounds, model, *labels = sys.argv[1:]
times = {}
for line in open(results):
    side, what, ms = line.split()
    times.setdefault((side, what), []).append(float(ms))
print(f"{model} on the CPU, {threads} threads, median of {rounds} alternating rounds")
for what, label in zip(["inference", "train"], labels):
    ours, theirs = statistics.median(times[("changedet", what)]), statistics.median(times[("reference", what)])
    print(f"{label:<42} changedet {ours:8.0f} ms   reference {theirs:8.0f} ms   ratio {ours / theirs:.2f}")
PY
rm -f "$results"
if [[ -n "${CHANGEDET_PROFILE:-}" ]]; then
  echo; echo "== changedet"
  "$changedet" --threads "$threads" "${ours[@]}" --iters 1 --device cpu --profile "$CHANGEDET_PROFILE" | sed -n '/^profile/,$p'
  echo; echo "== reference"
  OMP_NUM_THREADS="$threads" PYTHONPATH="$site" .venv/bin/python "scripts/reference/${model}_bench.py" "$code" "${theirs[@]}" \
    --iters 1 --profile "$CHANGEDET_PROFILE" 2>/dev/null | grep -v ' - mmengine - ' | head -n -1
fi

#!/usr/bin/env bash
# The GPU checks (CUDA numerics, speed against the device's own PyTorch, whole scenes), in one
# run on a lent device machine (an NVIDIA H200 with torch 2.11; see README, "GPUs").
#
# Here, once the sources are final:   bash scripts/device-check.sh prepare
#   builds dist/changedet-device.tar.xz (scripts/build-device.sh) and packs the official ClearSCD
#   and ChangeCLIP code with the pure-Python packages their harnesses need and the device lacks
#   into .cache/device-check/reference.tar.xz (from scripts/bench-reference.sh's .cache/reference).
# There, through the device tool:     bash scripts/device-check.sh
#   with carry ["dist", ".cache/device-check"] and a timeout of about 540 s (it takes about 5 min).
#   It writes report.txt (everything it printed) to $OUT and prints it.
# CHANGEDET_CHECK_DEVICE=cpu rehearses the run on a machine without a GPU (CHANGEDET_CHECK_QUICK=1:
# small sizes; PYTHON: a python with torch and safetensors; CHANGEDET_BIN: a changedet binary to
# use instead of the package).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bundle=.cache/device-check/reference.tar.xz

if [[ "${1:-}" == prepare ]]; then
  set -e
  bash scripts/build-device.sh
  ref=.cache/reference
  clearscd="${CHANGEDET_CLEARSCD_REPO:-$ref/ClearSCD}" changeclip="${CHANGEDET_CHANGECLIP_REPO:-$ref/ChangeCLIP}"
  for need in "$clearscd/model/ClearSCD.py" "$changeclip/mmseg" "$ref/site/segmentation_models_pytorch" "$ref/changeclip-site/mmengine"; do
    [[ -e "$need" ]] || { echo "device-check: $need is missing: run scripts/bench-reference.sh (both models) first" >&2; exit 1; }
  done
  stage="$(mktemp -d)"
  mkdir -p "$stage/site" .cache/device-check
  cp -r "$clearscd" "$stage/ClearSCD"
  mkdir "$stage/ChangeCLIP" && cp -r "$changeclip/mmseg" "$changeclip/configs" "$stage/ChangeCLIP/"
  # What the device's image lacks (its list: the device tool's KINDS.md); timm at the version the
  # reference pins. All pure Python, so the device's Python 3.12 takes them.
  for package in segmentation_models_pytorch efficientnet_pytorch pretrainedmodels munch timm; do cp -r "$ref/site/$package" "$stage/site/"; done
  for package in mmengine mmcv addict yapf yapf_third_party termcolor prettytable ftfy wcwidth platformdirs; do
    cp -r "$ref/changeclip-site/$package" "$stage/site/"
  done
  find "$stage" -name __pycache__ -prune -exec rm -rf {} +
  tar -cJf "$bundle" -C "$stage" .
  rm -rf "$stage"
  du -h dist/changedet-device.tar.xz "$bundle"
  exit 0
fi

out="${OUT:-/tmp/device-check}"
mkdir -p "$out"
exec > >(tee "$out/report.txt") 2>&1
device="${CHANGEDET_CHECK_DEVICE:-cuda}"
python="${PYTHON:-python3}"
quick="${CHANGEDET_CHECK_QUICK:-}"
work="$(mktemp -d)"
step() { printf '\n== %s\n' "$*"; }
# A failing check is reported and the others still run.
check() { timeout 240 "$@" || echo "!! exit $?: $*"; }

step "machine"
date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "(no nvidia-smi)"
"$python" -c 'import torch; print("python torch", torch.__version__, "cuda", torch.cuda.is_available())'
nproc

if [[ -z "${CHANGEDET_BIN:-}" && -f dist/changedet-device.tar.xz ]]; then
  tar -xJf dist/changedet-device.tar.xz -C "$work"
  changedet=("$work/changedet-device/run.sh")
else
  changedet=("${CHANGEDET_BIN:-target/release/changedet}")
fi
step "changedet info"
check "${changedet[@]}" info --models

step "predict: the default model on samples/levir-cd test_2, $device against the CPU (--raw outputs)"
pair=(--before samples/levir-cd/A/test_2.png --after samples/levir-cd/B/test_2.png)
for run in cpu:fp32 "$device":fp32 "$device":bf16 "$device":fp16; do
  check "${changedet[@]}" predict "${pair[@]}" --device "${run%:*}" --precision "${run#*:}" \
    --out "$work/predict-${run/:/-}" --raw "$work/raw-${run/:/-}.safetensors" --overwrite
done
"$python" - "$work" "$device" <<'PY'
import sys
from safetensors.torch import load_file
work, device = sys.argv[1:]
cpu = load_file(f"{work}/raw-cpu-fp32.safetensors")["logits"]
for precision in ["fp32", "bf16", "fp16"]:
    try:
        other = load_file(f"{work}/raw-{device}-{precision}.safetensors")["logits"]
    except FileNotFoundError:
        print(f"{device} {precision}: no output")
        continue
    relative = ((other - cpu).abs().max() / cpu.abs().max()).item()
    agree = (other.argmax(1) == cpu.argmax(1)).float().mean().item()
    print(f"{device} {precision}: logits max |Δ| {relative:.2e} of max |x|; change map agrees on {100 * agree:.4f} % of the pixels")
PY

# model, inference side, inference batch, training side, training batch (ClearSCD and ChangeCLIP
# as bench-reference.sh times them on the CPU, with GPU-sized batches).
benches=("fc-siam-diff 512 8 256 8" "clearscd 512 8 256 8" "changeclip-rn50 256 16 256 16")
iters=10
if [[ -n "$quick" ]]; then
  benches=("fc-siam-diff 128 2 64 2" "clearscd 128 2 64 2" "changeclip-rn50 64 2 64 2")
  iters=1
fi
step "changedet bench on $device (median of $iters runs after a warm-up; 'against the CPU': same weights and inputs)"
for bench in "${benches[@]}"; do
  read -r model size pairs train batch <<<"$bench"
  for precision in fp32 bf16; do
    echo "-- $model $precision"
    check "${changedet[@]}" bench --model "$model" --size "$size" --inference-batch "$pairs" --train-size "$train" \
      --batch-size "$batch" --iters "$iters" --device "$device" --precision "$precision" | grep -E '^(inference|training|against)'
  done
done

step "reference PyTorch on $device (the official code, the device's torch)"
if [[ -f "$bundle" ]]; then
  mkdir -p "$work/reference" && tar -xJf "$bundle" -C "$work/reference"
  site="$work/reference/site${PYTHONPATH:+:$PYTHONPATH}"
  for bench in "${benches[@]:1}"; do
    read -r model size pairs train batch <<<"$bench"
    for precision in fp32 bf16; do
      echo "-- $model $precision"
      if [[ "$model" == clearscd ]]; then
        args=(scripts/reference/clearscd_bench.py "$work/reference/ClearSCD" --size "$size" --train-size "$train")
      else
        args=(scripts/reference/changeclip_bench.py "$work/reference/ChangeCLIP" --size "$size")
      fi
      PYTHONPATH="$site" check "$python" "${args[@]}" --inference-batch "$pairs" --batch-size "$batch" --iters "$iters" \
        --device "$device" --precision "$precision" 2>&1 | grep -E '^\{|Error|error' | tail -n 3
    done
  done
else
  echo "(no $bundle: run 'bash scripts/device-check.sh prepare' here and carry .cache/device-check)"
fi

step "whole scene on $device (bench --scene: LEVIR-CD test_2 as a mosaic, the shipped default model)"
side=8192
[[ -n "$quick" ]] && side=1024
check "${changedet[@]}" bench --checkpoint models/default.safetensors --scene "$side" --scene-from samples/levir-cd/A/test_2.png,samples/levir-cd/B/test_2.png \
  --device "$device" --rounds 3
rm -rf "$work"

#!/usr/bin/env bash
# Reproduces Daudt, Le Saux & Boulch (ICIP 2018) on OSCD's RGB previews: FC-EF, FC-Siam-conc and
# FC-Siam-diff, each trained with the paper's recipe as its official code runs it (the models'
# default recipe: 96×96 patches every 47 px, flips and 90° turns, class-weighted NLL, Adam 1e-3 +
# L2 1e-4, ×0.95 per epoch, batch 32, each image z-scored) on 11 of the 14 OSCD training cities,
# validated on the other 3 (mumbai, nantes, hongkong; the official test cities are held out of
# ../shared). Writes models/daudt2018/MODEL-oscd-rgb.safetensors and MODEL-oscd-rgb.json (scores on
# the 3 validation cities: whole images, argmax, TP/FP/FN summed over the cities).
# Usage: bash scripts/train-daudt2018.sh [EPOCHS] [MODEL...] (defaults: 50, all three).
# Interrupted runs resume where they stopped; CHANGEDET_MAX_STEPS=N stops each run after N steps
# (62 per epoch), to spread the training over several sittings.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
data="${CHANGEDET_DATA:-../shared/data}"
epochs="${1:-50}"
shift || true
models=("${@:-fc-ef fc-siam-conc fc-siam-diff}")
read -r -a models <<<"${models[*]}"
runs="${CHANGEDET_RUNS:-$root/runs}/daudt2018"
# CHANGEDET_BIN: a changedet binary to use instead of building one.
changedet="${CHANGEDET_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/changedet}"
[[ -n "${CHANGEDET_BIN:-}" ]] || cargo build --release --locked -p changedet
dataset="oscd:$data/oscd-s2"
mkdir -p models/daudt2018
for model in "${models[@]}"; do
  run="$runs/$model"
  resume=(--overwrite)
  [[ -f "$run/last.safetensors" ]] && resume=(--resume)
  [[ -n "${CHANGEDET_MAX_STEPS:-}" ]] && resume+=(--max-steps "$CHANGEDET_MAX_STEPS")
  "$changedet" train --model "$model" --dataset "$dataset" --train-split scripts/splits/oscd-train.txt \
    --val-split scripts/splits/oscd-val.txt --epochs "$epochs" --out "$run" "${resume[@]}"
  out="models/daudt2018/$model-oscd-rgb"
  cp "$run/best.safetensors" "$out.safetensors"
  "$changedet" eval --checkpoint "$out.safetensors" --dataset "$dataset" --split scripts/splits/oscd-val.txt \
    --json "$out.json" --overwrite
done

#!/usr/bin/env bash
# Reproduces Daudt, Le Saux & Boulch (ICIP 2018) on OSCD: FC-EF, FC-Siam-conc and FC-Siam-diff,
# each trained with the paper's recipe as its official code runs it (the models' default recipe:
# 96×96 patches every 47 px, flips and 90° turns, class-weighted NLL, Adam 1e-3 + L2 1e-4, ×0.95
# per epoch, batch 32, each image z-scored over all its pixels and bands).
#
# Usage: bash scripts/train-daudt2018.sh SETTING [EPOCHS] [MODEL...]   (defaults: 50, all three)
#   rgb      OSCD's 8-bit RGB previews (../shared/data/oscd-s2), 11 training cities, validated on
#            the other 3 (mumbai, nantes, hongkong), the best validation kept: MODEL-oscd-rgb.
#   3band    the paper's settings on the official archive's 16-bit bands (ARCHIVE below): B04,
#   13band   B03, B02, or all 13 bands in the official code's order, brought to 10 m as it does;
#            all 14 training cities, the model after the last epoch kept (the official notebook
#            has no validation set; the training cities are scored for the log only, nothing is
#            chosen on them): MODEL-oscd-3band, MODEL-oscd-13band.
# ARCHIVE: $CHANGEDET_OSCD_ARCHIVE, the official archive's folders side by side with the 14
# training cities (`bash scripts/oscd-archive.sh` lays it out from a public copy).
# Writes models/daudt2018/MODEL-oscd-SETTING.safetensors and .json (scores: `changedet eval`).
# Interrupted runs resume where they stopped; CHANGEDET_MAX_STEPS=N stops each run after N steps,
# to spread the training over several sittings; runs live in $CHANGEDET_RUNS (default runs/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
setting="${1:?usage: train-daudt2018.sh rgb|3band|13band [EPOCHS] [MODEL...]}"
epochs="${2:-50}"
shift $(($# < 2 ? $# : 2))
models=("${@:-fc-ef fc-siam-conc fc-siam-diff}")
read -r -a models <<<"${models[*]}"
data="${CHANGEDET_DATA:-../shared/data}"
case "$setting" in
  rgb)
    dataset="oscd:$data/oscd-s2"
    splits=(--train-split scripts/splits/oscd-train.txt --val-split scripts/splits/oscd-val.txt)
    options=()
    keep=best.safetensors
    score_split=scripts/splits/oscd-val.txt ;;
  3band | 13band)
    archive="${CHANGEDET_OSCD_ARCHIVE:?set CHANGEDET_OSCD_ARCHIVE to the official OSCD archive (scripts/oscd-archive.sh)}"
    dataset="oscd:$archive"
    splits=(--train-split train --val-split train)
    if [[ "$setting" == 3band ]]; then
      options=(--bands B04,B03,B02)
    else
      options=(--bands all --model-config '{"in_channels":13}')
    fi
    keep=last.safetensors
    score_split=train ;;
  *) echo "train-daudt2018.sh: SETTING is rgb, 3band or 13band, not '$setting'" >&2; exit 2 ;;
esac
runs="${CHANGEDET_RUNS:-$root/runs}/daudt2018-$setting"
# CHANGEDET_BIN: a changedet binary to use instead of building one.
changedet="${CHANGEDET_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/changedet}"
[[ -n "${CHANGEDET_BIN:-}" ]] || cargo build --release --locked -p changedet
mkdir -p models/daudt2018
for model in "${models[@]}"; do
  run="$runs/$model"
  resume=(--overwrite)
  [[ -f "$run/last.safetensors" ]] && resume=(--resume)
  [[ -n "${CHANGEDET_MAX_STEPS:-}" ]] && resume+=(--max-steps "$CHANGEDET_MAX_STEPS")
  "$changedet" train --model "$model" --dataset "$dataset" "${splits[@]}" "${options[@]}" --epochs "$epochs" \
    --out "$run" "${resume[@]}"
  if ! "$changedet" info "$run/last.safetensors" | grep -Eq "^trained +$epochs epochs?,"; then
    echo "train-daudt2018.sh: $model has not finished its $epochs epochs yet; run the same command again to go on"
    continue
  fi
  out="models/daudt2018/$model-oscd-$setting"
  # Shipped without the optimiser's state (a third of last.safetensors' size), through the
  # Python package where it is installed (scripts/setup-python.sh).
  if .venv/bin/python -c 'import changedet' 2>/dev/null; then
    .venv/bin/python -c 'import changedet, sys; changedet.load(sys.argv[1]).save(sys.argv[2])' "$run/$keep" "$out.safetensors"
  else
    cp "$run/$keep" "$out.safetensors"
  fi
  "$changedet" eval --checkpoint "$out.safetensors" --dataset "$dataset" --split "$score_split" --json "$out.json" --overwrite
done

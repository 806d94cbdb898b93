#!/usr/bin/env bash
# The main job on the bundled real samples: train FC-Siam-diff briefly on LEVIR-CD pairs, evaluate
# it on held-out pairs, and predict change maps (a held-out split and a full 1024×1024 LEVIR tile).
# Everything it writes goes to demo-output/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
data="${CHANGEDET_SAMPLES:-$root/../shared/data}"
out="$root/demo-output"

bash scripts/setup.sh
cargo build --release --locked -p changedet
changedet="${CARGO_TARGET_DIR:-$root/target}/release/changedet"

mkdir -p "$out"
# LEVIR-CD 256×256 crops: 8 pairs to train on, 3 held out for evaluation.
ls "$data/levir-cd-256/A" | head -n 8 > "$out/train.txt"
ls "$data/levir-cd-256/A" | tail -n 3 > "$out/test.txt"
dataset="levir-cd:$data/levir-cd-256"

"$changedet" train --model fc-siam-diff --dataset "$dataset" \
  --train-split "$out/train.txt" --val-split "$out/test.txt" \
  --epochs 25 --batch-size 4 --crop 128 --lr 2e-3 --out "$out/run" --overwrite
"$changedet" eval --checkpoint "$out/run/best.safetensors" --dataset "$dataset" \
  --split "$out/test.txt" --json "$out/eval.json" --overwrite
"$changedet" predict --checkpoint "$out/run/best.safetensors" --dataset "$dataset" \
  --split "$out/test.txt" --out "$out/maps" --overwrite
"$changedet" predict --checkpoint "$out/run/best.safetensors" \
  --before "$data/levir-cd-1024/A/test_2.png" --after "$data/levir-cd-1024/B/test_2.png" \
  --label "$data/levir-cd-1024/label/test_2.png" --out "$out/maps-1024" --overwrite
# A real georeferenced pair (CBERS-4 AWFI, one file per band, int16, a custom Albers CRS): the
# whole-scene pipeline writes COG maps and change polygons with the scene's georeference. (The
# model was trained on LEVIR's 0.5 m RGB, so on 64 m imagery its map only shows the mechanics.)
cbers="$data/cbers4-awfi-2date"
"$changedet" predict --checkpoint "$out/run/best.safetensors" \
  --before "$(ls "$cbers"/A/*.tif | paste -sd,)" --after "$(ls "$cbers"/B/*.tif | paste -sd,)" \
  --bands 3,2,1 --tile 64 --overlap 16 --out "$out/scene" --vector "$out/scene/changes.gpkg" --overwrite

cat <<MSG

Demo finished. Outputs:
  checkpoints      $out/run/best.safetensors, $out/run/last.safetensors
  training log     $out/run/metrics.jsonl and the curves in $out/run/curves.png
  evaluation       $out/eval.json
  change maps      $out/maps/ (held-out 256×256 pairs), $out/maps-1024/ (a whole 1024×1024 tile)
  scene maps       $out/scene/ (change.tif, probability.tif, changes.gpkg: open them in QGIS)
MSG

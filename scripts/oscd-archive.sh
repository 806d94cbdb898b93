#!/usr/bin/env bash
# Lays out OSCD's 14 training cities as the official archive ships them (13 Sentinel-2 bands,
# labels), from a clone of the public repository ChenHongruixuan/ChangeDetectionRepository, whose
# commit 020f7702f235001ea0b2abac054651ab28aeeb0f still holds the archive's files under
# Dataset/OSCD/ (later commits deleted them). The ten test cities' folders are left out: they are
# for acceptance checks, never for training or choosing a model.
# Usage: bash scripts/oscd-archive.sh CLONE DEST   (CLONE: a git clone, or its .git folder)
# then: CHANGEDET_OSCD_ARCHIVE=DEST bash scripts/train-daudt2018.sh 13band
set -euo pipefail
clone="${1:?usage: oscd-archive.sh CLONE DEST}"
dest="${2:?usage: oscd-archive.sh CLONE DEST}"
commit=020f7702f235001ea0b2abac054651ab28aeeb0f
images="Dataset/OSCD/Onera Satellite Change Detection dataset - Images"
labels="Dataset/OSCD/Onera Satellite Change Detection dataset - Train Labels"
cities=$(git -C "$clone" show "$commit:$images/train.txt" | tr ',' ' ')
paths=("$images/README.txt" "$images/train.txt" "$images/test.txt" "$labels/README.txt")
for city in $cities; do paths+=("$images/$city" "$labels/$city"); done
mkdir -p "$dest"
git -C "$clone" archive "$commit" "${paths[@]}" | tar -x -C "$dest" --strip-components=2
echo "oscd-archive.sh: $(wc -w <<<"$cities") training cities in $dest"

#!/usr/bin/env bash
# One-time set-up of everything changedet needs to build and run, idempotent:
#   * Debian packages: GDAL (raster I/O), a C++ toolchain for torch-sys, make for jemalloc's
#     build (changedet's allocator), and chromium (the tests open the HTML report and the viewer
#     in a real headless browser);
#   * a project-local virtual environment `.venv` holding the pinned PyPI torch wheel, whose
#     libtorch tch links against (torch-sys 0.26 requires exactly torch 2.13.0);
#   * the CLIP BPE vocabulary, taken from the MIT-licensed `open_clip_torch` wheel into `.cache/`.
# Nothing here needs to be exported by hand afterwards: `.cargo/config.toml` points the build at
# the venv and the binaries carry an rpath to its `torch/lib`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

TORCH_VERSION=2.13.0
OPEN_CLIP_VERSION=3.3.0

need_apt=()
for pkg in libgdal-dev gdal-bin g++ make pkg-config fonts-dejavu-core ca-certificates chromium; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# The venv needs a Python with its venv module (Debian ships it apart, as python3-venv).
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need_apt+=(python3 python3-venv)
fi
if ((${#need_apt[@]})); then
  if ! command -v apt-get >/dev/null; then
    echo "setup: this machine lacks ${need_apt[*]} and has no apt-get: install them with its package manager, then run setup again" >&2
    exit 1
  fi
  as_root=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null; then
      echo "setup: installing ${need_apt[*]} needs root: run 'apt-get install ${need_apt[*]}' as root (there is no sudo here), then setup again" >&2
      exit 1
    fi
    as_root=(sudo)
  fi
  echo "setup: installing Debian packages: ${need_apt[*]}"
  "${as_root[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if ! .venv/bin/python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('$TORCH_VERSION') else 1)" 2>/dev/null; then
  echo "setup: creating .venv with torch==$TORCH_VERSION (about 2 minutes, 4.7 GB)"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q "torch==$TORCH_VERSION" numpy safetensors
fi

# A stable name for the wheel's package folder (include/ and lib/), whatever the Python version.
ln -sfn "$(.venv/bin/python -c 'import os, torch; print(os.path.dirname(torch.__file__))')" .venv/libtorch

vocab=.cache/bpe_simple_vocab_16e6.txt.gz
if [ ! -s "$vocab" ]; then
  echo "setup: fetching the CLIP BPE vocabulary from open_clip_torch==$OPEN_CLIP_VERSION"
  mkdir -p .cache
  tmp="$(mktemp -d)"
  .venv/bin/python -m pip download -q --no-deps -d "$tmp" "open_clip_torch==$OPEN_CLIP_VERSION"
  .venv/bin/python - "$tmp" "$vocab" <<'PY'
import glob, hashlib, sys, zipfile, os
wheel = glob.glob(os.path.join(sys.argv[1], "*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    data = z.read("open_clip/bpe_simple_vocab_16e6.txt.gz")
# OpenAI's file, byte for byte (the same in ChangeCLIP's repository).
expected = "924691ac288e54409236115652ad4aa250f48203de50a9e4722a6ecd48d6804a"
if hashlib.sha256(data).hexdigest() != expected:
    sys.exit("setup: the vocabulary in the open_clip_torch wheel is not CLIP's (sha256 differs)")
tmp = sys.argv[2] + ".part"
open(tmp, "wb").write(data)
os.replace(tmp, sys.argv[2])
PY
  rm -rf "$tmp"
fi
echo "setup: done (torch $(.venv/bin/python -c 'import torch; print(torch.__version__)'))"

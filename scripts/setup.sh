#!/usr/bin/env bash
# One-time set-up of everything changedet needs to build and run, idempotent:
#   * Debian packages: GDAL (raster I/O), a C++ toolchain for torch-sys, make for jemalloc's
#     build (changedet's allocator), and chromium (the tests open the HTML report and the viewer
#     in a real headless browser);
#   * a project-local virtual environment `.venv` holding the pinned PyPI torch wheel, whose
#     libtorch tch links against (torch-sys 0.26 requires exactly torch 2.13.0), with either all
#     of its CUDA libraries or only the two its CPU library links (see "variant" below);
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

# The wheel's dependencies add 3.3 GB of CUDA libraries and Triton. Without an NVIDIA GPU,
# changedet needs only the two that libtorch_cpu links (the CUDA runtime and CUPTI, pinned as
# torch 2.13.0's cuda-toolkit 13.0.3 pins them): 1.4 GB instead of 4.7, which a CI machine's
# disk once lacked. The full variant also gives a Python `import torch`, which only the
# developer scripts need (scripts/fixtures, scripts/bench-reference.sh).
variant="${CHANGEDET_TORCH:-}"
if [ -z "$variant" ]; then
  if [ -e /dev/nvidiactl ] || command -v nvidia-smi >/dev/null 2>&1; then variant=full; else variant=cpu; fi
fi
case "$variant" in
  full) have_torch=(-c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')") ;;
  cpu) have_torch=(-c "import importlib.metadata as m, sys; sys.exit(m.version('torch') != '$TORCH_VERSION')") ;;
  *) echo "setup: CHANGEDET_TORCH is '$variant'; it must be 'full' (CUDA and Python torch) or 'cpu'" >&2; exit 1 ;;
esac
if ! .venv/bin/python "${have_torch[@]}" 2>/dev/null; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  pip_install=(.venv/bin/python -m pip install -q --no-cache-dir)
  "${pip_install[@]}" --upgrade pip
  if [ "$variant" = full ]; then
    echo "setup: installing torch==$TORCH_VERSION with its CUDA libraries in .venv (about 3 minutes, 4.7 GB)"
    "${pip_install[@]}" "torch==$TORCH_VERSION" numpy safetensors
  else
    echo "setup: installing torch==$TORCH_VERSION for the CPU in .venv (about a minute, 1.4 GB; CHANGEDET_TORCH=full for CUDA)"
    "${pip_install[@]}" --no-deps "torch==$TORCH_VERSION" nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85
  fi
fi

# A stable name for the wheel's package folder (include/ and lib/), whatever the Python version;
# found without importing torch, which the CPU variant cannot do from Python.
ln -sfn "$(.venv/bin/python -c 'import importlib.util as u; print(u.find_spec("torch").submodule_search_locations[0])')" .venv/libtorch

vocab=.cache/bpe_simple_vocab_16e6.txt.gz
if [ ! -s "$vocab" ]; then
  echo "setup: fetching the CLIP BPE vocabulary from open_clip_torch==$OPEN_CLIP_VERSION"
  mkdir -p .cache
  tmp="$(mktemp -d)"
  .venv/bin/python -m pip download -q --no-cache-dir --no-deps -d "$tmp" "open_clip_torch==$OPEN_CLIP_VERSION"
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
# What the venv holds, which may be more than asked for (a full venv is never trimmed).
installed=$(.venv/bin/python -c 'import importlib.metadata as m, importlib.util as u; print(m.version("torch"), "full" if u.find_spec("triton") else "cpu")')
echo "setup: done (torch ${installed% *}, ${installed#* } variant)"

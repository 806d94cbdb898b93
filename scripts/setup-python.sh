#!/usr/bin/env bash
# Installs the Python package `changedet` (crates/python) into the project's .venv, after
# scripts/setup.sh, idempotent. The package runs on the venv's own torch, so `import torch` must
# work there: that takes the CUDA libraries libtorch_cuda.so links (2.7 GB, pinned as torch
# 2.13.0 pins them) even on a CPU-only machine, but neither Triton nor cuda-bindings (the GPU
# compilers and driver bindings, never loaded by `import torch`). Then numpy, the test and
# example tools, and maturin, which builds the native module with the workspace's cargo.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh

if ! .venv/bin/python -c 'import torch, numpy, PIL, pytest, safetensors, matplotlib, maturin' >/dev/null 2>&1; then
  echo "setup-python: installing what \`import torch\` loads (CUDA runtime libraries, 2.7 GB), numpy, pytest and maturin into .venv (about a minute)"
  log="$(mktemp)"
  # pip then warns that torch's Triton and cuda-bindings are missing: on purpose, see above.
  .venv/bin/python -m pip install -q --no-cache-dir \
    "cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.0.3" \
    nvidia-cudnn-cu13==9.20.0.48 nvidia-cusparselt-cu13==0.8.1 nvidia-nccl-cu13==2.29.7 nvidia-nvshmem-cu13==3.4.5 \
    "typing-extensions>=4.10.0" "sympy>=1.13.3" "networkx>=2.5.1" jinja2 "fsspec>=0.8.5" filelock "setuptools>=77.0.3" \
    numpy==2.4.6 pillow==13.0.0 safetensors==0.8.0 matplotlib==3.11.2 pytest==9.2.0 maturin==1.16.0 >"$log" 2>&1 ||
    { cat "$log" >&2; exit 1; }
  rm -f "$log"
  .venv/bin/python -c 'import torch' || { echo "setup-python: torch still does not import in .venv" >&2; exit 1; }
fi

# Built with the workspace's release profile and target folder, so the library crates already
# compiled for the tests are reused, into python/changedet/ (--skip-install: maturin would
# otherwise pip-install torch's full dependencies, Triton's 0.7 GB among them), which a .pth file
# puts on the venv's path: an editable install.
echo "setup-python: building the changedet Python package"
(cd crates/python && VIRTUAL_ENV="$root/.venv" "$root/.venv/bin/maturin" develop --release --locked --skip-install -q)
site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$root/crates/python/python" > "$site/changedet.pth"
.venv/bin/python -c 'import changedet' || { echo "setup-python: the changedet package does not import" >&2; exit 1; }

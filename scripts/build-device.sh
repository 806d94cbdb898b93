#!/usr/bin/env bash
# Builds changedet for a CUDA machine whose own Python has PyTorch 2.11.0 (the device machine
# lent to some tasks: an NVIDIA H200, torch 2.11.0+cu130, no Rust, no GDAL, 64 MiB of tree), and
# packs it into dist/changedet-device.tar.xz:
#   bin/changedet   these sources built with tch 0.24 (made for libtorch 2.11) against the PyPI
#                   torch 2.11.0 wheel's libtorch, stripped (it loads libtorch_cuda.so itself
#                   where an NVIDIA driver is found: crates/changedet/src/device.rs), with GDAL
#                   3.12 and PROJ compiled in (gdal-sys's `bundled` feature: GeoTIFF/COG, VRT,
#                   MEM, PNG, GeoJSON and GeoPackage; no GEOS, so no `--simplify`, and no ZSTD, so
#                   staged maps use DEFLATE). Debian's GDAL with the libraries it links made the
#                   package 45 MB, which with the repository's 34 MB passed the device's 64 MiB;
#   share/proj      PROJ's database, of the bundled PROJ's version;
#   run.sh          runs bin/changedet on the machine's own torch/lib (found through python3).
# On that machine: `tar xJf changedet-device.tar.xz && changedet-device/run.sh info --models`.
# The usual build (tch 0.26, libtorch 2.13, Debian's GDAL), CI and the README's commands are
# untouched: this is a second build of the same sources in target/device/, the copy's manifests
# moved to tch 0.24 and the bundled GDAL. Building GDAL and PROJ takes about 25 minutes on 2 cores
# the first time (cmake comes from PyPI into the project's venv).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh >/dev/null

TORCH_VERSION=2.11.0
TCH_VERSION=0.24.0
work="$root/target/device"
libtorch="$root/.cache/torch-$TORCH_VERSION"

if [ ! -f "$libtorch/torch/lib/libtorch_cuda.so" ]; then
  echo "build-device: fetching the torch==$TORCH_VERSION wheel (CUDA, about 530 MB) to link against"
  tmp="$(mktemp -d)"
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux_2_28_x86_64 -d "$tmp" "torch==$TORCH_VERSION"
  mkdir -p "$libtorch.part"
  .venv/bin/python - "$tmp" "$libtorch.part" <<'PY'
import glob, sys, zipfile
with zipfile.ZipFile(glob.glob(sys.argv[1] + "/torch-*.whl")[0]) as wheel:
    wheel.extractall(sys.argv[2], [n for n in wheel.namelist() if n.startswith(("torch/lib/", "torch/include/")) or n == "torch/version.py"])
PY
  rm -rf "$tmp" "$libtorch"
  mv "$libtorch.part" "$libtorch"
fi

echo "build-device: building with tch $TCH_VERSION against libtorch $TORCH_VERSION in $work"
src="$work/src"
rm -rf "$src"
mkdir -p "$src"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$src"
(cd "$src" && cargo update -q -p tch --precise "$TCH_VERSION")
(cd "$src" && cargo add -q -p changedet-raster gdal-sys@0.12 --features bundled \
  && cargo add -q -p changedet-raster gdal-src@0.3 --features driver_gtiff,driver_vrt,driver_mem,driver_png,driver_gpkg,driver_geojson)
[ -x .venv/bin/cmake ] || .venv/bin/python -m pip install -q --no-cache-dir "cmake==3.31.*"
(cd "$src" && PATH="$root/.venv/bin:$PATH" LIBTORCH="$libtorch/torch" LIBTORCH_CXX11_ABI=1 \
  CARGO_TARGET_DIR="$work/target" cargo build -q --release --locked -p changedet)

dist="$work/changedet-device"
rm -rf "$dist"
mkdir -p "$dist/bin" "$dist/lib" "$dist/share"
strip -o "$dist/bin/changedet" "$work/target/release/changedet"
# The libraries ldd resolves here, but not libtorch's, the C and C++ runtimes, or CUDA's (with
# GDAL compiled in, none so far).
ldd "$dist/bin/changedet" | awk '/=> \// {print $3}' \
  | { grep -v -E '/(libtorch|libc10|libgomp|libc\.so|libm\.so|libstdc\+\+|libgcc_s|ld-linux|libpthread|libdl\.|librt\.|libcuda|libnv)' || true; } \
  | xargs -r -I{} cp -L {} "$dist/lib/"
mkdir -p "$dist/share/proj"
cp "$(ls -t "$work"/target/release/build/proj-sys-*/out/share/proj/proj.db | head -1)" "$dist/share/proj/"
cat > "$dist/run.sh" <<'SH'
#!/usr/bin/env bash
# Runs changedet on this machine's own PyTorch (torch 2.11.0 with CUDA).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${CHANGEDET_PYTHON:-python3}"
read -r version torch_lib < <("$python" -c 'import os, torch; print(torch.__version__.split("+")[0], os.path.join(os.path.dirname(torch.__file__), "lib"))')
if [ "$version" != 2.11.0 ]; then
  echo "run.sh: this build links libtorch 2.11.0, but $python has torch $version" >&2
  exit 1
fi
export LD_LIBRARY_PATH="$torch_lib:$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PROJ_DATA="$here/share/proj"
exec "$here/bin/changedet" "$@"
SH
chmod +x "$dist/run.sh"
mkdir -p dist
tar -C "$work" -cJf dist/changedet-device.tar.xz.part changedet-device
mv dist/changedet-device.tar.xz.part dist/changedet-device.tar.xz
echo "build-device: dist/changedet-device.tar.xz ($(du -h dist/changedet-device.tar.xz | cut -f1))"

#!/usr/bin/env bash
# Fuzzes the checkpoint readers with libFuzzer on the stable toolchain (cargo-fuzz's
# instrumentation without its nightly-only sanitizer), from a seed corpus made of the real
# fixtures. Usage: bash fuzz/run.sh [SECONDS per target, default 120]. Crashes land in
# fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
seconds="${1:-120}"
target=x86_64-unknown-linux-gnu
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# An explicit --target keeps the instrumentation out of build scripts, as cargo-fuzz does.
cargo build --release --target "$target" --bins

fixtures=../crates/models/tests/fixtures
mkdir -p corpus/pickle corpus/checkpoint
python3 - "$fixtures" <<'PY'
import glob, os, sys, zipfile
fixtures = sys.argv[1]
for path in glob.glob(os.path.join(fixtures, "*.pt*")):
    name = os.path.basename(path)
    with zipfile.ZipFile(path) as z:
        pkl = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        open(f"corpus/pickle/{name}.pkl", "wb").write(z.read(pkl))
    open(f"corpus/checkpoint/{name}", "wb").write(open(path, "rb").read())
for path in glob.glob(os.path.join(fixtures, "*.safetensors")):
    open(f"corpus/checkpoint/{os.path.basename(path)}", "wb").write(open(path, "rb").read())
PY
for name in pickle checkpoint; do
  mkdir -p "artifacts/$name"
  "target/$target/release/$name" "corpus/$name" -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 \
    -artifact_prefix="artifacts/$name/" -print_final_stats=1 2>&1 | tee "artifacts/$name/last-run.log" | grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|ERROR|SUMMARY" || true
done

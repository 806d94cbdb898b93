#!/usr/bin/env bash
# Sets everything up (idempotent) and runs the whole test suite. Tests read the real sample data
# and goldens from ../shared beside the repository.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
cargo test --release --workspace --locked --no-fail-fast "$@"
# The Python package (crates/python) against the binary the tests above built.
bash scripts/setup-python.sh
.venv/bin/python -m pytest -q crates/python/tests

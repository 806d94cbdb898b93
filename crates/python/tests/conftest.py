import os
import pathlib
import subprocess

import numpy as np
import pytest
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "samples"


def read_rgb(path):
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.fixture(scope="session")
def levir_pair():
    """A real LEVIR-CD pair (samples/README.md gives its provenance) and its label."""
    folder = SAMPLES / "levir-cd"
    return read_rgb(folder / "A/test_2.png"), read_rgb(folder / "B/test_2.png"), np.asarray(Image.open(folder / "label/test_2.png").convert("L"))


@pytest.fixture(scope="session")
def levir_paths():
    folder = SAMPLES / "levir-cd"
    return folder / "A/test_2.png", folder / "B/test_2.png", folder / "label/test_2.png"


@pytest.fixture(scope="session")
def cli():
    """Runs the changedet binary built beside this package (`$CHANGEDET_BIN` names another)."""
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    binary = os.environ.get("CHANGEDET_BIN", os.path.join(target, "release", "changedet"))
    if not os.path.exists(binary):
        pytest.fail(f"the changedet binary is not at {binary}: build it (cargo build --release -p changedet) or set CHANGEDET_BIN")

    def run(*args):
        done = subprocess.run([binary, *map(str, args)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout

    return run


@pytest.fixture(scope="session")
def default_model():
    import changedet

    return changedet.load()

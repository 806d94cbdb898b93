"""Bad input raises a changedet.Error subclass with the CLI's message, never a crash."""

import numpy as np
import pytest
import torch

import changedet


def test_missing_and_foreign_checkpoints(tmp_path):
    with pytest.raises(changedet.CheckpointError, match="missing.safetensors"):
        changedet.load(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(changedet.CheckpointError, match="junk.safetensors"):
        changedet.load(junk)
    with pytest.raises(changedet.CheckpointError):
        changedet.import_reference(tmp_path / "missing.pth", model="clearscd")


def test_unknown_models_and_configurations():
    with pytest.raises(changedet.ConfigError, match="unknown model 'unet'"):
        changedet.create("unet")
    with pytest.raises(changedet.ConfigError, match="fc-ef"):
        changedet.create("fc-ef", width=-3)
    with pytest.raises(ValueError):  # ConfigError is a ValueError too
        changedet.create("fc-ef", no_such_field=1)


@pytest.mark.parametrize(
    "before, after, message",
    [
        (np.zeros((32, 32, 3), np.float64), np.zeros((32, 32, 3), np.float64), "uint8 or uint16"),
        (np.zeros((32, 32, 3), np.uint8), np.zeros((32, 16, 3), np.uint8), "one shape"),
        (np.zeros((32, 32), np.uint8), np.zeros((32, 32), np.uint8), r"\[H, W, C\]"),
        (np.zeros((32, 32, 4), np.uint8), np.zeros((32, 32, 4), np.uint8), "4 bands"),
        (np.zeros((32, 32, 3), np.uint8), torch.zeros(3, 32, 32, dtype=torch.uint8), "one kind"),
        ("before.png", "after.png", "numpy array or a torch.Tensor"),
        (np.zeros((0, 32, 3), np.uint8), np.zeros((0, 32, 3), np.uint8), "empty"),
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8), "at least 16 pixels"),
    ],
)
def test_bad_pixels(before, after, message, default_model):
    with pytest.raises(changedet.InputError, match=message):
        default_model.predict(before, after)


def test_bad_network_inputs():
    module = changedet.create("fc-ef").as_module()
    with pytest.raises(changedet.InputError, match="float32"):
        module(torch.zeros(1, 3, 32, 32, dtype=torch.float64), torch.zeros(1, 3, 32, 32, dtype=torch.float64))
    with pytest.raises(changedet.InputError, match=r"\[n, 3, h, w\]"):
        module(torch.zeros(1, 5, 32, 32), torch.zeros(1, 5, 32, 32))


def test_bad_maps_and_datasets(tmp_path, default_model):
    with pytest.raises(changedet.InputError, match="differ in shape"):
        changedet.metrics(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
    with pytest.raises(changedet.InputError, match="value 2"):
        changedet.metrics(np.full((4, 4), 2, np.uint8), np.zeros((4, 4), np.uint8))
    with pytest.raises(changedet.DataError, match="nowhere"):
        default_model.evaluate(f"levir:{tmp_path / 'nowhere'}")
    with pytest.raises(changedet.InputError, match="protocol"):
        default_model.evaluate(f"levir:{tmp_path}", protocol="sideways")

"""Models: loaded, created or imported; predicting pairs; fine-tuned as a torch.nn.Module."""

import json
import os
from dataclasses import dataclass
from typing import Any, Optional

import torch

from . import _native
from .errors import InputError
from .pixels import as_batch, returned


def _device(device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{device.index or 0}"
    if device.type != "cpu":
        raise InputError(f"changedet runs on cpu or cuda, not {device}")
    return "cpu"


def load(path: Optional[os.PathLike] = None, device="cpu") -> "Model":
    """A changedet checkpoint (written by `changedet train` or `Model.save`); None: the shipped
    default model (`models/default.safetensors`, or `$CHANGEDET_DEFAULT_MODEL`)."""
    return Model(_native.Model.load(None if path is None else os.fspath(path), _device(device)))


def create(name: str, device="cpu", **config) -> "Model":
    """A freshly initialised model (`changedet.MODEL_NAMES`), its configuration fields
    overridden by `config` (the reference hyper-parameters otherwise)."""
    return Model(_native.Model.create(name, json.dumps(config) if config else None, _device(device)))


def import_reference(path: os.PathLike, model: str, device="cpu", **config) -> "Model":
    """A reference implementation's PyTorch checkpoint, read without running its pickled code
    (as `changedet import` reads it)."""
    return Model(_native.Model.import_reference(os.fspath(path), model, json.dumps(config) if config else None, _device(device)))


def _options(options: dict) -> str:
    """Keyword options as the native module takes them: JSON, paths as strings."""
    plain = {key: os.fspath(value) if isinstance(value, os.PathLike) else value for key, value in options.items()}
    try:
        return json.dumps(plain)
    except TypeError as e:
        raise InputError(f"options must be numbers, strings, paths, lists and dicts: {e}") from None


def predict_scene(before, after, out: os.PathLike, model: Optional["Model"] = None, **options) -> dict:
    """`Model.predict_scene` with `model`, or with the shipped default model."""
    return (model or load()).predict_scene(before, after, out, **options)


@dataclass(frozen=True)
class Prediction:
    """One pair's (or a batch's) outputs, in the kind and layout the pixels were given."""

    probability: Any
    """Change probability, float32 [H, W] (or [B, H, W])."""
    mask: Any
    """1 where the model calls change, else 0; uint8 like probability."""
    logits: Any
    """Unchanged/changed scores, [2, H, W] (or [B, 2, H, W])."""
    before_classes: Any = None
    """Semantic change models: each date's land-cover classes, uint8 like mask."""
    after_classes: Any = None


class Model:
    """A change-detection model of changedet's Rust library."""

    def __init__(self, native: "_native.Model"):
        self._native = native

    def __repr__(self):
        return f"changedet.Model({self.name!r}, {self.card['parameters']:,} parameters, device={self.device!r})"

    @property
    def name(self) -> str:
        return self._native.name

    @property
    def config(self) -> dict:
        """The full configuration (every field, defaults filled in)."""
        return json.loads(self._native.config_json)

    @property
    def card(self) -> dict:
        """What the model says about itself: paper, summary, inputs, parameters, training record."""
        card = dict(self._native.card)
        if card["training"] is not None:
            card["training"] = json.loads(card["training"])
        return card

    @property
    def device(self) -> str:
        return self._native.device

    def save(self, path: os.PathLike) -> None:
        """Writes a changedet checkpoint (`changedet predict --checkpoint` reads it)."""
        self._native.save(os.fspath(path))

    def predict(self, before, after=None, classes=None) -> Prediction:
        """Change between two dates of pixels: numpy [H, W, C] or [B, H, W, C], torch [C, H, W] or
        [B, C, H, W], uint8 or uint16; or, with after=None, torch [B, 2, C, H, W] (TorchGeo's
        change-detection batches). Normalised as the model's card says, as the CLI does.
        `classes`: ChangeCLIP's class names per pair, `[(before_names, after_names), ...]`."""
        before, after, layout = as_batch(before, after)
        outputs = self._native.predict(before, after, None if classes is None else [list(map(list, c)) for c in classes])
        return Prediction(**{key: returned(value, layout) for key, value in outputs.items()})

    def predict_scene(self, before, after, out: os.PathLike, **options) -> dict:
        """Change maps of a georeferenced scene pair, as `changedet predict --scene` writes them:
        COGs in `out` (change, probability; class maps for semantic models) and, with
        vector="changes.gpkg", polygons. `before`/`after`: a raster file, or a list of files
        stacked as bands. `options` are the CLI's scene options by their Python names: bands
        ([4, 3, 2], 1-based), scale ("auto", "divide:D", "percentile:LOW:HIGH", "range:MIN:MAX"),
        align, tile, overlap, block, batch_size, shard ("I/N"), vector, min_area (m²),
        simplify, classes_before, classes_after, overwrite. Returns the run's summary."""
        paths = [[os.fspath(p)] if isinstance(p, (str, os.PathLike)) else [os.fspath(q) for q in p] for p in (before, after)]
        return json.loads(self._native.predict_scene(paths[0], paths[1], os.fspath(out), _options(options)))

    def evaluate(self, dataset: str, split: str = "test", batch_size: int = 1, protocol: str = "whole", ignore_value: Optional[int] = None) -> dict:
        """Binary change scores on a dataset split, as `changedet eval`: `dataset` is NAME:PATH
        (levir:PATH, oscd:PATH, ...)."""
        return json.loads(self._native.evaluate(dataset, split, batch_size, protocol, ignore_value))

    def preprocess(self, before, after):
        """The network's inputs for pixel tensors [B, C, H, W]: float32, normalised as predict does."""
        before, after, _ = as_batch(before, after)
        return self._native.preprocess(before, after)

    def as_module(self) -> "ChangeModule":
        """This model as a torch.nn.Module for PyTorch training loops: its parameters are the
        Rust model's own tensors, its forward runs under PyTorch's autograd."""
        return ChangeModule(self)


class ChangeModule(torch.nn.Module):
    """A changedet model inside PyTorch: `forward(before, after)` on normalised float inputs
    [B, C, H, W] (`preprocess`) returns the change logits [B, 2, H, W] (semantic change models:
    also each date's class scores). `train()`/`eval()` switch batch statistics and dropout.
    The parameters are the Rust model's tensors: an optimiser stepping them changes `model`."""

    def __init__(self, model: Model):
        super().__init__()
        self.model = model

    def forward(self, before, after, classes=None):
        outputs = self.model._native.forward(before, after, self.training, classes)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def preprocess(self, before, after):
        return self.model.preprocess(before, after)

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        for name, tensor in self.model._native.parameters():
            yield prefix + name, tensor

    def parameters(self, recurse: bool = True):
        for _, tensor in self.named_parameters():
            yield tensor

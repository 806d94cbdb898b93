"""Scores of maps already made."""

import json

import numpy as np
import torch

from . import _native
from .errors import InputError


def metrics(pred, gt, convention: str = "binary", ignore=None) -> dict:
    """Scores of 0/1 change maps `pred` against `gt` (numpy or torch uint8, one shape), in the
    binary convention (`reference/anchors.md` §3.1: precision, recall, f1, iou, oa, kappa,
    iou_unchanged, miou, confusion); `gt` pixels equal to `ignore` are left out."""
    if convention != "binary":
        raise InputError(f"convention '{convention}': from Python, maps are scored in the binary convention; `changedet metrics` scores the semantic ones")
    tensors = [torch.from_numpy(m) if isinstance(m, np.ndarray) else m for m in (pred, gt)]
    return json.loads(_native.binary_metrics(tensors[0], tensors[1], ignore))

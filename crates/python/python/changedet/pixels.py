"""Pixels as users hold them (numpy HWC, torch CHW/NCHW, TorchGeo's [B, 2, C, H, W]) as the
native module takes them (torch [n, bands, h, w], uint8 or 16-bit as int32), and results back
in the kind they came in."""

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .errors import InputError


@dataclass(frozen=True)
class Layout:
    """How a user's pixels were given, to give results back alike."""

    numpy: bool
    batched: bool
    device: torch.device = torch.device("cpu")


def as_batch(before, after):
    """`(before, after, layout)`: both dates as torch pixel tensors [n, bands, h, w]."""
    if after is None:
        pair = _as_tensor(before, "before")
        if pair.dim() != 5 or pair.shape[1] != 2:
            raise InputError(f"with after=None, before must hold both dates as [B, 2, C, H, W] (TorchGeo's layout), not {tuple(pair.shape)}")
        return _pixels(pair[:, 0]), _pixels(pair[:, 1]), Layout(numpy=isinstance(before, np.ndarray), batched=True, device=pair.device)
    if type(before) is not type(after):
        raise InputError(f"before and after must be of one kind, not {type(before).__name__} and {type(after).__name__}")
    layout = None
    dates = []
    for date, name in ((before, "before"), (after, "after")):
        tensor = _as_tensor(date, name)
        if isinstance(date, np.ndarray):
            # numpy images are HWC (as PIL, rasterio with reshape_as_image, and skimage read them)
            if tensor.dim() not in (3, 4):
                raise InputError(f"{name}: a numpy image is [H, W, C] or a batch [B, H, W, C], not {tuple(tensor.shape)}")
            batched = tensor.dim() == 4
            tensor = tensor.movedim(-1, -3)
        else:
            if tensor.dim() not in (3, 4):
                raise InputError(f"{name}: a torch image is [C, H, W] or a batch [B, C, H, W], not {tuple(tensor.shape)}")
            batched = tensor.dim() == 4
        layout = Layout(numpy=isinstance(date, np.ndarray), batched=batched, device=tensor.device)
        dates.append(_pixels(tensor if batched else tensor.unsqueeze(0)))
    return dates[0], dates[1], layout


def _as_tensor(value, name):
    if isinstance(value, np.ndarray):
        if value.dtype not in (np.uint8, np.uint16):
            raise InputError(f"{name}: pixels must be uint8 or uint16, not {value.dtype}")
        with warnings.catch_warnings():
            # PIL's arrays are read-only; changedet only reads pixels, so sharing them is safe.
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            return torch.from_numpy(value)
    if isinstance(value, torch.Tensor):
        return value
    raise InputError(f"{name} must be a numpy array or a torch.Tensor, not {type(value).__name__}")


def _pixels(tensor):
    if tensor.dtype == torch.uint8:
        return tensor
    if tensor.dtype == torch.uint16:
        return tensor.to(torch.int32)  # tch has no uint16; the values fit int32 exactly
    raise InputError(f"pixels must be uint8 or uint16, not {tensor.dtype}")


def returned(tensor, layout):
    """A result [n, ...] in the kind and batching the pixels came in."""
    if not layout.batched:
        tensor = tensor[0]
    return tensor.numpy() if layout.numpy else tensor.to(layout.device)

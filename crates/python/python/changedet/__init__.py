"""changedet from Python: the Rust models, prediction and scores of the `changedet` CLI,
in-process, on PyTorch's own tensors.

    import changedet
    model = changedet.load()                      # the shipped default model
    result = model.predict(before, after)         # numpy HWC or torch CHW/NCHW pixels
    result.mask, result.probability               # in the kind the pixels came in
    changedet.train("runs/mine", "levir-cd:/data/LEVIR-CD", "fc-siam-diff", epochs=10)

Everything runs in Rust with the GIL released; errors are `changedet.Error` subclasses.
"""

# torch first: the native module links the libtorch of this very torch, which is then already
# loaded, so the process holds one libtorch (and one set of tensors, devices and autograd).
import torch

from .errors import CheckpointError, ConfigError, DataError, Error, InputError

try:
    from . import _native
except ImportError as e:  # the native module's libtorch symbols do not match this torch's
    raise ImportError(
        f"changedet's native module does not load against torch {torch.__version__} ({torch.__file__}): "
        f"it must run on the torch it was built with; reinstall changedet in this environment ({e})"
    ) from e

if _native.LIBTORCH_VERSION.split("+")[0] != torch.__version__.split("+")[0]:
    raise ImportError(
        f"changedet was built against torch {_native.LIBTORCH_VERSION} but this environment has torch "
        f"{torch.__version__} ({torch.__file__}); install torch=={_native.LIBTORCH_VERSION.split('+')[0]} "
        "or rebuild changedet here"
    )

from .model import ChangeModule, Model, Prediction, create, import_reference, load, predict_scene
from .functions import metrics
from .training import train

MODEL_NAMES = tuple(_native.MODEL_NAMES)

__all__ = [
    "MODEL_NAMES",
    "ChangeModule",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "Error",
    "InputError",
    "Model",
    "Prediction",
    "create",
    "import_reference",
    "load",
    "metrics",
    "predict_scene",
    "train",
]

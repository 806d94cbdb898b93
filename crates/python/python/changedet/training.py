"""Training from Python: `changedet train`'s run, with a progress bar or a callback."""

import json
import os
import sys
from typing import Callable, Optional, Sequence, Union

from . import _native
from .model import _options


def train(
    out: os.PathLike,
    dataset: Union[str, Sequence[str], None] = None,
    model=None,
    *,
    callback: Optional[Callable[[dict], Optional[bool]]] = None,
    progress: bool = True,
    **options,
) -> dict:
    """Trains as `changedet train` does and returns its summary (epochs, steps, best_score, out,
    plot); blocks until the run ends.

    `dataset`: NAME:PATH, or a list of them trained on together. `model`: a model name (the
    reference configuration, `config={...}` overrides fields), or a `changedet.Model` to
    fine-tune (as `changedet train --from`). `options` are the CLI's options by their Python
    names: train_split, val_split, bands, epochs, iterations, val_every, best_by, batch_size,
    crop, patches ("96:47"), lr, weight_decay, optimizer, schedule ("step:1:0.95"), loss,
    augment, seed, checkpoint_every, eval_batch_size, ignore_value, resume, overwrite,
    max_steps, clip, from_ (a checkpoint path), device, precision. Left out, they are the
    model's reference recipe; with resume=True (and no dataset) the run's own.

    `callback(event)` hears every step (`kind` "step": step, total_steps, epoch, epochs, loss,
    lr) and validation (`kind` "validation": the CLI's log `line`, the `entry` as JSON);
    returning False stops the run. Ctrl-C stops it between steps and raises KeyboardInterrupt;
    either way the checkpoints written so far stay and `train(out, resume=True)` goes on.
    """
    if isinstance(dataset, str):
        dataset = [dataset]
    if "from_" in options:
        options["from"] = os.fspath(options.pop("from_"))
    if model is not None and not isinstance(model, str):
        os.makedirs(out, exist_ok=True)
        start = os.path.join(out, "start.safetensors")
        model.save(start)  # the weights a Python session holds, fine-tuned as --from does
        options["from"] = start
    elif model is not None:
        options["model"] = model
    if dataset is not None:
        options["datasets"] = list(dataset)
    if "device" in options:
        from .model import _device

        options["device"] = _device(options["device"])
    encoded = _options(options)
    hear = _Progress(callback) if progress else callback
    try:
        summary = json.loads(_native.train(os.fspath(out), encoded, hear))
    except KeyboardInterrupt:
        print(f"changedet: training stopped; go on with changedet.train({os.fspath(out)!r}, resume=True)", file=sys.stderr)
        raise
    finally:
        if isinstance(hear, _Progress):
            hear.close()
    return summary


class _Progress:
    """A tqdm bar over the steps (when tqdm is installed; else validation lines only), in front of
    the user's callback."""

    def __init__(self, callback):
        self.callback = callback
        self.bar = None
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self.tqdm = tqdm

    def __call__(self, event):
        if event["kind"] == "step":
            if self.tqdm is not None:
                if self.bar is None:
                    self.bar = self.tqdm(total=event["total_steps"], initial=event["step"] - 1, unit="step")
                self.bar.update(event["step"] - self.bar.n)
                self.bar.set_postfix(epoch=f"{event['epoch'] + 1}/{event['epochs']}", loss=f"{event['loss']:.4f}")
        else:
            (self.bar.write if self.bar is not None else lambda line: print(line, file=sys.stderr))(event["line"])
        return True if self.callback is None else self.callback(event)

    def close(self):
        if self.bar is not None:
            self.bar.close()

"""changedet from Python, as a notebook would use it: the shipped default model on a LEVIR-CD
pair from samples/, its map drawn with matplotlib, a few fine-tuning steps of the same model
inside a plain PyTorch loop, and the scores before and after.

    .venv/bin/python crates/python/examples/quickstart.py [OUTPUT_FOLDER]
"""

import pathlib
import sys

import matplotlib

matplotlib.use("Agg")  # a file, not a window; drop this line in a notebook
import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

import changedet

samples = pathlib.Path(__file__).resolve().parents[3] / "samples" / "levir-cd"
out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "demo-output/python")
out.mkdir(parents=True, exist_ok=True)

before = np.asarray(Image.open(samples / "A/test_2.png").convert("RGB"))
after = np.asarray(Image.open(samples / "B/test_2.png").convert("RGB"))
label = (np.asarray(Image.open(samples / "label/test_2.png").convert("L")) > 0).astype(np.uint8)

# 1. The default model on one pair: numpy in, numpy out.
model = changedet.load()
print(model, "-", model.card["summary"])
result = model.predict(before, after)
scores = changedet.metrics(result.mask, label)
print(f"default model: F1 {scores['f1']:.4f}  IoU {scores['iou']:.4f}  ({result.mask.sum()} changed pixels)")

figure, axes = plt.subplots(1, 4, figsize=(16, 4))
for axis, image, title in zip(axes, (before, after, result.probability, label), ("before", "after", "change probability", "label")):
    axis.imshow(image, cmap="magma" if image.ndim == 2 else None)
    axis.set_title(title)
    axis.axis("off")
figure.savefig(out / "quickstart.png", bbox_inches="tight")
print(f"map drawn to {out / 'quickstart.png'}")

# 2. The same model fine-tuned in a PyTorch loop: its parameters are the Rust model's tensors.
# (A few steps on the pair it is scored on, to show the mechanics, not a way to evaluate.)
module = model.as_module().train()
pixels = [torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))).unsqueeze(0) for x in (before, after)]
inputs = module.preprocess(*pixels)
target = torch.from_numpy(label.astype(np.int64)).unsqueeze(0)
optimiser = torch.optim.Adam(module.parameters(), lr=1e-4)
for step in range(3):
    optimiser.zero_grad()
    crop = (Ellipsis, slice(256 * step, 256 * step + 256), slice(0, 256))
    loss = torch.nn.functional.cross_entropy(module(inputs[0][crop], inputs[1][crop]), target[crop])
    loss.backward()
    optimiser.step()
    print(f"step {step + 1}: loss {loss.item():.4f}")
module.eval()
tuned = changedet.metrics(model.predict(before, after).mask, label)
print(f"after 3 steps: F1 {tuned['f1']:.4f}  IoU {tuned['iou']:.4f}")
model.save(out / "fine-tuned.safetensors")
print(f"saved to {out / 'fine-tuned.safetensors'} (`changedet predict --checkpoint` reads it)")

"""Times the official ChangeCLIP (dyzy41/ChangeCLIP, its mmsegmentation 1.1 fork, with mmengine
0.10.7 and mmcv-lite 2.0.1) on the CPU the way `changedet bench --model changeclip-rn50` times
changedet's: one pair at inference (eval mode, no gradients, `encode_decode` as its test loop
calls it), then training steps of its objective (`loss`: the decode head's cross-entropy) with
its AdamW (lr 1e-4, decay 0.01, no decay on norms), each after one warm-up, on random inputs and
the prompts of pairs without class lists. Only `mmcv.ops` (compiled operators, which mmseg
imports for other heads) and OpenAI's `clip` package (used for zero-shot class lists, not here)
are stubbed. Prints the medians in milliseconds as JSON. Usage:
    python changeclip_bench.py REPO [--size 256] [--batch-size 2] [--inference-batch 1] [--iters 5]
        [--device cpu|cuda] [--precision fp32|bf16] [--profile N]
(inference_ms is per pair, of batches of --inference-batch.)
"""
import argparse
import json
import os
import sys
import types

import torch

from timing import add_device_options, autocast, median_ms, print_profile

parser = argparse.ArgumentParser()
parser.add_argument("repo")
parser.add_argument("--size", type=int, default=256)
parser.add_argument("--batch-size", type=int, default=2)
parser.add_argument("--inference-batch", type=int, default=1)
parser.add_argument("--iters", type=int, default=5)
add_device_options(parser)
parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N longest operators of one more run of each")
opts = parser.parse_args()

sys.path.insert(0, opts.repo)


def placeholder(attribute):
    if attribute.startswith("__"):
        raise AttributeError(attribute)
    return type(attribute, (), {})


for name in ["mmcv.ops", "clip"]:
    stub = types.ModuleType(name)
    stub.__getattr__ = placeholder
    sys.modules[name] = stub
os.environ.setdefault("CDPATH", "/nonexistent")  # the config builds its data root from it

from mmengine.config import Config  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.structures import PixelData  # noqa: E402
from mmseg.registry import MODELS  # noqa: E402
from mmseg.structures import SegDataSample  # noqa: E402
from mmseg.utils import register_all_modules  # noqa: E402

register_all_modules()
cfg = Config.fromfile(f"{opts.repo}/configs/0cd_ce/changeclip_levir.py")
# No CLIP weights here (changedet's side starts from its own random weights too); one process,
# so SyncBN is plain BN.
cfg.model.pretrained = None
cfg.model.decode_head.norm_cfg = dict(type="BN", requires_grad=True)
torch.manual_seed(0)
model = MODELS.build(cfg.model).to(opts.device)
optimizer = build_optim_wrapper(model, cfg.optim_wrapper)
print("parameters", sum(p.numel() for p in model.parameters()), file=sys.stderr)


n, s = opts.batch_size, opts.size
images = torch.randn(n, 6, s, s, device=opts.device)
samples = []
for _ in range(n):
    sample = SegDataSample(metainfo=dict(img_shape=(s, s), ori_shape=(s, s), pad_shape=(s, s)))
    sample.gt_sem_seg = PixelData(data=torch.randint(0, 2, (1, s, s), device=opts.device))
    sample.jsonA, sample.jsonB = [], []
    samples.append(sample)


def train_step():
    with autocast(opts):
        losses = model.loss(images, samples)
        loss, _ = model.parse_losses(losses)
    optimizer.update_params(loss)


model.train()
train = median_ms(train_step, opts.iters)
print_profile("profile of one training step (reference)", train_step, opts.profile)
model.eval()
pairs = torch.randn(opts.inference_batch, 6, s, s, device=opts.device)
metas = [dict(img_shape=(s, s), ori_shape=(s, s), pad_shape=(s, s), jsonA=[], jsonB=[])] * opts.inference_batch


def infer():
    with torch.no_grad(), autocast(opts):
        model.encode_decode(pairs, metas)


inference = median_ms(infer, opts.iters) / opts.inference_batch
print_profile("profile of one inference (reference)", infer, opts.profile)
print(json.dumps({"inference_ms": inference, "train_step_ms": train, "threads": torch.get_num_threads()}))

"""Times the official ClearSCD (tangkai-RS/ClearSCD with segmentation-models-pytorch 0.3.3) on the
CPU (or a GPU) the way `changedet bench --model clearscd` times changedet's: one pair (or a batch
of --inference-batch) at inference (eval mode, no gradients), then training steps of the full objective (CE on both dates' classes, the
change loss, SACL local and global, BSCC) with the reference's Adam, each after one warm-up, on
random inputs. Prints the medians in milliseconds as JSON. Usage:
    python clearscd_bench.py REPO [--size 512] [--train-size 256] [--batch-size 4] [--inference-batch 1]
        [--iters 5] [--device cpu|cuda] [--precision fp32|bf16] [--profile N]
"""
import argparse
import json
import sys
import types

import torch

from timing import add_device_options, autocast, median_ms, print_profile

parser = argparse.ArgumentParser()
parser.add_argument("repo")
parser.add_argument("--size", type=int, default=512)
parser.add_argument("--train-size", type=int, default=256)
parser.add_argument("--batch-size", type=int, default=4)
parser.add_argument("--inference-batch", type=int, default=1)
parser.add_argument("--iters", type=int, default=5)
add_device_options(parser)
parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N longest operators of one more run of each")
opts = parser.parse_args()

sys.path.insert(0, opts.repo)
if opts.device == "cpu":
    # The reference moves a few small tensors to the GPU by hand; on the CPU they stay.
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
from model.ClearSCD import ClearSCD  # noqa: E402
from loss.losses import BCDLoss  # noqa: E402

config = json.load(open(f"{opts.repo}/configs/hiucd_mini/ours.json"))
# `pretrained` would download torchvision weights (which the reference then never loads).
config.update(pretrained=False, size=opts.train_size)
args = types.SimpleNamespace(**config)
torch.manual_seed(0)
model = ClearSCD(args).to(opts.device)


n, s, k = opts.batch_size, opts.train_size, args.num_segclass
imgs = torch.randn(n, 6, s, s, device=opts.device)
label_a, label_b = (torch.randint(0, k, (n, s, s), device=opts.device) for _ in range(2))
label_bcd = torch.randint(0, 2, (n, s, s), device=opts.device)
change_loss, class_loss = BCDLoss(), torch.nn.CrossEntropyLoss(ignore_index=k)
optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)


def train_step():
    with autocast(opts):
        out = model(imgs, label_a, label_b, label_bcd, warmup=False)
        loss = change_loss(out["BCD"], label_bcd) + class_loss(out["seg_A"], label_a) + class_loss(out["seg_B"], label_b)
        loss = loss + out["contrast_loss"] + out["bscc_loss"]
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


model.train()
train = median_ms(train_step, opts.iters)
print_profile("profile of one training step (reference)", train_step, opts.profile)
model.eval()
pairs = torch.randn(opts.inference_batch, 6, opts.size, opts.size, device=opts.device)


def infer():
    with torch.no_grad(), autocast(opts):
        model(pairs, test=True)


inference = median_ms(infer, opts.iters) / opts.inference_batch
print_profile("profile of one inference (reference)", infer, opts.profile)
print(json.dumps({"inference_ms": inference, "train_step_ms": train, "threads": torch.get_num_threads()}))

"""Times the official ClearSCD (tangkai-RS/ClearSCD with segmentation-models-pytorch 0.3.3) on the
CPU the way `changedet bench --model clearscd` times changedet's: one pair at inference (eval
mode, no gradients), then training steps of the full objective (CE on both dates' classes, the
change loss, SACL local and global, BSCC) with the reference's Adam, each after one warm-up, on
random inputs. Prints the medians in milliseconds as JSON. Usage:
    python clearscd_bench.py REPO [--size 512] [--train-size 256] [--batch-size 4] [--iters 5] [--profile N]
"""
import argparse
import json
import sys
import types

import torch

from timing import median_ms, print_profile

parser = argparse.ArgumentParser()
parser.add_argument("repo")
parser.add_argument("--size", type=int, default=512)
parser.add_argument("--train-size", type=int, default=256)
parser.add_argument("--batch-size", type=int, default=4)
parser.add_argument("--iters", type=int, default=5)
parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the N longest operators of one more run of each")
opts = parser.parse_args()

sys.path.insert(0, opts.repo)
# The reference moves a few small tensors to the GPU by hand; on the CPU they stay.
torch.Tensor.cuda = lambda self, *args, **kwargs: self
from model.ClearSCD import ClearSCD  # noqa: E402
from loss.losses import BCDLoss  # noqa: E402

config = json.load(open(f"{opts.repo}/configs/hiucd_mini/ours.json"))
# `pretrained` would download torchvision weights (which the reference then never loads).
config.update(pretrained=False, size=opts.train_size)
args = types.SimpleNamespace(**config)
torch.manual_seed(0)
model = ClearSCD(args)


n, s, k = opts.batch_size, opts.train_size, args.num_segclass
imgs = torch.randn(n, 6, s, s)
label_a, label_b = torch.randint(0, k, (n, s, s)), torch.randint(0, k, (n, s, s))
label_bcd = torch.randint(0, 2, (n, s, s))
change_loss, class_loss = BCDLoss(), torch.nn.CrossEntropyLoss(ignore_index=k)
optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)


def train_step():
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
pair = torch.randn(1, 6, opts.size, opts.size)


def infer():
    with torch.no_grad():
        model(pair, test=True)


inference = median_ms(infer, opts.iters)
print_profile("profile of one inference (reference)", infer, opts.profile)
print(json.dumps({"inference_ms": inference, "train_step_ms": train, "threads": torch.get_num_threads()}))

"""Trains Daudt et al.'s official FC-EF / FC-Siam-conc / FC-Siam-diff (rcdaudt/fully_convolutional_
change_detection: its model files and its notebook's training loop, restated here without the
plotting) on the same OSCD RGB previews and city split as `scripts/train-daudt2018.sh`, printing
the validation scores after every epoch as changedet scores them (whole images, argmax, TP/FP/FN
summed over the cities) and, with --train-scores, the same on the training cities. It answers
whether a gap to the paper comes from changedet or from the data.

The notebook's recipe: 96×96 patches every 47 px, a random horizontal flip and a random number of
90° turns per patch, each image z-scored over all its pixels and bands, NLLLoss on LogSoftmax
with weights [10·2p, 2(1−p)] (p: the training cities' change fraction), Adam (lr 1e-3, weight
decay 1e-4), ExponentialLR 0.95 per epoch, batch 32, shuffled. (The notebook scores each image in
2×2 parts with a slip, `ymin = jj`, that scores most of each image twice; whole images here.)
Usage:
    python daudt_train.py REPO DATA [--model fc-ef|fc-siam-conc|fc-siam-diff] [--epochs 8]
        [--train SPLIT] [--val SPLIT] [--seed 0] [--train-scores]
DATA is ../shared/data/oscd-s2 (A/, B/, label/ PNGs); splits are changedet's
(scripts/splits/oscd-{train,val}.txt). Needs numpy and pillow (PYTHONPATH).
"""
import argparse
import json
import random
import sys
import time
from math import ceil

import numpy as np
import torch
from PIL import Image

parser = argparse.ArgumentParser()
parser.add_argument("repo")
parser.add_argument("data")
parser.add_argument("--model", default="fc-ef", choices=["fc-ef", "fc-siam-conc", "fc-siam-diff"])
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--train", default="scripts/splits/oscd-train.txt")
parser.add_argument("--val", default="scripts/splits/oscd-val.txt")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--train-scores", action="store_true")
opts = parser.parse_args()

sys.path.insert(0, opts.repo)
from unet import Unet  # noqa: E402
from siamunet_conc import SiamUnet_conc  # noqa: E402
from siamunet_diff import SiamUnet_diff  # noqa: E402

PATCH, STRIDE, BATCH, FP_MODIFIER = 96, 96 // 2 - 1, 32, 10
random.seed(opts.seed)
torch.manual_seed(opts.seed)


def cities(split):
    return [c.strip() for c in open(split).read().replace("\n", ",").split(",") if c.strip()]


def z_scored(path):
    image = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)
    return torch.from_numpy(((image - image.mean()) / image.std()).transpose(2, 0, 1).copy())


def load(city):
    label = np.asarray(Image.open(f"{opts.data}/label/{city}.png")) > 0
    return z_scored(f"{opts.data}/A/{city}.png"), z_scored(f"{opts.data}/B/{city}.png"), label


train_cities, val_cities = cities(opts.train), cities(opts.val)
train_images = {c: load(c) for c in train_cities}
val_images = {c: load(c) for c in val_cities}

patches = []
n_pix = true_pix = 0
for city, (_, _, label) in train_images.items():
    h, w = label.shape
    n_pix += label.size
    true_pix += label.sum()
    for i in range(ceil((h - PATCH + 1) / STRIDE)):
        for j in range(ceil((w - PATCH + 1) / STRIDE)):
            patches.append((city, STRIDE * i, STRIDE * j))
p = true_pix / n_pix
weights = torch.FloatTensor([FP_MODIFIER * 2 * p, 2 * (n_pix - true_pix) / n_pix])


def patch(index):
    city, y, x = patches[index]
    a, b, label = train_images[city]
    a, b = a[:, y:y + PATCH, x:x + PATCH].numpy(), b[:, y:y + PATCH, x:x + PATCH].numpy()
    label = 1 * label[y:y + PATCH, x:x + PATCH]
    if random.random() > 0.5:  # the notebook's RandomFlip
        a, b, label = a[:, :, ::-1], b[:, :, ::-1], label[:, ::-1]
    n = random.randint(0, 3)  # its RandomRot
    if n:
        a, b, label = np.rot90(a, n, axes=(1, 2)), np.rot90(b, n, axes=(1, 2)), np.rot90(label, n, axes=(0, 1))
    return torch.from_numpy(a.copy()), torch.from_numpy(b.copy()), torch.from_numpy(label.copy())


net = {"fc-ef": lambda: Unet(2 * 3, 2), "fc-siam-conc": lambda: SiamUnet_conc(3, 2), "fc-siam-diff": lambda: SiamUnet_diff(3, 2)}[opts.model]()
criterion = torch.nn.NLLLoss(weight=weights)
optimizer = torch.optim.Adam(net.parameters(), weight_decay=1e-4)
scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, 0.95)


def scores(images):
    net.eval()
    tp = fp = fn = 0
    with torch.no_grad():
        for a, b, label in images.values():
            predicted = net(a.unsqueeze(0).float(), b.unsqueeze(0).float()).argmax(1)[0].numpy() > 0
            tp += int(np.logical_and(predicted, label).sum())
            fp += int(np.logical_and(predicted, ~label).sum())
            fn += int(np.logical_and(~predicted, label).sum())
    precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


print(json.dumps({"model": opts.model, "patches": len(patches), "change_fraction": float(p), "threads": torch.get_num_threads()}))
for epoch in range(1, opts.epochs + 1):
    start = time.time()
    net.train()
    order = torch.randperm(len(patches)).tolist()
    total, steps = 0.0, 0
    for first in range(0, len(order), BATCH):
        batch = [patch(i) for i in order[first:first + BATCH]]
        a, b, label = (torch.stack(parts) for parts in zip(*batch))
        optimizer.zero_grad()
        loss = criterion(net(a.float(), b.float()), label.long())
        loss.backward()
        optimizer.step()
        total, steps = total + loss.item(), steps + 1
    scheduler.step()
    line = {"epoch": epoch, "train_loss": round(total / steps, 4), "seconds": round(time.time() - start, 1), "val": scores(val_images)}
    if opts.train_scores:
        line["train"] = scores(train_images)
    print(json.dumps(line), flush=True)

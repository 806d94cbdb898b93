"""Prediction from Python against the CLI's model time, in one run on one machine.

    .venv/bin/python crates/python/bench/predict.py [--size 1024] [--iters 10]

Times, as medians over --iters runs after a warm-up, on a random uint8 pair with the default
model: `model.predict` from Python (numpy in and out: normalisation, network, outputs), the
normalisation alone (`model.preprocess`), and `changedet bench`'s inference (the network alone,
the CLI's process). The network's share of predict (predict − normalisation) is compared with
the CLI's. The CLI's process allocates through jemalloc (crates/changedet/src/allocator.rs);
Python's through glibc's malloc, which libtorch then uses too.
"""

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import time

import numpy as np
import torch

import changedet

root = pathlib.Path(__file__).resolve().parents[3]
parser = argparse.ArgumentParser()
parser.add_argument("--size", type=int, default=1024)
parser.add_argument("--iters", type=int, default=10)
parser.add_argument("--rounds", type=int, default=3)
args = parser.parse_args()

model = changedet.load()
rng = np.random.default_rng(0)
before, after = (rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8) for _ in range(2))


def median_seconds(work):
    work()
    times = []
    for _ in range(args.iters):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


chw = [torch.from_numpy(x).permute(2, 0, 1).unsqueeze(0) for x in (before, after)]
binary = os.environ.get("CHANGEDET_BIN", os.path.join(os.environ.get("CARGO_TARGET_DIR", root / "target"), "release", "changedet"))
command = [binary, "bench", "--checkpoint", root / "models/default.safetensors", "--size", str(args.size), "--iters", str(args.iters), "--device", "cpu"]
rounds = []
# Rounds alternate the two processes, so that a machine's changing load falls on both alike.
for _ in range(args.rounds):
    predict = median_seconds(lambda: model.predict(before, after))
    preprocess = median_seconds(lambda: model._native.preprocess(*chw))
    cli = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cli_ms = float(re.search(r"inference\s+([\d.]+) ms per pair", cli).group(1))
    rounds.append((predict * 1e3, preprocess * 1e3, cli_ms))
network = [p - n for p, n, _ in rounds]
print(f"model            {model.name}, {args.size}×{args.size} pair, {torch.get_num_threads()} threads, medians of {args.iters}, {args.rounds} rounds")
print(f"python predict   {statistics.median(p for p, _, _ in rounds):.1f} ms (normalisation {statistics.median(n for _, n, _ in rounds):.1f} ms)")
print(f"cli inference    {statistics.median(c for _, _, c in rounds):.1f} ms (changedet bench: the network alone)")
ratios = [n / c for n, (_, _, c) in zip(network, rounds)]
print(f"python / cli     {statistics.median(ratios):.3f} (median round; rounds: {', '.join(f'{r:.3f}' for r in ratios)}): the network's share of predict over the CLI's")

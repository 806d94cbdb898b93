"""Timing shared by the reference harnesses: the median of `iters` runs after one warm-up (the GPU
synchronised before each reading of the clock), device and precision options as `changedet bench`
takes them, and the operator profile `changedet bench --profile` prints for changedet."""
import time

import torch


def median_ms(step, iters):
    step()
    sync()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def sync():
    """Waits for the GPU's queued work, as `changedet bench` does before reading the clock."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def add_device_options(parser):
    """--device and --precision, as `changedet bench` takes them."""
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="autocast to bf16 or fp16")


def autocast(opts):
    """The autocast context of --precision on --device (a no-op context for fp32)."""
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[opts.precision]
    return torch.autocast(torch.device(opts.device).type, dtype=dtype, enabled=dtype is not None)


def print_profile(title, step, rows):
    """One more run of `step` under torch's profiler: the `rows` operators with the longest self
    CPU time (nothing when `rows` is 0)."""
    if rows <= 0:
        return
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        step()
    print(title)
    print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))

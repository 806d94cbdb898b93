"""Timing shared by the reference harnesses: the median of `iters` runs after one warm-up, and the
operator profile `changedet bench --profile` prints for changedet."""
import time

import torch


def median_ms(step, iters):
    step()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def print_profile(title, step, rows):
    """One more run of `step` under torch's profiler: the `rows` operators with the longest self
    CPU time (nothing when `rows` is 0)."""
    if rows <= 0:
        return
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        step()
    print(title)
    print(profile.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows))

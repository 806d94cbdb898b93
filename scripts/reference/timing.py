"""Timing shared by the reference harnesses: the median of `iters` runs after one warm-up."""
import time


def median_ms(step, iters):
    step()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3

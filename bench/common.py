"""Shared helpers for benchmarks: timing jitted functions and printing JSON."""

import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

import jax  # noqa: E402


def time_fn(fn, *args, repeats=5, warmup=1):
  """Median wall time (s) of fn(*args) after `warmup` calls; blocks on the result."""
  for _ in range(warmup):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  times.sort()
  return times[len(times) // 2]


def peak_rss_mb():
  """Peak resident memory of this process so far (MB)."""
  import resource
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine():
  return {'backend': jax.default_backend(), 'devices': jax.device_count(),
          'cpu_count': os.cpu_count(), 'python': platform.python_version(), 'jax': jax.__version__}


def emit(result):
  print(json.dumps({**result, 'peak_rss_mb': peak_rss_mb(), 'machine': machine()}, indent=2))

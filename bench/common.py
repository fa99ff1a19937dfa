"""Shared helpers for benchmarks: the real config files, timing, FLOP counts, the machine, JSON.

Speed depends on the CPU, so every benchmark prints the CPU model and this machine's measured JAX
matrix-multiply rate (float32 and bfloat16 operands), and reports what it times as a fraction of
that rate (XLA's FLOP count / time / measured rate): figures from different machines compare.
"""

import functools
import importlib
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from regennet_jax import allocator  # noqa: E402

if sys.argv and os.path.dirname(os.path.abspath(sys.argv[0])) == os.path.join(ROOT, 'bench'):
  # A benchmark run as a command: the malloc run.py runs with (machine() reports it). Not when
  # imported elsewhere, where re-executing would restart someone else's process.
  allocator.preload()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from configs import synthetic as synthetic_config  # noqa: E402
from regennet_jax import checkpoints  # noqa: E402
from regennet_jax import factory  # noqa: E402
from regennet_jax import pair_frame  # noqa: E402
from regennet_jax.data import sources  # noqa: E402
from regennet_jax.evaluation import interaction  # noqa: E402
from regennet_jax.evaluation import monitor  # noqa: E402

# What the benchmarks call the sizes: the paper's NTU model, data and recipe (what the original
# is compared with), and the default run's config.
CONFIGS = {'ntu': 'ntu120:original', 'default': 'synthetic'}


def load_config(preset):
  """configs/<file>.py's config for a preset name ('ntu', 'default') or a config file name, with
  an optional ':recipe' as on the command line."""
  name, _, recipe = CONFIGS.get(preset, preset).partition(':')
  module = importlib.import_module(f'configs.{name}')
  # The benchmarks time untrained models: no run to take a centred model's mean from.
  return factory.for_parameter_shapes(module.get_config(recipe) if recipe else module.get_config())


def respacing_for(steps):
  """A benchmark's step count -> the schedule's respacing: 'N' is the released ddimN, 'trailingN'
  stays as it is (N steps ending at t = 999; a one-pass student samples with trailing1)."""
  return steps if steps.startswith('trailing') else f'ddim{steps}'


def mean_jitter(translation, fps):
  """[B, T, 3] translations -> the mean over windows of interaction.path_jitter (m/s)."""
  return float(np.mean([interaction.path_jitter(p, fps) for p in np.asarray(translation)]))


def run_config(run):
  """The config a trained synthetic-benchmark run in `run` was trained with."""
  config = synthetic_config.get_config()
  checkpoints.adopt_run_config(run, config)
  return config


def load_run(config, run):
  """(test split, class names, sampling weights, checkpoint step) of the run in `run`."""
  _, test, names = sources.load_splits(config.data)
  params, step = factory.load_sampling_params(config, run, len(names))
  return test, names, params, step


def windows_in_model_frame(config, source, count):
  """(actor, reactor, label) of `count` test windows from frame 0 (monitor.test_windows), turned
  into the actor's frame when config.model works there: what the denoiser itself sees."""
  batch, _ = monitor.test_windows(config, source, count)
  actor, reactor = jnp.asarray(batch['actor']), jnp.asarray(batch['reactor'])
  if config.model.actor_frame:
    actor, reactor, _ = pair_frame.to_actor_frame(actor, reactor)
  return actor, reactor, jnp.asarray(batch['label'])


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


def xla_flops(jitted, *args):
  """XLA's count of floating-point operations of one call of a jitted function.

  XLA counts the body of a loop (lax.scan, lax.map, while) once, not once per iteration: for a
  sampler, count one unrolled denoiser pass and multiply by the number of passes.
  """
  cost = jitted.lower(*args).compile().cost_analysis()
  if isinstance(cost, list):  # older jax returns one dict per device
    cost = cost[0]
  return float(cost.get('flops', float('nan')))


def cpu_model():
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine()


@functools.lru_cache(maxsize=None)
def matmul_rate(dtype='float32', size=2048):
  """This machine's JAX rate (FLOP/s) on a [size x size] @ [size x size] matrix multiply, with
  operands in `dtype` and float32 accumulation."""
  a = jnp.ones((size, size), dtype)
  fn = jax.jit(lambda x, y: jnp.matmul(x, y, preferred_element_type=jnp.float32))
  seconds = time_fn(fn, a, a, repeats=5, warmup=2)
  return 2 * size**3 / seconds


MATVEC_KERNEL_SHAPE = (512, 2048)  # the kernels matvec_bandwidth reads


@functools.lru_cache(maxsize=None)
def matvec_bandwidth(dtype='float32',
                     rows=1,
                     matrices=32,
                     shape=MATVEC_KERNEL_SHAPE,
                     kernels_on='xla'):
  """This machine's rate (bytes/s) of reading weights in a chain of [rows, 512] x [512, 2048]
  products over `matrices` distinct kernels in `dtype` (128 MB in float32, like the ~80 MB a
  paper-size denoiser pass reads), float32 results: the memory roofline of a one-token pass.
  kernels_on: 'xla' (JAX's own product) or 'native' (regennet_jax.native.few_rows)."""
  kernels = [
      jax.random.normal(jax.random.PRNGKey(i), shape, jnp.float32).astype(dtype) * 0.01
      for i in range(matrices)
  ]
  if kernels_on == 'native':
    from regennet_jax import native
    product = native.few_rows
  else:
    product = lambda x, kernel: jnp.matmul(
        x.astype(dtype), kernel, preferred_element_type=jnp.float32)

  def chain(x, kernels):
    for kernel in kernels:
      x = jnp.tanh(product(x, kernel))[:, :shape[0]]
    return x

  seconds = time_fn(jax.jit(chain), jnp.ones((rows, shape[0])), kernels, repeats=7, warmup=2)
  return sum(k.nbytes for k in kernels) / seconds


def roofline(flops, seconds, dtype='float32'):
  """{'xla_gflop': .., 'achieved_gflops': .., 'fraction_of_matmul_rate': ..} for one timed call."""
  rate = flops / seconds
  return {
      'xla_gflop': flops / 1e9,
      'achieved_gflop_per_s': rate / 1e9,
      'fraction_of_measured_matmul_rate': rate / matmul_rate(dtype),
      'rate_dtype': dtype
  }


def peak_rss_mb():
  """Peak resident memory of this process so far (MB)."""
  import resource
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine():
  return {
      'cpu': cpu_model(),
      'cpu_count': os.cpu_count(),
      'backend': jax.default_backend(),
      'devices': jax.device_count(),
      'python': platform.python_version(),
      'jax': jax.__version__,
      'malloc': allocator.active(),
      'matmul_gflop_per_s': {
          'float32': matmul_rate('float32') / 1e9,
          'bfloat16': matmul_rate('bfloat16') / 1e9
      }
  }


def emit(result):
  print(json.dumps({**result, 'peak_rss_mb': peak_rss_mb(), 'machine': machine()}, indent=2))


def interval(values):
  """(mean, 95% t-interval half-width with n - 1 degrees of freedom) over training seeds."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  v = np.asarray(values, np.float64)
  if len(v) < 2:
    return float(v.mean()), float('nan')
  return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))

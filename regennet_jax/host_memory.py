"""Keep freed host memory in the process when JAX computes on this CPU, so buffers stop
page-faulting.

XLA:CPU takes every step's activations, temporaries and results from malloc: at the paper's size
a float32 training step allocates and frees a few GB in buffers of 1-100 MB. glibc serves them
from per-thread arenas whose heaps it unmaps when they empty, and from mmap for large blocks,
which it unmaps on free, so each step touches fresh pages that the kernel must zero: about
450,000 page faults and 0.7 s of kernel time per step on a 2-core CPU, 0.25-0.3 s of a 2.6 s
step. One arena for all threads, no mmap for large blocks and no trimming of the heap keep
freed pages in the process for the next step (after the first steps: about one fault per step).
The process's resident memory then stays at its peak instead of shrinking between steps.

It does not pay for small models: with one arena every thread's allocations take one lock, and
compiling a tiny training step took 13.3 s instead of 8.7, the default synthetic run's step 94
ms instead of 79. So run.py sets it for training runs whose feed-forward activation
[B, T, ff_size] takes at least LARGE_ACTIVATION_BYTES in float32 (the paper's NTU size: 15.7 MB;
the default run: 1.3 MB).

glibc applies the arena limit when a thread first allocates, so this must run before JAX starts
its CPU backend (whose threads allocate at once): run.py and bench/train_step.py call it
before anything computes. Sampling at paper size was no faster with it (9.25 against 9.45
reactions/s), so only training runs set it.
"""

import ctypes
import importlib.metadata
import importlib.util
import os
import pkgutil
import sys

# mallopt parameters (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
M_ARENA_MAX = -8
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int: trim only above 2 GiB of free heap top
# Between the two sizes measured (1.3 MB: slower, 15.7 MB: faster); not measured in between.
LARGE_ACTIVATION_BYTES = 8 << 20


def pays_off(config):
  """Whether a training run of `config` has buffers large enough for keep_freed_memory to pay."""
  largest = config.train.batch_size * config.data.num_frames * config.model.ff_size * 4
  return largest >= LARGE_ACTIVATION_BYTES


def accelerator_plugins():
  """Names of the installed JAX plugins for accelerators (TPU, GPU), without starting them."""
  names = [entry.name for entry in importlib.metadata.entry_points(group='jax_plugins')]
  try:
    import jax_plugins  # the namespace package JAX scans for plugins
    names += [module.name for module in pkgutil.iter_modules(jax_plugins.__path__)]
  except ImportError:
    pass
  if importlib.util.find_spec('libtpu') is not None:
    names.append('libtpu')
  return names


def computes_on_cpu():
  """Whether JAX will compute on this CPU: JAX_PLATFORMS (or jax_platforms) names cpu first, or
  no accelerator plugin is installed."""
  import jax
  platforms = jax.config.jax_platforms or os.environ.get('JAX_PLATFORMS', '')
  if platforms:
    return platforms.split(',')[0].strip() == 'cpu'
  return not accelerator_plugins()


def _backends_started():
  try:
    from jax._src import xla_bridge
    return xla_bridge.backends_are_initialized()
  except (ImportError, AttributeError):  # a JAX without this private helper: assume not yet
    return False


def keep_freed_memory():
  """Sets glibc's malloc to keep freed memory for reuse (see the module docstring).

  Returns True if it did; False where it does not apply (not Linux with glibc, JAX computing on
  an accelerator) or comes too late (JAX's backend already started: its threads have their own
  arenas, and the change would only half take).
  """
  if not sys.platform.startswith('linux') or _backends_started() or not computes_on_cpu():
    return False
  try:
    mallopt = ctypes.CDLL(None).mallopt
  except (OSError, AttributeError):  # another C library (musl)
    return False
  mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
  return all(
      mallopt(parameter, value) == 1
      for parameter, value in ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, _NEVER_TRIM)))

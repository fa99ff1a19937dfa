"""Hand-written CPU kernels for streams, compiled on first use with the machine's C++ compiler.

`few_rows(x [M, K], w [K, N]) -> [M, N]` multiplies a few rows (a stream's one token per step) by
a float32 or bfloat16 kernel on several threads; `one_token_attention` attends one token over a
stream's key/value cache where it lies (stream_kernels.cc says why XLA:CPU is slow at both). They
run as XLA FFI custom calls, so they sit inside jitted code like any other operation.

The library is built once per source, compiler flags, jaxlib and CPU into
`$REGENNET_NATIVE_CACHE` (default `~/.cache/regennet_jax/native`), written atomically so that
several processes can build it at once. `available()` says whether it could be built and loaded
here (Linux or macOS on a CPU backend, a C++17 compiler `$CXX` or `c++`); `why_unavailable()`
says why not. `REGENNET_NATIVE_THREADS` sets the threads a product uses (default: the CPUs this
process may run on, at most 4: beyond that one token's products gain nothing).
"""

import ctypes
import functools
import hashlib
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile

import jax
import jax.numpy as jnp

SOURCE = pathlib.Path(__file__).with_name('stream_kernels.cc')
TARGET = 'regennet_few_rows'
ATTENTION_TARGET = 'regennet_one_token_attention'
MAX_ROWS = 8  # more rows than this: XLA's own product (it has the arithmetic to parallelise)
FLAGS = ('-O3', '-march=native', '-std=c++17', '-shared', '-fPIC')


class Unavailable(RuntimeError):
  """The native kernels cannot be built or loaded here (the message says why)."""


def cache_dir():
  root = os.environ.get('REGENNET_NATIVE_CACHE')
  if root:
    return pathlib.Path(root)
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return pathlib.Path(base) / 'regennet_jax' / 'native'


def _cpu_fingerprint():
  """What -march=native depends on: the CPU's model and feature flags."""
  try:
    with open('/proc/cpuinfo') as f:
      lines = [l for l in f if l.startswith(('model name', 'flags'))]
    return ''.join(sorted(set(lines)))
  except OSError:
    return platform.processor() + platform.machine()


def build(extra_flags=(), compiler=None):
  """Compiles stream_kernels.cc (if this exact build is not cached yet) -> the library's path.

  Raises Unavailable naming the compiler, or the compiler's own error output."""
  compiler = compiler or os.environ.get('CXX') or 'c++'
  found = shutil.which(compiler)
  if found is None:
    raise Unavailable(f'no C++ compiler {compiler!r} on PATH (set CXX or install g++)')
  flags = list(FLAGS) + list(extra_flags) + ['-I', jax.ffi.include_dir()]
  import jaxlib  # the FFI headers' version
  key = hashlib.sha256('\n'.join(
      [SOURCE.read_text(), ' '.join(flags), found, jaxlib.__version__,
       _cpu_fingerprint()]).encode()).hexdigest()[:16]
  target = cache_dir() / f'stream_kernels-{key}.so'
  if target.exists():
    return target
  target.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
    built = pathlib.Path(scratch) / target.name
    done = subprocess.run(
        [found, *flags, str(SOURCE), '-o', str(built)], capture_output=True, text=True)
    if done.returncode != 0:
      raise Unavailable(f'{compiler} could not build {SOURCE}:\n{done.stderr.strip()[-2000:]}')
    os.replace(built, target)  # atomic: a concurrent build of the same key writes the same file
  return target


def default_threads():
  env = os.environ.get('REGENNET_NATIVE_THREADS')
  if env:
    try:
      threads = int(env)
    except ValueError:
      threads = 0
    if threads < 1:
      raise Unavailable(f'REGENNET_NATIVE_THREADS={env!r}: expected a whole number >= 1')
    return threads
  cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
  return max(1, min(cpus or 1, 4))


@functools.cache
def _library():
  """Builds, loads and registers the kernels once per process -> the ctypes library."""
  if sys.platform not in ('linux', 'darwin'):
    raise Unavailable(f'native kernels are built for Linux and macOS, not {sys.platform}')
  if jax.default_backend() != 'cpu':
    raise Unavailable(f'native kernels run on CPUs; the backend is {jax.default_backend()}')
  lib = ctypes.cdll.LoadLibrary(str(build()))
  lib.RegennetFewRowsSetThreads.argtypes = [ctypes.c_int]
  lib.RegennetFewRowsSetThreads(default_threads())
  jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.RegennetFewRows), platform='cpu')
  jax.ffi.register_ffi_target(ATTENTION_TARGET,
                              jax.ffi.pycapsule(lib.RegennetOneTokenAttention),
                              platform='cpu')
  return lib


def why_unavailable():
  """None when the kernels load here, else the reason (one line or the compiler's output)."""
  try:
    _library()
    return None
  except Unavailable as e:
    return str(e)
  except OSError as e:  # the library built but does not load
    return f'the built library does not load: {e}'


def available():
  return why_unavailable() is None


def set_threads(threads):
  """Threads (the caller's included) each product is split over, from now on."""
  _library().RegennetFewRowsSetThreads(int(threads))


def threads():
  return int(_library().RegennetFewRowsThreads())


def vectorised():
  """Whether the AVX-512 path was compiled in (else the portable loops)."""
  return bool(_library().RegennetFewRowsVectorised())


def few_rows(x, w):
  """x [M, K] float32 . w [K, N] float32 or bfloat16 -> [M, N] float32 (sums in float32)."""
  _library()
  if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
    raise ValueError(f'few_rows takes x [M, K] and w [K, N], got {x.shape} and {w.shape}')
  if w.dtype not in (jnp.float32, jnp.bfloat16):
    w = w.astype(jnp.float32)
  call = jax.ffi.ffi_call(TARGET, jax.ShapeDtypeStruct((x.shape[0], w.shape[1]), jnp.float32))
  return call(x.astype(jnp.float32), w)


def one_token_attention(query, keys, values, step, frame, bf16_operands=False):
  """Softmax attention of one token per row and head over the frames <= `frame` of the cache's
  slice `step`, read in place.

  query [B, H, Dh] (divided by sqrt(Dh) here, as nn.dot_product_attention does); keys, values
  [S, B, H, T, Dh] float32; step, frame: int scalars. bf16_operands: round both products'
  operands to bfloat16, as matmul.operands_in('bfloat16') does. Returns [B, H, Dh] float32.
  """
  _library()
  if query.ndim != 3 or keys.ndim != 5 or keys.shape != values.shape or (keys.shape[1:3] +
                                                                         keys.shape[4:]
                                                                         != query.shape):
    raise ValueError(f'one_token_attention takes query [B, H, Dh] and caches [S, B, H, T, Dh], '
                     f'got {query.shape}, {keys.shape} and {values.shape}')
  call = jax.ffi.ffi_call(ATTENTION_TARGET, jax.ShapeDtypeStruct(query.shape, jnp.float32))
  return call(query.astype(jnp.float32),
              keys.astype(jnp.float32),
              values.astype(jnp.float32),
              jnp.asarray(step, jnp.int32),
              jnp.asarray(frame, jnp.int32),
              bf16_operands=bool(bf16_operands))

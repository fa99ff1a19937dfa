import os
import subprocess
import sys

import jax.numpy as jnp
import pytest

from regennet_jax import host_memory
from tests.helpers import ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith('linux'), reason="glibc's malloc")

# A block freed by the main thread, then a block of the same size touched by another thread (as
# XLA's worker threads take buffers the previous step freed): how many pages did it fault in?
_REUSE = r'''
import ctypes, resource, sys, threading
from regennet_jax import host_memory
applied = host_memory.keep_freed_memory() if sys.argv[1] == 'keep' else None
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
SIZE = 64 << 20

def touch_and_free():
  block = libc.malloc(SIZE)
  ctypes.memset(block, 1, SIZE)
  libc.free(block)

touch_and_free()
faults = []

def worker():
  before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
  touch_and_free()
  faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)

thread = threading.Thread(target=worker)
thread.start()
thread.join()
print(applied, faults[0])
'''


def _run(code, *args, path=(), **env):
  """Runs `code` in a fresh Python (JAX_PLATFORMS only as given); returns its printed words."""
  environment = {name: value for name, value in os.environ.items() if name != 'JAX_PLATFORMS'}
  environment.update(env, PYTHONPATH=os.pathsep.join([ROOT, *path]))
  out = subprocess.run([sys.executable, '-c', code, *args],
                       env=environment,
                       cwd=ROOT,
                       capture_output=True,
                       text=True,
                       check=True)
  return out.stdout.split()


def test_freed_memory_is_reused_by_other_threads_without_page_faults():
  pages = (64 << 20) // os.sysconf('SC_PAGE_SIZE')
  applied, faults = _run(_REUSE, 'keep')
  assert applied == 'True'
  assert int(faults) < pages // 20
  _, faults = _run(_REUSE, 'default')  # glibc's own settings: fresh pages, each one faulted in
  assert int(faults) > pages // 2


def test_not_applied_once_the_backend_has_started():
  jnp.zeros(1).block_until_ready()  # this process computes: its backend has started
  assert not host_memory.keep_freed_memory()


def test_not_applied_when_jax_computes_on_an_accelerator(tmp_path):
  code = 'from regennet_jax import host_memory; print(host_memory.keep_freed_memory())'
  assert _run(code, JAX_PLATFORMS='tpu') == ['False']
  assert _run(code, JAX_PLATFORMS='cpu') == ['True']
  # A plugin in JAX's plugin namespace (as jax_cuda12_plugin installs one) means an accelerator.
  (tmp_path / 'jax_plugins' / 'fake_gpu').mkdir(parents=True)
  (tmp_path / 'jax_plugins' / 'fake_gpu' / '__init__.py').write_text('')
  code = ('from regennet_jax import host_memory; '
          'print(host_memory.accelerator_plugins(), host_memory.keep_freed_memory())')
  assert _run(code, path=[str(tmp_path)]) == ["['fake_gpu']", 'False']


def test_set_for_paper_size_training_only():
  from configs import ntu120, synthetic
  assert host_memory.pays_off(ntu120.get_config())  # [64, 60, 1024] float32: 15.7 MB
  assert not host_memory.pays_off(synthetic.get_config())  # the default run: [32, 40, 256]
  small = ntu120.get_config()
  small.train.batch_size = 8  # 2 MB
  assert not host_memory.pays_off(small)

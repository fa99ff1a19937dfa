"""Fixtures every test module can use. The repository root is on sys.path through pytest's
`pythonpath` setting in pyproject.toml."""

import os
import shutil
import tempfile

# Tests run on the CPU; several forced devices let sharding tests run without accelerators.
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# Most tests run the same tiny models, many of them through run.py in a subprocess: one persistent
# compilation cache for the session (inherited by every subprocess) turns a ~30 s compile into a
# read (entries are keyed by the program, so a changed program simply compiles again). The
# directories live for the session only. With pytest-xdist the workers inherit the controller's
# environment, so every worker shares the controller's directories, and only the controller
# removes them.
_WORKER = 'PYTEST_XDIST_WORKER' in os.environ
if 'REGENNET_JAX_TEST_SESSION_DIR' not in os.environ:
  os.environ['REGENNET_JAX_TEST_SESSION_DIR'] = tempfile.mkdtemp(prefix='regennet_jax_test_cache_')
_SESSION_CACHE = os.environ['REGENNET_JAX_TEST_SESSION_DIR']
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = os.path.join(_SESSION_CACHE, 'jax')
  os.environ['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  os.environ['JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES'] = '0'
# Most of the suite's time is compiling small programs that then run a few steps. LLVM's full
# optimisation of XLA's generated CPU code is a quarter of such a compile (a tiny training step:
# 8.5 s at the default level 2, 6.3 s at 1) and buys nothing at these sizes; level 0 compiles
# faster still but runs evaluation's programs 5x slower. XLA's own HLO passes, which decide
# fusions and copies (what the tests that read compiled programs inspect), run as for users.
if '--xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', ''):
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             ' --xla_backend_optimization_level=1').strip()
# Synthetic datasets are built on first use into a data dir: the session's, not the user's cache.
os.environ['REGENNET_JAX_DATA_DIR'] = os.path.join(_SESSION_CACHE, 'datasets')

import pytest  # noqa: E402

from tests import fake_files  # noqa: E402


@pytest.fixture(scope='session')
def smplx_npz(tmp_path_factory):
  return fake_files.write_fake_smplx_npz(
      tmp_path_factory.mktemp('body_models') / 'SMPLX_NEUTRAL.npz')


def pytest_sessionfinish(session, exitstatus):
  if not _WORKER:
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)

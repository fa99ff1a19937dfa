"""regennet_jax.allocator: which malloc run.py re-executes itself with, and the re-execution."""

import json
import os
import subprocess
import sys

import pytest

from regennet_jax import allocator
from regennet_jax import errors
from tests.helpers import ROOT


def _installed(name):
  return {'tcmalloc_minimal': 'libtcmalloc_minimal.so.4'}.get(name)


def _missing(name):
  return None


def test_choose_finds_tcmalloc_unless_told_not_to():
  assert allocator.choose({}, _installed) == 'libtcmalloc_minimal.so.4'
  assert allocator.choose({'REGENNET_MALLOC': 'auto'}, _installed) == 'libtcmalloc_minimal.so.4'
  assert allocator.choose({'REGENNET_MALLOC': 'system'}, _installed) is None
  assert allocator.choose({}, _missing) is None


def test_choose_never_preloads_twice():
  # The re-executed process, and one whose LD_PRELOAD already holds a malloc, keep theirs.
  assert allocator.choose({'REGENNET_MALLOC_PRELOADED': 'x.so'}, _installed) is None
  assert allocator.choose({'LD_PRELOAD': '/opt/lib/libjemalloc.so.2'}, _installed) is None
  assert allocator.choose({'LD_PRELOAD': '/lib/libtcmalloc.so.4'}, _installed) is None
  # Another preloaded library is no malloc: tcmalloc goes in front of it.
  assert allocator.choose({'LD_PRELOAD': '/lib/libfoo.so'},
                          _installed) == 'libtcmalloc_minimal.so.4'


def test_choose_takes_a_path_and_names_a_missing_one(tmp_path):
  library = tmp_path / 'libmymalloc.so'
  library.write_bytes(b'')
  assert allocator.choose({'REGENNET_MALLOC': str(library)}, _missing) == str(library)
  with pytest.raises(errors.ConfigError, match=r"REGENNET_MALLOC='/nowhere/lib\.so': no such file"):
    allocator.choose({'REGENNET_MALLOC': '/nowhere/lib.so'}, _installed)


def _loaded_libm():
  """This process's libm: Python needs it anyway, so preloading it changes nothing else."""
  with open('/proc/self/maps') as maps:
    paths = sorted({line.split()[-1] for line in maps if '/libm.so' in line})
  if not paths:
    pytest.skip('no libm mapped in this process')
  return paths[0]


# Prints what the (re-executed) process sees; its arguments must survive the re-execution.
_CHILD = (
    'import json, os, sys; sys.path.insert(0, sys.argv[1]); '
    'from regennet_jax import allocator; allocator.preload(); '
    'print(json.dumps(dict(pid=os.getpid(), argv=sys.argv[1:], malloc=allocator.active(), '
    'preload=os.environ.get("LD_PRELOAD"), done=os.environ.get("REGENNET_MALLOC_PRELOADED"))))')


def _run_child(env):
  proc = subprocess.Popen([sys.executable, '-c', _CHILD, ROOT, 'two words', '--flag=1'],
                          stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE,
                          text=True,
                          env=env)
  out, err = proc.communicate(timeout=60)
  return proc, out, err


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='LD_PRELOAD is Linux-only')
def test_preload_reexecutes_in_place_once_with_the_same_arguments():
  library = _loaded_libm()
  env = {k: v for k, v in os.environ.items() if k != 'LD_PRELOAD'}
  proc, out, err = _run_child(dict(env, REGENNET_MALLOC=library))
  assert proc.returncode == 0, err
  seen = json.loads(out)
  assert seen['pid'] == proc.pid  # replaced in place: signals and exit codes reach the same process
  assert seen['argv'] == [ROOT, 'two words', '--flag=1']
  assert seen['preload'] == library and seen['done'] == library

  proc, out, err = _run_child(dict(env, REGENNET_MALLOC='system'))
  assert json.loads(out)['preload'] is None and json.loads(out)['malloc'] == 'system'


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='LD_PRELOAD is Linux-only')
def test_preload_reports_a_missing_library_as_one_line():
  env = dict(os.environ, REGENNET_MALLOC='/nowhere/libmalloc.so')
  proc, out, err = _run_child(env)
  assert proc.returncode == 1 and out == ''
  assert err.startswith("error: REGENNET_MALLOC='/nowhere/libmalloc.so': no such file")
  assert 'Traceback' not in err


@pytest.mark.skipif(allocator.choose({}) is None,
                    reason='no tcmalloc installed (.ci/run installs it)')
def test_preload_loads_tcmalloc_when_installed():
  env = {k: v for k, v in os.environ.items() if k not in ('LD_PRELOAD', 'REGENNET_MALLOC')}
  proc, out, err = _run_child(env)
  assert proc.returncode == 0, err
  assert 'tcmalloc' in json.loads(out)['malloc']

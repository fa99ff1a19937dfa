"""tcmalloc for run.py and the benchmarks: a malloc that keeps the memory a training step frees.

XLA:CPU takes each step's buffers from malloc. glibc gives large freed blocks back to the kernel,
so every step writes to fresh pages that the kernel must zero: about 450,000 page faults and a
tenth of a paper-size float32 step on a 2-core CPU. tcmalloc keeps freed memory in per-thread and
central caches instead, without one lock for all threads (README, Speed, "fifth sitting"). Cloud
TPU VM images commonly preload it too.

A process's malloc can only be chosen before it starts, so `preload()` re-executes the running
command once, in place (same PID, same arguments), with the library in LD_PRELOAD. run.py calls
it first thing, and so does bench/common.py when a benchmark runs as a command. It does nothing
when:

* REGENNET_MALLOC=system, or this process is already the re-executed one;
* LD_PRELOAD already names a tcmalloc or jemalloc (set by the user or the machine image);
* the platform is not Linux, or no tcmalloc is installed (Debian/Ubuntu: libtcmalloc-minimal4).

REGENNET_MALLOC=/path/to/lib.so preloads that library instead (a tcmalloc elsewhere, or another
malloc to compare: jemalloc kept a tenth of glibc's faults even with its page purging off).
"""

import ctypes.util
import os
import sys

from regennet_jax import errors

SETTING = 'REGENNET_MALLOC'
_DONE = 'REGENNET_MALLOC_PRELOADED'  # set in the re-executed process: never a second exec
_KNOWN = ('tcmalloc', 'jemalloc')
_LIBRARIES = ('tcmalloc_minimal', 'tcmalloc')  # the minimal build has no heap profiler to carry


def choose(environ, find=ctypes.util.find_library):
  """The library to preload for a process with this environment, or None to keep its malloc.

  Args:
    environ: the process's environment (a mapping).
    find: library name -> file name the dynamic loader resolves, or None (ctypes.util's).
  Raises:
    errors.ConfigError: REGENNET_MALLOC names a file that does not exist.
  """
  setting = environ.get(SETTING, 'auto')
  if environ.get(_DONE) or setting == 'system':
    return None
  if any(name in environ.get('LD_PRELOAD', '') for name in _KNOWN):
    return None
  if setting != 'auto':
    if not os.path.isfile(setting):
      raise errors.ConfigError(
          f'{SETTING}={setting!r}: no such file. Expected "auto" (tcmalloc when installed), '
          '"system" (glibc\'s malloc) or the path of a malloc library such as '
          '/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4.')
    return setting
  for name in _LIBRARIES:
    found = find(name)
    if found:
      return found
  return None


def preload():
  """Re-executes this process with tcmalloc preloaded, when `choose` finds one; else returns.

  Call it before anything else runs: the command starts again from the top.
  """
  if not sys.platform.startswith('linux'):
    return
  try:
    library = choose(os.environ)
  except errors.ConfigError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(1)
  if library is None:
    return
  env = dict(os.environ, **{_DONE: library})
  env['LD_PRELOAD'] = ':'.join(p for p in (library, os.environ.get('LD_PRELOAD')) if p)
  # The full tcmalloc logs every allocation above 1 GB; a paper-size step makes such buffers.
  env.setdefault('TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD', str(1 << 40))
  sys.stdout.flush()
  sys.stderr.flush()
  os.execve(sys.executable, sys.orig_argv, env)


def active():
  """The malloc this process runs with: a preloaded library's file name, or 'system'."""
  try:
    with open('/proc/self/maps') as maps:
      for line in maps:
        path = line.split()[-1]
        name = os.path.basename(path)
        if any(known in name for known in _KNOWN):
          return name
  except OSError:  # not Linux
    pass
  return 'system'

"""What happens on preemption: SIGTERM or Ctrl-C asks training to save a checkpoint and stop.

The first SIGTERM or Ctrl-C on ANY host sets that host's flag. At every step boundary the hosts
agree (a tiny all-reduce of the flags across processes), so all of them see the request at the
same step, save the same checkpoint (state and input position) together and exit with status 0;
rerunning the same command resumes. A second Ctrl-C stops that host at once.

On a TPU pod or a SLURM cluster the scheduler preempts one host at a time with SIGTERM; without
the agreement, the signalled host would stop alone and leave the others waiting forever in the
next collective.
"""

import signal

import jax
import numpy as np


class StopFlag:
  """Context manager: while active, SIGTERM and the first SIGINT set `requested` (the signal's
  name) instead of killing the process."""
  def __init__(self):
    self.requested = None
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handle)
      except ValueError:  # not in the main thread
        pass
    return self

  def _handle(self, signum, frame):
    del frame
    if self.requested is not None and signum == signal.SIGINT:
      raise KeyboardInterrupt  # second Ctrl-C: stop right now
    self.requested = signal.Signals(signum).name

  def agreed(self):
    """The name of the first stop signal any host received, or None; the same on every host.

    With several processes this is a collective: every host must call it at the same step.
    """
    if jax.process_count() == 1:
      return self.requested
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    code = signal.Signals[self.requested].value if self.requested else 0
    codes = np.asarray(multihost_utils.process_allgather(np.array([code], np.int32)))
    received = [int(c) for c in codes.reshape(-1) if c]
    return signal.Signals(received[0]).name if received else None

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    return False

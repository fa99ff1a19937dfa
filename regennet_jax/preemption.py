"""What happens on preemption: SIGTERM or Ctrl-C asks training to save a checkpoint and stop.

The first SIGTERM or Ctrl-C sets a flag; the training loop checks it at every step boundary, saves
the state and the input position, and exits with status 0 (rerunning the same command resumes).
A second Ctrl-C stops at once.
"""

import signal


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

  def __exit__(self, *exc):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)
    return False

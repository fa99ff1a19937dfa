"""The stop flag in one process: signals ask for a stop, a second Ctrl-C stops at once."""

import os
import signal

import pytest

from regennet_jax import preemption


def test_first_signal_is_recorded_and_a_second_ctrl_c_interrupts_at_once():
  with preemption.StopFlag() as flag:
    assert flag.agreed() is None
    os.kill(os.getpid(), signal.SIGTERM)  # a scheduler's preemption: recorded, nothing raised
    assert flag.requested == 'SIGTERM' and flag.agreed() == 'SIGTERM'
    os.kill(os.getpid(), signal.SIGTERM)  # repeated SIGTERMs keep waiting for the save
    assert flag.requested == 'SIGTERM'
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C after a stop request: stop right now
  with preemption.StopFlag() as flag:
    os.kill(os.getpid(), signal.SIGINT)
    assert flag.requested == 'SIGINT'
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)


def test_the_previous_handlers_come_back():
  before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
  with preemption.StopFlag():
    assert signal.getsignal(signal.SIGTERM) != before[0]
  assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before

"""Stop signals: a preempted or interrupted run saves a checkpoint and exits cleanly, and on a
pod every process stops at the same step.

SIGTERM (a scheduler's preemption notice) and the first SIGINT (Ctrl-C) request a stop; a second
SIGINT aborts at once with KeyboardInterrupt (no checkpoint). A process only *requests*: the
loop asks `agreed_stop` after each step, which in a multi-process run gathers every process's
request at the steps that are multiples of `every_steps`, so all processes see the same answer at
the same step and reach the collective checkpoint save together, whichever of them got the
signal. A single process answers at every step without any collective.
"""

import contextlib
import signal
import threading
from typing import Iterator

import jax
import numpy as np
from jax.experimental import multihost_utils


class StopRequest:
  """Set by SIGTERM or the first SIGINT; a second SIGINT raises KeyboardInterrupt."""

  def __init__(self):
    self._event = threading.Event()
    self.signal_name = ''

  def set(self, signum: int, frame=None) -> None:
    del frame
    if signum == signal.SIGINT and self._event.is_set():
      raise KeyboardInterrupt
    self.signal_name = signal.Signals(signum).name
    self._event.set()

  def __bool__(self) -> bool:
    return self._event.is_set()


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGTERM, signal.SIGINT)) -> Iterator[StopRequest]:
  """Installs handlers for `signals` in the main thread while the block runs."""
  request = StopRequest()
  if threading.current_thread() is not threading.main_thread():
    yield request
    return
  previous = {signum: signal.signal(signum, request.set) for signum in signals}
  try:
    yield request
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)


def agreed_stop(request: StopRequest, step: int, every_steps: int) -> bool:
  """Whether every process stops after `step`: True on all of them or on none."""
  if jax.process_count() == 1:
    return bool(request)
  if step % max(1, every_steps):
    return False
  flags = multihost_utils.process_allgather(np.asarray([int(bool(request))], np.int32))
  return bool(np.any(flags))

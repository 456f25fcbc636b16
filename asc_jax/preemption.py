"""SIGTERM handling: a preempted run saves a checkpoint at the next step and exits cleanly."""

import contextlib
import signal
import threading
from typing import Iterator


class StopRequest:
  """Set by SIGTERM or SIGINT; the training loop polls it after every step."""

  def __init__(self):
    self._event = threading.Event()
    self.signal_name = ''

  def set(self, signum: int, frame=None) -> None:
    del frame
    self.signal_name = signal.Signals(signum).name
    self._event.set()

  def __bool__(self) -> bool:
    return self._event.is_set()


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGTERM,)) -> Iterator[StopRequest]:
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

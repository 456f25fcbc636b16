"""What a command prints: quiet logging, one progress bar per phase, one-line notes.

A leaf module (imports neither jax nor any other asc_jax module), shared by every command.

API
---
``setup(workdir=None, process_index=0)``
    Call first in every command's ``main(argv)`` (flags are parsed by then). Unless the user
    passed ``--verbosity``/``-v``, the console shows warnings and errors only: absl INFO lines
    (Orbax's checkpoint manager, TFDS, jax's backend probing) are kept off it, and a few known
    harmless warnings (`HARMLESS_WARNINGS`) are dropped. ``--verbosity=0`` brings INFO back,
    ``--verbosity=1`` adds DEBUG. With ``workdir``, ``log_to_file(workdir, process_index)`` too.
``log_to_file(workdir, process_index=0) -> str``
    Appends the full log (INFO and up, whatever the console shows) to ``<workdir>/log.txt``
    (``log.process<i>.txt`` on process i > 0) and returns the path. Idempotent per path.
``progress(iterable=None, *, total=None, desc=None, unit='it', **kwargs) -> tqdm.tqdm``
    The project's progress bar: one per phase (dataset build in clips, training in steps,
    evaluation in batches), rates such as clips/s and the ETA on it, redrawn at most every
    `TTY_REFRESH_S` on a terminal and every `FILE_REFRESH_S` when the output is redirected.
    Extra keyword arguments go to tqdm (``leave``, ``initial``, ``disable``, ``postfix``...).
    Pass ``disable=not is_primary`` on multi-process runs.
``note(message)``
    One line on stderr, above any live bar (for example 'starting 2 extraction workers...').
``verbose() -> bool``
    Whether ``--verbosity`` asked for INFO or more (then third-party output is not hidden).

Third-party progress bars (TFDS's 'Generating splits', 'Shuffling ...') are switched off where
the project drives that library (asc_jax/data/builder_base.py).
"""

import logging
import os
import sys
from typing import Iterable, Optional

from absl import flags
from absl import logging as absl_logging
import tqdm

LOG_FILE = 'log.txt'
TTY_REFRESH_S = 0.5
FILE_REFRESH_S = 10.0
# Message prefixes dropped from the console (kept in the log file) unless --verbosity is given.
HARMLESS_WARNINGS = (
    # TFDS, for every builder config not declared in BUILDER_CONFIGS (all of ours are computed).
    'Using custom data configuration',
)

_file_handlers: dict = {}


def verbosity_requested() -> bool:
  """Whether --verbosity (or -v) was on the command line."""
  try:
    return flags.FLAGS['verbosity'].present > 0
  except (KeyError, AttributeError):
    return False


def verbose() -> bool:
  return verbosity_requested() and absl_logging.get_verbosity() >= absl_logging.INFO


class _DropHarmless(logging.Filter):
  def filter(self, record: logging.LogRecord) -> bool:
    message = record.msg if isinstance(record.msg, str) else ''
    return not message.startswith(HARMLESS_WARNINGS)


def setup(workdir: Optional[str] = None, process_index: int = 0) -> None:
  """Quiet console logging (see the module docstring); optionally the full log to a file."""
  if not verbosity_requested():
    handler = absl_logging.get_absl_handler()
    handler.setLevel(logging.WARNING)
    if not any(isinstance(f, _DropHarmless) for f in handler.filters):
      handler.addFilter(_DropHarmless())
    logging.root.setLevel(logging.INFO if _file_handlers else logging.WARNING)
  if workdir:
    log_to_file(workdir, process_index)


def log_to_file(workdir: str, process_index: int = 0) -> str:
  """Appends the INFO log to <workdir>/log.txt (log.process<i>.txt on process i > 0)."""
  name = LOG_FILE if process_index == 0 else f'log.process{process_index}.txt'
  path = os.path.join(os.path.abspath(os.path.expanduser(workdir)), name)
  if path in _file_handlers:
    return path
  os.makedirs(os.path.dirname(path), exist_ok=True)
  handler = logging.FileHandler(path, encoding='utf-8')
  handler.setFormatter(absl_logging.PythonFormatter())
  root_level = logging.root.level
  handler.setLevel(min(root_level, logging.INFO) if root_level != logging.NOTSET else logging.INFO)
  logging.root.addHandler(handler)
  if root_level == logging.NOTSET or root_level > logging.INFO:
    logging.root.setLevel(logging.INFO)   # the console handler keeps its own WARNING level.
  _file_handlers[path] = handler
  return path


def _is_terminal(stream) -> bool:
  try:
    return stream.isatty()
  except (AttributeError, ValueError):
    return False


def progress(iterable: Optional[Iterable] = None, *, total: Optional[float] = None,
             desc: Optional[str] = None, unit: str = 'it', **kwargs) -> tqdm.tqdm:
  """A tqdm bar in the project's format (see the module docstring)."""
  stream = kwargs.pop('file', sys.stderr)
  kwargs.setdefault('mininterval', TTY_REFRESH_S if _is_terminal(stream) else FILE_REFRESH_S)
  kwargs.setdefault('smoothing', 0.1)
  kwargs.setdefault('dynamic_ncols', True)
  return tqdm.tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, **kwargs)


def note(message: str) -> None:
  """One line on stderr, printed above any live progress bar."""
  tqdm.tqdm.write(message, file=sys.stderr)
  sys.stderr.flush()

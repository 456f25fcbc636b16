"""Atomic file writes: a reader never sees a half-written file, a crash leaves none behind."""

import json
import os
import tempfile
from typing import Any


def atomic_write_bytes(path: str, data: bytes) -> None:
  """Writes `data` to a temporary file beside `path`, then renames it over `path`."""
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  handle, temporary = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix=os.path.basename(path))
  try:
    with os.fdopen(handle, 'wb') as file:
      file.write(data)
    os.replace(temporary, path)
  except BaseException:
    if os.path.exists(temporary):
      os.remove(temporary)
    raise


def atomic_write_text(path: str, text: str) -> None:
  atomic_write_bytes(path, text.encode('utf-8'))


def atomic_write_json(path: str, value: Any) -> None:
  atomic_write_text(path, json.dumps(value, indent=2, sort_keys=True) + '\n')

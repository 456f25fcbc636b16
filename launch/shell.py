"""Running (or, in a dry run, printing) the shell commands of a launch script.

Every command is a list of arguments; it is printed shell-quoted, so a dry run's output can be
pasted into a terminal as is.
"""

import shlex
import subprocess
from typing import Sequence


class CommandRunner:
  """Runs commands in order and stops at the first failure; with `dry_run`, only prints them."""

  def __init__(self, dry_run: bool):
    self.dry_run = dry_run

  def run(self, command: Sequence[str]) -> None:
    print(shlex.join(command), flush=True)
    if not self.dry_run:
      subprocess.run(list(command), check=True)

  def run_together(self, commands: Sequence[Sequence[str]]) -> None:
    """Starts every command at once (one per host) and waits for all; raises if any failed."""
    for command in commands:
      print(shlex.join(command) + ' &', flush=True)
    if self.dry_run:
      print('wait', flush=True)
      return
    processes = [subprocess.Popen(list(command)) for command in commands]
    failed = [index for index, process in enumerate(processes) if process.wait() != 0]
    if failed:
      raise RuntimeError(f'the commands of hosts {failed} failed; see their output above.')

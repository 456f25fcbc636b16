"""Console-script entry points: each runs a command module exactly as `python -m` does.

  asc-jax-train ARGS            = python -m asc_jax.main ARGS
  asc-jax-predict ARGS          = python -m asc_jax.predict ARGS
  asc-jax-prepare ARGS          = python -m asc_jax.data.prepare ARGS
  asc-jax-complexity ARGS       = python -m asc_jax.complexity ARGS
  asc-jax-compress ARGS         = python -m asc_jax.compress ARGS
  asc-jax-teacher-logits ARGS   = python -m asc_jax.compress.teacher ARGS
  asc-jax-translate ARGS        = python -m asc_jax.translate ARGS
  asc-jax-ablate ARGS           = python -m asc_jax.ablate ARGS
  asc-jax COMMAND ARGS          any of the above by its name after `asc-jax-` (asc-jax train ...)

The module runs as `__main__` (runpy), so its flags, its re-exec with huge pages and its worker
processes behave as under `python -m`; nothing is duplicated here.
"""

import runpy
import sys

COMMANDS = {
    'train': 'asc_jax.main',
    'predict': 'asc_jax.predict',
    'prepare': 'asc_jax.data.prepare',
    'complexity': 'asc_jax.complexity',
    'compress': 'asc_jax.compress',
    'teacher-logits': 'asc_jax.compress.teacher',
    'translate': 'asc_jax.translate',
    'ablate': 'asc_jax.ablate',
}


def run_command(name: str) -> None:
  """Runs command `name` (a key of COMMANDS) with this process's arguments."""
  runpy.run_module(COMMANDS[name], run_name='__main__', alter_sys=True)


def usage() -> str:
  width = max(map(len, COMMANDS))
  return 'usage: asc-jax COMMAND [FLAGS]\n\ncommands:\n' + '\n'.join(
      f'  {name.ljust(width)}  python -m {module}' for name, module in COMMANDS.items())


def dispatch() -> None:
  """`asc-jax COMMAND ARGS`."""
  if len(sys.argv) >= 2 and sys.argv[1] in ('-h', '--help'):
    print(usage())
    sys.exit(0)
  if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
    print(usage(), file=sys.stderr)
    sys.exit(2)
  name = sys.argv.pop(1)
  run_command(name)


def train() -> None:
  run_command('train')


def predict() -> None:
  run_command('predict')


def prepare() -> None:
  run_command('prepare')


def complexity() -> None:
  run_command('complexity')


def compress() -> None:
  run_command('compress')


def teacher_logits() -> None:
  run_command('teacher-logits')


def translate() -> None:
  run_command('translate')


def ablate() -> None:
  run_command('ablate')

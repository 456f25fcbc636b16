"""Merges `pip freeze` outputs of fresh per-Python installs into one constraints file.

  python .ci/constraints.py OUT 3.11=freeze311.txt 3.12=freeze312.txt

A package at the same version everywhere gets one line; otherwise one line per Python with an
environment marker (`; python_version == "3.11"`), which pip applies to the interpreter it
runs under. `.ci/update_constraints` makes the freezes; `.ci/run` installs with the result.
"""

import re
import sys

HEADER = """\
# Exact versions CI installed and tested (Python 3.11 and 3.12), for reproducible installs:
#   pip install -e '.[test]' -c constraints/ci.txt
# Regenerate with .ci/update_constraints (fresh venvs, newest releases inside setup.cfg's
# ranges), then run .ci/run. Markers select the line for the running Python.
"""


def read_freeze(path: str) -> dict:
  pins = {}
  for line in open(path):
    line = line.strip()
    if not line or line.startswith(('#', '-e ')) or '==' not in line:
      continue
    name, version = line.split('==', 1)
    pins[re.sub(r'[-_.]+', '-', name).lower()] = version.split(';')[0].strip()
  return pins


def merge(freezes: dict) -> list:
  names = sorted(set().union(*freezes.values()))
  lines = []
  for name in names:
    versions = {python: pins.get(name) for python, pins in freezes.items()}
    if len(set(versions.values())) == 1:
      lines.append(f'{name}=={next(iter(versions.values()))}')
      continue
    for python, version in versions.items():
      if version is not None:
        lines.append(f'{name}=={version}; python_version == "{python}"')
  return lines


def main(argv: list) -> None:
  out, *pairs = argv[1:]
  freezes = dict(pair.split('=', 1) for pair in pairs)
  freezes = {python: read_freeze(path) for python, path in freezes.items()}
  with open(out, 'w') as file:
    file.write(HEADER + '\n'.join(merge(freezes)) + '\n')


if __name__ == '__main__':
  main(sys.argv)

"""Transparent huge pages for XLA's host buffers: the one process-level setting of the commands.

XLA's CPU runtime allocates the temporary buffers of each executable run with malloc; for
BC-ResNet-Mod-8 at batch 32 on 256 x 431 that is one block of about 7.9 GB per train step, which
glibc maps fresh from the kernel every step and the step then faults in 4 KiB page by page.
Measured on a 2-core CPU (README, Performance), that page faulting was about 40 % of the CPU time
of a train step. glibc's tunable `glibc.malloc.hugetlb=1` (glibc >= 2.35) makes malloc ask the
kernel for transparent huge pages on those blocks: 512 times fewer faults, the same memory.

glibc reads tunables only when a process starts, so the training commands call
`reexec_with_huge_pages()` first: on Linux with glibc and transparent huge pages available, a
process started without the tunable replaces itself (os.execve, same PID, same arguments) with one
started with it. Set ASC_JAX_KEEP_MALLOC=1 to opt out; a GLIBC_TUNABLES that already names the
hugetlb tunable is left as it is.
"""

import os
import platform
import sys

TUNABLE = 'glibc.malloc.hugetlb'
OPT_OUT_VARIABLE = 'ASC_JAX_KEEP_MALLOC'
THP_SETTING = '/sys/kernel/mm/transparent_hugepage/enabled'


def huge_page_environment(environ: dict[str, str]) -> dict[str, str] | None:
  """`environ` with the hugetlb tunable added, or None where it is not wanted or cannot work."""
  if environ.get(OPT_OUT_VARIABLE) or TUNABLE in environ.get('GLIBC_TUNABLES', ''):
    return None
  if not sys.platform.startswith('linux') or platform.libc_ver()[0] != 'glibc':
    return None
  try:
    with open(THP_SETTING) as setting:
      if '[never]' in setting.read():
        return None
  except OSError:
    return None
  tunables = [part for part in environ.get('GLIBC_TUNABLES', '').split(':') if part]
  return {**environ, 'GLIBC_TUNABLES': ':'.join([*tunables, f'{TUNABLE}=1'])}


def reexec_with_huge_pages() -> None:
  """Restarts this command with the tunable set (see the module docstring); returns otherwise."""
  environment = huge_page_environment(dict(os.environ))
  if environment is not None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], environment)

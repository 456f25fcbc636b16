"""The huge-page tunable of the commands: the environment it builds, and a real re-execution."""

import os
import subprocess
import sys

from asc_jax import host_memory


def test_the_tunable_is_appended_to_existing_tunables_once():
  environment = host_memory.huge_page_environment(
      {'GLIBC_TUNABLES': 'glibc.malloc.trim_threshold=1', 'HOME': '/root'})
  if environment is None:   # Not Linux + glibc with transparent huge pages: nothing to change.
    assert not os.path.exists(host_memory.THP_SETTING) or '[never]' in open(
        host_memory.THP_SETTING).read() or not sys.platform.startswith('linux')
    return
  assert environment == {'GLIBC_TUNABLES': 'glibc.malloc.trim_threshold=1:glibc.malloc.hugetlb=1',
                         'HOME': '/root'}
  assert host_memory.huge_page_environment(environment) is None


def test_opt_out_and_a_user_choice_are_respected():
  assert host_memory.huge_page_environment({host_memory.OPT_OUT_VARIABLE: '1'}) is None
  assert host_memory.huge_page_environment({'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=0'}) is None


def test_a_command_restarts_itself_with_the_tunable_and_keeps_its_arguments():
  program = ('import os, sys\n'
             'from asc_jax import host_memory\n'
             'host_memory.reexec_with_huge_pages()\n'
             'print(os.getpid(), os.environ.get("GLIBC_TUNABLES", ""), sys.argv[1:])\n')
  environment = {key: value for key, value in os.environ.items()
                 if key not in ('GLIBC_TUNABLES', host_memory.OPT_OUT_VARIABLE)}
  process = subprocess.Popen([sys.executable, '-c', program, 'first', '--second=2'],
                             env=environment, stdout=subprocess.PIPE, text=True)
  output, _ = process.communicate(timeout=60)
  assert process.returncode == 0
  pid, tunables, arguments = output.split(' ', 2)
  expected = host_memory.huge_page_environment(environment)
  assert tunables == (expected['GLIBC_TUNABLES'] if expected else '')
  assert arguments.strip() == "['first', '--second=2']"
  assert int(pid) == process.pid   # execve keeps the process: no child left behind.

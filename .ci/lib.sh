# Shared by .ci/run and .ci/update_constraints (sourced).
PYTHONS="${ASC_CI_PYTHONS-3.11 3.12}"   # ASC_CI_PYTHONS="" runs no test suite

# find_python 3.12 -> an interpreter of that version: pythonX.Y on PATH, else a pyenv install.
find_python() {
  local candidate
  for candidate in "$(command -v "python$1" || true)" \
                   "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")/versions/$1".*/bin/python; do
    if [ -x "$candidate" ] && "$candidate" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$1'" 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "no Python $1 found (install it, e.g. pyenv install $1)" >&2
  return 1
}

# every extra of setup.cfg, comma-separated (test,export,...)
all_extras() {
  python3 -c "import configparser; c = configparser.ConfigParser(); c.read('setup.cfg'); print(','.join(c['options.extras_require']))"
}

# Sourced by ./run and ./test: make .venv and install proctorq into it, once per change of
# pyproject.toml. $1 is the pip extra to install ("" for the system alone, "test" for tests).
set -euo pipefail
extra="${1:-}"
marker=".venv/.installed${extra:+-$extra}"
if [ ! -f "$marker" ] || [ pyproject.toml -nt "$marker" ]; then
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  echo "Installing proctorq${extra:+ with its $extra extras} into .venv (first run only)..." >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extra:+[$extra]}" >&2
  touch "$marker"
fi

# Sourced by scripts/test and scripts/serve: create .venv and install fsbrain with pinned dependencies.
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "fsbrain needs Python 3.11 or newer ($PY is $("$PY" --version 2>&1))" >&2; exit 2
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.fsbrain-installed
want=$(cat pyproject.toml setup.py $(find src -name '*.pyx' | sort) 2>/dev/null | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing fsbrain and its pinned dependencies into .venv ..." >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  .venv/bin/python -m pip install -q -e '.[dev]'
  echo "$want" > "$stamp"
fi
# modules compiled from their .py (fsbrain.compiled): recompile those whose .py changed since they were built
# (until then the changed .py runs)
stale=$(.venv/bin/python -c 'import fsbrain.compiled as c; print(",".join(c.stale()))' 2>/dev/null || true)
if [ -n "$stale" ]; then
  echo "recompiling $stale ..." >&2
  FSBRAIN_BUILD_ONLY="$stale" .venv/bin/python setup.py build_ext --inplace -q >/dev/null 2>&1 \
    || echo "recompiling failed: they run as Python (.venv/bin/python setup.py build_ext --inplace)" >&2
fi

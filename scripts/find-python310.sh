#!/usr/bin/env bash
# Print the path of a working Python 3.10 (Rasa 3.6 supports 3.8-3.10 only), or explain what to
# install. Order: $PYTHON310, pyenv's 3.10, python3.10 on PATH (only if it really runs).
set -u
try() { [ -n "$1" ] && "$1" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && { echo "$1"; exit 0; }; }
try "${PYTHON310:-}"
if command -v pyenv >/dev/null 2>&1; then
  prefix=$(pyenv prefix 3.10 2>/dev/null | head -n1)
  [ -z "$prefix" ] && prefix=$(pyenv root 2>/dev/null)/versions/$(pyenv versions --bare 2>/dev/null | grep '^3\.10' | tail -n1)
  try "$prefix/bin/python3.10"
  try "$prefix/bin/python"
fi
for candidate in python3.10 /usr/bin/python3.10 /usr/local/bin/python3.10; do
  try "$(command -v "$candidate" 2>/dev/null)"
done
cat >&2 <<'MSG'
No Python 3.10 found. Rasa Open Source 3.6 runs on Python 3.8-3.10 only.
Install one, e.g. `pyenv install 3.10.13` or `apt-get install python3.10 python3.10-venv`,
or point PYTHON310 at it: `make run PYTHON310=/path/to/python3.10`.
MSG
exit 1

#!/usr/bin/env bash
# make test: unit tests, then the lab's own tests and the integration tests against a running lab,
# then ansible-test sanity. Every stage runs; the exit code is non-zero if any failed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
PY=.venv/bin/python
failed=()

stage() {  # stage NAME COMMAND...
  local name=$1; shift
  echo "=== $name"
  if "$@"; then echo "=== $name: ok"; else echo "=== $name: FAILED"; failed+=("$name"); fi
}

stage unit "$PY" -m pytest tests/unit -q -p no:cacheprovider
if stage lab-up "$PY" -m dirsync_lab up; then
  stage "lab and integration" "$PY" -m pytest tests/lab tests/integration -q -p no:cacheprovider
fi
stage lab-down "$PY" -m dirsync_lab down
# make lab-down must leave no process behind.
leftover() { pgrep -af "$PWD/.lab/samba/etc/smb.conf|dirsync_lab.emulator --config $PWD/.lab" || true; }
stage "lab-down leaves no process" test -z "$(leftover)"
stage sanity bash scripts/sanity.sh

if [ ${#failed[@]} -gt 0 ]; then
  echo "make test: FAILED stages: ${failed[*]}"
  exit 1
fi
echo "make test: all stages passed"

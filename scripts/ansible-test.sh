#!/usr/bin/env bash
# Runs an ansible-test command (sanity, units) on the collection as it is on disk, committed or not.
#
# ansible-test must run from a path ending in ansible_collections/<namespace>/<name>/, so this
# copies the files git knows about (tracked, plus untracked ones not ignored) to
# .build/ansible_collections/entraid/dirsync and runs there. Deleted files are left out.
#
# Usage: scripts/ansible-test.sh COMMAND [ansible-test arguments...]   e.g. sanity --test pep8, units
# Environment: PYTHON (default: .venv/bin/python), ANSIBLE_TEST_PYTHON_VERSION (default: 3.11).
# Exit status: ansible-test's (0 when every test passed).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
[ $# -ge 1 ] || { echo "usage: scripts/ansible-test.sh COMMAND [arguments...]" >&2; exit 2; }
command=$1; shift
python=${PYTHON:-$root/.venv/bin/python}
python_version=${ANSIBLE_TEST_PYTHON_VERSION:-${SANITY_PYTHON_VERSION:-3.11}}
ansible_test=$(dirname "$python")/ansible-test
[ -x "$ansible_test" ] || { echo "ansible-test.sh: $ansible_test not found; create the venv first (make venv)" >&2; exit 2; }

dest="$root/.build/ansible_collections/entraid/dirsync"
rm -rf "$dest"
mkdir -p "$dest"
# NUL-separated so any file name survives; a file deleted but not yet committed is skipped.
git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' path; do [ -e "$path" ] && printf '%s\0' "$path"; done \
    | tar --null --files-from=- -cf - \
    | tar -xf - -C "$dest"
# Without this, ansible-test walks up to this repository's .git, where .build/ is ignored, and
# finds no files; pinned to the copy, it tests every file in it, which is exactly the list above.
export ANSIBLE_TEST_CONTENT_ROOT="$dest"

# This machine reaches the Python package index but not ansible-test's own download host.
offline_pip="$root/../shared/tools/ansible-test-offline-pip"
if [ -x "$offline_pip" ]; then
    "$offline_pip" "$python" >/dev/null
fi

args=(--python "$python_version" --color no)
# Sanity tests run in ansible-test's own virtual environments, which it fills itself; unit tests
# run in this venv, which requirements-dev.txt already fills (pytest-xdist, pytest-mock).
[ "$command" = sanity ] && args+=(--requirements)
cd "$dest"
exec "$ansible_test" "$command" "${args[@]}" "$@"

#!/usr/bin/env bash
# Runs `ansible-test sanity` on the collection as it is on disk, committed or not.
#
# ansible-test must run from a path ending in ansible_collections/<namespace>/<name>/, so this
# copies the files git knows about (tracked, plus untracked ones not ignored) to
# .build/ansible_collections/entraid/dirsync and runs there. Deleted files are left out.
#
# Usage: scripts/sanity.sh [ansible-test sanity arguments...]   e.g. --test pep8
# Environment: PYTHON (default: .venv/bin/python), SANITY_PYTHON_VERSION (default: 3.11).
# Exit status: 0 when every test passed, non-zero otherwise.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
python=${PYTHON:-$root/.venv/bin/python}
python_version=${SANITY_PYTHON_VERSION:-3.11}
ansible_test=$(dirname "$python")/ansible-test
[ -x "$ansible_test" ] || { echo "sanity.sh: $ansible_test not found; create the venv first (make venv)" >&2; exit 2; }

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

cd "$dest"
exec "$ansible_test" sanity --python "$python_version" --requirements --color no "$@"

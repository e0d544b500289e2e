#!/usr/bin/env bash
# Runs `ansible-test sanity` on the collection as it is on disk (see scripts/ansible-test.sh).
#
# validate-modules compares a PowerShell module's argument spec with its documentation by running
# the module's spec through pwsh. Where pwsh is not installed (Debian has no package for it), the
# other modules and the PowerShell module's documentation (entra_connect_cmdlet.yml) are still
# validated; the spec-versus-documentation comparison of the .ps1 is then done by
# tests/unit/test_packaging.py instead. No test is ignored through tests/sanity/ignore-*.txt.
#
# Usage: scripts/sanity.sh [ansible-test sanity arguments...]   e.g. --test pep8 (passed on as they are)
# Exit status: 0 when every test passed, non-zero otherwise.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ $# -gt 0 ] || command -v pwsh >/dev/null; then
    exec "$here/ansible-test.sh" sanity "$@"
fi
status=0
"$here/ansible-test.sh" sanity --skip-test validate-modules || status=1
echo "sanity.sh: pwsh not installed: validate-modules checks plugins/modules/entra_connect_cmdlet.yml, not the .ps1's argument spec"
"$here/ansible-test.sh" sanity --test validate-modules --exclude plugins/modules/entra_connect_cmdlet.ps1 || status=1
exit $status

#!/usr/bin/env bash
# make demo: the main job (the drift report) against the lab that `make lab-up` started.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f playbooks/drift_report.yml ]; then
  echo "The lab is up (see .lab/lab.json). The drift report playbook is not there yet."
  exit 0
fi
.venv/bin/ansible-playbook -i .lab/inventory.yml entraid.dirsync.drift_report "$@"

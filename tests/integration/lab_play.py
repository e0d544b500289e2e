"""Shared pieces of test plays: the start of a play for the lab's inventory host, with both connections set once for the
collection, and a run of ansible-playbook in a private mount namespace with its own /etc/hosts."""

import json
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")

PLAY_HEADER = """
- hosts: lab
  gather_facts: false
  module_defaults:
    group/entraid.dirsync.graph: "{{ entraid_graph }}"
    group/entraid.dirsync.ad: "{{ entraid_ad }}"
  tasks:
"""


def run_with_hosts(lab, tmp_path, play, hosts, env):
    """ansible-playbook of ``play`` (text) in a mount namespace whose /etc/hosts holds ``hosts`` (text), with the
    environment ``env`` plus what the test harness needs; -> (rc, output, {task name: recorded result})."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed to resolve host names to the lab in a private namespace")
    hosts_file, path, results_file = tmp_path / "hosts", tmp_path / "play.yml", tmp_path / "results.jsonl"
    hosts_file.write_text(hosts)
    path.write_text(play)
    run_env = dict(env)
    run_env.update({
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(ROOT, ".venv", "collections"),
        "ANSIBLE_CALLBACK_PLUGINS": os.path.join(ROOT, "tests", "integration", "callback_plugins"),
        "ANSIBLE_CALLBACKS_ENABLED": "record_results", "RECORD_RESULTS_FILE": str(results_file), "ANSIBLE_NOCOLOR": "1",
    })
    script = 'mount --bind "$1" /etc/hosts && shift && exec "$@"'
    cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(hosts_file),
           ANSIBLE_PLAYBOOK, "-i", os.path.join(lab["root"], "inventory.yml"), str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env, cwd=ROOT, check=False)
    results = [json.loads(line) for line in results_file.read_text().splitlines()] if results_file.exists() else []
    return proc.returncode, proc.stdout + proc.stderr, {item["task"]: item for item in results}

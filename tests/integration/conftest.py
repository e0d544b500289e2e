"""Run real ansible-playbook processes against the lab and hand their task results to tests."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


class PlaybookRun:
    """The outcome of one ansible-playbook run."""

    def __init__(self, returncode, stdout, results):
        self.rc = returncode
        self.stdout = stdout
        self.results = results

    def task(self, name):
        """The (last) result of the task with this name."""
        matches = [r for r in self.results if r["task"] == name]
        assert matches, "no task named %r ran; tasks: %s\n%s" % (name, [r["task"] for r in self.results], self.stdout[-3000:])
        return matches[-1]

    @property
    def changed(self):
        return [r["task"] for r in self.results if r["result"].get("changed")]


@pytest.fixture
def playbook(tmp_path, lab):
    """``playbook(text_or_path, check=False, diff=False, extra_vars=None, env=None, args=(), cwd=None)`` -> PlaybookRun.

    Uses the lab's inventory (.lab/inventory.yml); the collection is found through
    ANSIBLE_COLLECTIONS_PATH (set by the Makefile, and here for runs outside make). ansible-playbook runs in ``cwd``
    (default: the repository root), where relative paths in variables resolve.
    """
    counter = [0]

    def run(text_or_path, check=False, diff=False, extra_vars=None, env=None, args=(), cwd=None):
        counter[0] += 1
        if os.path.exists(str(text_or_path)) or "\n" not in str(text_or_path) and not str(text_or_path).lstrip().startswith("-"):
            path = str(text_or_path)
        else:
            path = str(tmp_path / ("play%d.yml" % counter[0]))
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text_or_path)
        results_file = str(tmp_path / ("results%d.jsonl" % counter[0]))
        cmd = [ANSIBLE_PLAYBOOK, "-i", os.path.join(lab["root"], "inventory.yml"), path]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        if extra_vars:
            cmd += ["-e", json.dumps(extra_vars)]
        cmd += list(args)
        run_env = dict(os.environ)
        run_env.update({
            "ANSIBLE_COLLECTIONS_PATH": os.path.join(ROOT, ".venv", "collections"),
            "ANSIBLE_CALLBACK_PLUGINS": os.path.join(ROOT, "tests", "integration", "callback_plugins"),
            "ANSIBLE_CALLBACKS_ENABLED": "record_results",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "RECORD_RESULTS_FILE": results_file,
        })
        run_env.update(env or {})
        proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env, cwd=cwd or ROOT, check=False)
        results = []
        if os.path.exists(results_file):
            with open(results_file, encoding="utf-8") as handle:
                results = [json.loads(line) for line in handle]
        return PlaybookRun(proc.returncode, proc.stdout + proc.stderr, results)
    return run

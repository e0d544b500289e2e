"""Every example in the docs that runs against the lab is run here.

An example opts in by starting its fenced ```yaml block with the line
``# Runs against the lab`` (a play for `.lab/inventory.yml`). It must finish without a failed task.
"""

import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MARKER = "# Runs against the lab"


def _examples():
    found = []
    paths = [os.path.join(ROOT, "README.md")]
    for base, _dirs, names in os.walk(os.path.join(ROOT, "docs")):
        paths += [os.path.join(base, n) for n in sorted(names) if n.endswith(".md")]
    for path in paths:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        for index, block in enumerate(re.findall(r"```ya?ml\n(.*?)```", text, flags=re.S)):
            if block.startswith(MARKER):
                found.append(pytest.param(block, id="%s#%d" % (os.path.relpath(path, ROOT), index)))
    return found


EXAMPLES = _examples()


def test_the_docs_have_lab_examples():
    assert EXAMPLES, "no documentation example is marked '%s'" % MARKER


@pytest.mark.parametrize("example", EXAMPLES)
def test_doc_example_runs_against_the_lab(example, playbook):
    run = playbook(example)
    failed = [r["task"] for r in run.results if r["status"] == "failed"]
    assert run.rc == 0 and not failed, "example failed (%s):\n%s" % (failed, run.stdout[-4000:])

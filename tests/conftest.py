"""Make the collection importable as ``ansible_collections.entraid.dirsync`` and the lab as ``dirsync_lab``."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The Makefile links the repository to .venv/collections/ansible_collections/entraid/dirsync.
COLLECTIONS = os.path.join(ROOT, ".venv", "collections")
for path in (COLLECTIONS, os.path.join(ROOT, "lab")):
    if path not in sys.path:
        sys.path.insert(0, path)


import json  # noqa: E402  (kept beside the fixtures that use it)

import pytest  # noqa: E402

LAB_JSON = os.path.join(ROOT, ".lab", "lab.json")


@pytest.fixture(scope="session")
def lab():
    """The running lab's description (.lab/lab.json). Tests that use it need `make lab-up`."""
    if not os.path.exists(LAB_JSON):
        pytest.fail("The lab is not running: start it with `make lab-up` (make test does this for you).")
    with open(LAB_JSON, encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="session")
def control(lab):
    """Client of the lab's control interface."""
    from dirsync_lab.control_client import ControlClient  # pylint: disable=import-outside-toplevel
    return ControlClient(lab["control_url"])


@pytest.fixture
def faults(control):
    """Set faults for one test; they are always cleared afterwards."""
    def set_faults(*rules):
        return control.post("/faults", {"rules": list(rules)})
    yield set_faults
    control.delete("/faults")


def reseed(lab):
    """Reset the lab to its seeded state -> its ``Lab`` directory object.

    A reset is a lab-down and lab-up with the same seed: the directory is restored from its cached
    snapshot and the tenant is seeded again (a few seconds).
    """
    from dirsync_lab.orchestrator import Lab  # pylint: disable=import-outside-toplevel
    lab_dir = Lab(lab["root"])
    lab_dir.down(log=lambda message: None)
    lab_dir.up(count=lab["seed"]["count"], seed=lab["seed"]["seed"], log=lambda message: None)
    return lab_dir


@pytest.fixture(scope="module")
def lab_reset(lab):
    """For tests that change the lab wholesale: afterwards, the lab is reset to its seeded state."""
    yield lab
    reseed(lab)


@pytest.fixture
def seeded_lab(lab):
    """For a test that needs the lab exactly as seeded (earlier tests may have run sync cycles or written AD): the lab
    is reset first -> its ``Lab`` directory object (``stop_dc``/``start_dc``, ``describe``)."""
    return reseed(lab)

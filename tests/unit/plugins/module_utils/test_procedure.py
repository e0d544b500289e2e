"""The tenant's procedure lock and state: one run at a time, one undo backup per procedure."""

import json
import os
import subprocess
import sys

import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils import _procedure


def dead_pid():
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_live_run_is_refused_naming_the_holder(tmp_path):
    taken = _procedure.acquire(str(tmp_path), "tenant-a", os.getpid(), host="ctl1")
    assert taken["stale"] is None and oct(os.stat(taken["lock"]).st_mode & 0o777) == "0o600"
    with pytest.raises(_procedure.ProcedureLocked) as info:
        _procedure.acquire(str(tmp_path), "tenant-a", os.getppid(), host="ctl1")
    assert "host ctl1, process %d" % os.getpid() in str(info.value) and taken["lock"] in str(info.value)
    # Another tenant is independent.
    _procedure.acquire(str(tmp_path), "tenant-b", os.getppid(), host="ctl1")


def test_taking_a_lock_again_in_the_same_run_is_fine(tmp_path):
    first = _procedure.acquire(str(tmp_path), "t", 4242, host="ctl1", alive=lambda pid: True)
    again = _procedure.acquire(str(tmp_path), "t", 4242, host="ctl1", alive=lambda pid: True)
    assert again["holder"] == first["holder"]


def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over(tmp_path):
    gone = dead_pid()
    _procedure.acquire(str(tmp_path), "t", gone, host="ctl1")
    taken = _procedure.acquire(str(tmp_path), "t", os.getpid(), host="ctl1")
    assert taken["stale"]["pid"] == gone
    with open(taken["lock"], encoding="utf-8") as handle:
        assert json.load(handle)["pid"] == os.getpid()


def test_a_lock_held_on_another_host_is_never_assumed_stale(tmp_path):
    _procedure.acquire(str(tmp_path), "t", dead_pid(), host="other-controller")
    with pytest.raises(_procedure.ProcedureLocked, match="other-controller"):
        _procedure.acquire(str(tmp_path), "t", os.getpid(), host="ctl1")


def test_release_removes_only_our_own_lock(tmp_path):
    taken = _procedure.acquire(str(tmp_path), "t", 1111, host="ctl1", alive=lambda pid: True)
    assert _procedure.release(str(tmp_path), "t", 2222, host="ctl1") is False
    assert os.path.exists(taken["lock"])
    assert _procedure.release(str(tmp_path), "t", 1111, host="ctl1") is True
    assert not os.path.exists(taken["lock"])


def test_the_first_backup_of_a_procedure_is_kept_until_it_finishes(tmp_path):
    directory = str(tmp_path)
    record, resumed = _procedure.begin(directory, "t", "/b/first.json")
    assert (record["first_backup"], resumed) == ("/b/first.json", False)
    # An interrupted run's re-run takes a new backup, but the undo backup stays the first one.
    record, resumed = _procedure.begin(directory, "t", "/b/second.json")
    assert (record["first_backup"], resumed) == ("/b/first.json", True)
    assert _procedure.finish(directory, "t")["status"] == "finished"
    record, resumed = _procedure.begin(directory, "t", "/b/third.json")
    assert (record["first_backup"], resumed) == ("/b/third.json", False)
    assert _procedure.finish(directory, "t", "rolled_back")["status"] == "rolled_back"
    assert _procedure.current(directory, "t") is None and _procedure.finish(directory, "t") is None

"""Decision logic of the Entra Connect full sync against a fake ADSync server (no Windows, no HTTP, no real time)."""

import itertools

import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils._entra_connect import (
    RUN_RESULTS,
    SCHEDULER,
    START,
    CmdletFailed,
    classify_result,
    full_sync,
)
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, InvalidInput


class FakeServer:
    """An Entra Connect server on a fake clock: ``run`` is the runner, ``sleep`` advances time."""

    def __init__(self, cycle_seconds=30, export_result="success", **scheduler):
        self.now = 0.0
        self.cycle_seconds = cycle_seconds
        self.export_result = export_result
        self.busy_until = 0.0
        self.scheduler = {"StagingModeEnabled": False, "SchedulerSuspended": False, "SyncCycleEnabled": True}
        self.scheduler.update(scheduler)
        self.cycles = []
        self.calls = []
        self.start_errors = []
        self._ids = itertools.count(1)
        # History from before the task: must never be reported as ours.
        self._add_cycle(-1000, "completed-export-errors", seconds=10)

    def clock(self):
        return self.now

    def sleep(self, seconds):
        assert 0 < seconds <= 60
        self.now += seconds

    def _add_cycle(self, started, export_result, seconds=None):
        self.cycles.append({"started": started, "ends": started + (self.cycle_seconds if seconds is None else seconds), "export": export_result,
                            "ids": ["run-%d" % next(self._ids) for _step in range(3)]})

    def in_progress(self):
        return self.now < self.busy_until or any(self.now < cycle["ends"] for cycle in self.cycles)

    def run(self, cmdlet, args):
        self.calls.append(cmdlet)
        if cmdlet == SCHEDULER:
            return dict(self.scheduler, SyncCycleInProgress=self.in_progress())
        if cmdlet == START:
            if self.start_errors:
                raise self.start_errors.pop(0)
            if self.in_progress():
                raise CmdletFailed(START, "System.InvalidOperationException: Connector: contoso.com is busy.", "System.InvalidOperationException")
            self._add_cycle(self.now, self.export_result)
            return {"Result": "Success"}
        assert cmdlet == RUN_RESULTS and args["NumberRequested"] > 0
        runs = []
        for cycle in self.cycles:
            done = self.now >= cycle["ends"]
            profiles = (("contoso.com", "Full Import", "success"), ("contoso.com", "Full Synchronization", "success"),
                        ("contoso - AAD", "Export", cycle["export"]))
            for run_id, (connector, profile, result) in zip(cycle["ids"], profiles):
                runs.append({"RunHistoryId": run_id, "ConnectorName": connector, "RunProfileName": profile,
                             "Result": result if done else "in-progress", "StartDate": "%012.1f" % (cycle["started"] + 1000)})
        return list(reversed(runs))


def sync(server, **kwargs):
    kwargs.setdefault("poll_interval", 10)
    return full_sync(server.run, clock=server.clock, sleep=server.sleep, **kwargs)


def test_idle_server_runs_an_initial_cycle_and_reports_only_its_runs():
    server = FakeServer()

    result = sync(server)

    assert result["changed"] is True and result["started"] is True and result["waited_for_busy"] == 0
    assert server.calls.count(START) == 1
    assert [run["RunProfileName"] for run in result["runs"]] == ["Full Import", "Full Synchronization", "Export"]
    assert all(run["outcome"] == "success" for run in result["runs"])
    # The old cycle's export errors belong to an earlier cycle.
    assert result["run_errors"] == [] and result["run_warnings"] == []
    assert "3 runs, 0 with errors" in result["msg"]


def test_busy_server_is_waited_for_then_started():
    server = FakeServer()
    server.busy_until = 45

    result = sync(server)

    assert result["started"] is True
    assert result["waited_for_busy"] >= 45
    # No start was tried while the scheduler said a cycle runs.
    assert server.calls.index(START) > server.calls.index(SCHEDULER, 1)
    assert server.cycles[-1]["started"] >= 45


def test_a_cycle_started_between_check_and_start_is_waited_for():
    server = FakeServer()
    server.start_errors.append(CmdletFailed(START, "Sync is already running. Connector: contoso.com is busy."))

    result = sync(server)

    assert result["started"] is True and server.calls.count(START) == 2


def test_other_start_failures_are_not_retried():
    server = FakeServer()
    server.start_errors.append(CmdletFailed(START, "Access is denied.", "System.UnauthorizedAccessException"))

    with pytest.raises(CmdletFailed, match="Access is denied"):
        sync(server)
    assert server.calls.count(START) == 1


@pytest.mark.parametrize("setting, message", [
    ({"StagingModeEnabled": True}, "staging mode"),
    ({"SyncCycleEnabled": False}, "SyncCycleEnabled"),
    ({"SchedulerSuspended": True}, "suspended"),
])
def test_unusable_server_is_refused_before_anything_runs(setting, message):
    server = FakeServer(**setting)

    with pytest.raises(DirsyncError, match=message) as caught:
        sync(server)

    assert "Nothing was started" in str(caught.value)
    assert server.calls == [SCHEDULER]


def test_staging_is_refused_in_check_mode_too():
    server = FakeServer(StagingModeEnabled=True)
    with pytest.raises(DirsyncError, match="staging mode"):
        sync(server, check_mode=True)


def test_check_mode_starts_nothing():
    server = FakeServer()
    server.busy_until = 100

    result = sync(server, check_mode=True)

    assert result["changed"] is True and result["started"] is False
    assert "Would start a sync cycle (policy type Initial)" in result["msg"] and "after the running cycle ends" in result["msg"]
    assert START not in server.calls


def test_busy_timeout_gives_up_without_starting():
    server = FakeServer()
    server.busy_until = 10_000

    with pytest.raises(DirsyncError, match="still running .* after 60 s .*busy_timeout") as caught:
        sync(server, busy_timeout=60)

    assert START not in server.calls
    assert caught.value.details["changed"] is False


def test_cycle_timeout_says_the_cycle_keeps_running():
    server = FakeServer(cycle_seconds=10_000)

    with pytest.raises(DirsyncError, match="had not finished after 120 s.*wait_timeout") as caught:
        sync(server, wait_timeout=120)

    assert caught.value.details["started"] is True and caught.value.details["changed"] is True
    assert server.now < 200


def test_polls_until_the_cycle_is_idle():
    server = FakeServer(cycle_seconds=95)

    result = sync(server, poll_interval=10)

    assert server.now >= 95 and result["duration"] >= 95
    # The run history is read only once the scheduler is idle (plus once before the start).
    assert server.calls.count(RUN_RESULTS) == 2


def test_export_errors_fail_the_task_with_the_runs():
    server = FakeServer(export_result="completed-export-errors")

    with pytest.raises(DirsyncError, match="Export on contoso - AAD: completed-export-errors") as caught:
        sync(server)

    details = caught.value.details
    assert details["run_errors"] == ["Export on contoso - AAD: completed-export-errors"]
    assert [run["outcome"] for run in details["runs"]] == ["success", "success", "error"]


def test_errors_are_only_reported_when_asked():
    server = FakeServer(export_result="stopped-connectivity")

    result = sync(server, fail_on_errors=False)

    assert result["run_errors"] == ["Export on contoso - AAD: stopped-connectivity"]
    assert "1 with errors" in result["msg"]


def test_warnings_do_not_fail():
    server = FakeServer(export_result="completed-warnings")

    result = sync(server)

    assert result["run_warnings"] == ["Export on contoso - AAD: completed-warnings"] and result["run_errors"] == []


def test_single_run_object_from_convertto_json_is_accepted():
    server = FakeServer()
    original = server.run

    def run(cmdlet, args):
        output = original(cmdlet, args)
        # ConvertTo-Json writes a one-element array as the element itself.
        return output[0] if cmdlet == RUN_RESULTS and server.cycles[-1]["started"] >= 0 else output

    result = full_sync(run, clock=server.clock, sleep=server.sleep, poll_interval=10)

    assert [item["RunProfileName"] for item in result["runs"]] == ["Export"]


@pytest.mark.parametrize("value, outcome", [
    ("success", "success"), ("completed-no-objects", "success"), ("completed-warnings", "warning"),
    ("completed-transient-objects", "warning"), ("completed-export-errors", "error"), ("completed-sync-errors", "error"),
    ("completed-discovery-errors", "error"), ("completed-errors", "error"), ("stopped-server", "stopped"),
    ("stopped-deletion-threshold-exceeded", "stopped"), ("no-start-connection", "stopped"), ("in-progress", "running"),
    ("Success", "success"), ("something-new", "error"), (None, "error"),
])
def test_classify_result(value, outcome):
    assert classify_result(value) == outcome


def test_busy_detection():
    assert CmdletFailed(START, "Connector: x is busy.").busy
    assert not CmdletFailed(START, "Access is denied.").busy


def test_unknown_policy_type():
    with pytest.raises(InvalidInput, match="Initial, Delta"):
        full_sync(FakeServer().run, policy_type="Full")

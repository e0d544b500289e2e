"""cloud_sync_job's rules on what Microsoft documents: which execution is the restarted cycle, EntryLevelErrors, no 409."""

import datetime
import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, GraphError
from ansible_collections.entraid.dirsync.plugins.modules import cloud_sync_job

SP = "22222222-2222-2222-2222-222222222222"
JOB = "AD2AADProvisioning.0123456789abcdef0123456789abcdef"
UNSET = "0001-01-01T00:00:00Z"
RESTART = datetime.datetime(2026, 11, 20, 10, 0, 0, tzinfo=datetime.timezone.utc)
PARAMS = {"service_principal_id": SP, "job_id": None, "reset_scope": ["Full"], "wait": True, "wait_timeout": 100, "poll_interval": 1,
          "fail_on_errors": True, "read_object_errors": True}


def execution(began, ended, state="Succeeded", activity=None, **extra):
    value = {"activityIdentifier": activity or began, "timeBegan": began, "timeEnded": ended, "state": state, "error": None}
    value.update(extra)
    return value


class FakeGraph:
    """Answers the job's status from a script: one lastExecution per poll."""

    def __init__(self, before, polls, logs=None, logs_error=None):
        self.before, self.polls, self.logs, self.logs_error = before, list(polls), logs or [], logs_error
        self.posts = []

    def iter_items(self, path, params=None):
        if path == "auditLogs/provisioning":
            if self.logs_error:
                raise self.logs_error
            return iter(self.logs)
        return iter([{"id": JOB, "templateId": "AD2AADProvisioning", "status": {"code": "Active", "lastExecution": self.before}}])

    def post(self, path, json=None):
        self.posts.append((path, json))

    def get(self, path):
        return {"status": {"code": "Active", "lastExecution": self.polls.pop(0) if len(self.polls) > 1 else self.polls[0]}}


def run(graph, warnings=None, **params):
    ticks = iter(range(10000))
    return cloud_sync_job.restart_full(graph, dict(PARAMS, **params), False, warn=(warnings if warnings is not None else []).append,
                                       server_date=lambda: RESTART, clock=lambda: next(ticks), sleep=lambda seconds: None)


def test_waits_past_the_previous_and_a_running_execution_for_the_cycle_the_restart_started():
    previous = execution("2026-11-20T09:50:00Z", "2026-11-20T09:52:00Z")
    # A scheduled cycle that began before the restart and ended after it is not ours; nor is an unset timeEnded.
    scheduled = execution("2026-11-20T09:59:30Z", "2026-11-20T10:00:20Z")
    ours_running = execution("2026-11-20T10:00:21Z", UNSET, state=None)
    ours = execution("2026-11-20T10:00:21.1234567Z", "2026-11-20T10:03:00Z", activity="2026-11-20T10:00:21Z")
    graph = FakeGraph(previous, [previous, scheduled, ours_running, ours])
    result = run(graph)
    assert graph.posts == [("servicePrincipals/%s/synchronization/jobs/%s/restart" % (SP, JOB), {"criteria": {"resetScope": "Full"}})]
    assert result["execution"] == ours and result["restarted_at"] == "2026-11-20T10:00:00Z" and result["object_errors"] == []


def test_empty_reset_scope_is_sent_empty():
    graph = FakeGraph(None, [execution("2026-11-20T10:00:01Z", "2026-11-20T10:00:05Z")])
    run(graph, reset_scope=[])
    assert graph.posts[0][1] == {"criteria": {"resetScope": ""}}


def test_a_restart_error_is_not_retried():
    class Busy(FakeGraph):
        def post(self, path, json=None):
            raise GraphError("Graph POST returned 409 Conflict", status=409)
    with pytest.raises(GraphError):
        run(Busy(None, [None]))


def test_failed_cycle_fails_with_its_error():
    graph = FakeGraph(None, [execution("2026-11-20T10:00:01Z", "2026-11-20T10:00:05Z", state="Failed", error={"message": "agent offline"})])
    with pytest.raises(DirsyncError) as info:
        run(graph, fail_on_errors=False)
    assert "failed: agent offline" in str(info.value)


LOG = {"activityDateTime": "2026-11-20T10:00:03Z", "provisioningStatusInfo": {"status": "failure", "errorInformation": {
    "errorCode": "AttributeValueMustBeUnique", "reason": "UPN taken"}},
    "sourceIdentity": {"id": "abc", "displayName": "jdoe@contoso.com", "details": {"distinguishedName": "CN=jdoe,DC=contoso"}}}


def test_entry_level_errors_fail_by_default_and_name_the_objects():
    graph = FakeGraph(None, [execution("2026-11-20T10:00:01Z", "2026-11-20T10:00:05Z", state="EntryLevelErrors", countEscrowed=1)],
                      logs=[LOG, dict(LOG, activityDateTime="2026-11-20T11:00:00Z"), dict(LOG, provisioningStatusInfo={"status": "success"})])
    with pytest.raises(DirsyncError) as info:
        run(graph)
    assert "jdoe@contoso.com: AttributeValueMustBeUnique UPN taken" in str(info.value) and "fail_on_errors=false" in str(info.value)
    assert info.value.details["object_errors"] == [{"object": "jdoe@contoso.com", "distinguished_name": "CN=jdoe,DC=contoso", "source_id": "abc",
                                                    "error_code": "AttributeValueMustBeUnique", "reason": "UPN taken",
                                                    "recommended_action": None, "time": "2026-11-20T10:00:03Z"}]


def test_entry_level_errors_only_warn_when_the_user_chooses_so_and_logs_may_be_unreadable():
    graph = FakeGraph(None, [execution("2026-11-20T10:00:01Z", "2026-11-20T10:00:05Z", state="EntryLevelErrors", countEscrowed=2)],
                      logs_error=GraphError("403", status=403))
    warnings = []
    result = run(graph, warnings, fail_on_errors=False)
    assert result["object_errors"] is None and "EntryLevelErrors: 2 object(s)" in warnings[-1] and "AuditLog.Read.All" in warnings[0]


def test_empty_service_principal_id_fails_before_any_request(monkeypatch, capsys):
    monkeypatch.setattr(cloud_sync_job, "build_session", lambda params: pytest.fail("a session was built"))
    with patch_module_args({"tenant_id": "t", "client_id": "c", "client_secret": "not-in-any-message-1234", "service_principal_id": "  "}):
        with pytest.raises(SystemExit):
            cloud_sync_job.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True and result["msg"].startswith("service_principal_id is empty")

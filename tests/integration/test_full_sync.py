"""The full_sync role against the lab: Cloud Sync restart and Entra Connect through the ADSync stand-in.

A full cycle syncs the whole scope (and deletes synced users whose AD object is gone), which would
undo the shared tenant's seeded scenarios other tests rely on. So these tests run a second emulator
in-process, built from the lab's own configuration (.lab/emulator.json: same tenants, apps, PKI and
the lab's Samba DC as source) with the ADSync stand-in registered, and change only its tenant.
"""

import json
import os
import socket
import ssl
import time
import uuid

import ldap3
import pytest

from dirsync_lab.control_client import ControlClient
from dirsync_lab.emulator.adsync_standin import register
from dirsync_lab.emulator.server import build_server

USER_CLASSES = ["top", "person", "organizationalPerson", "user"]

PLAY = """
- hosts: lab
  gather_facts: false
  roles:
    - role: entraid.dirsync.full_sync
"""


@pytest.fixture(scope="module")
def emulator(lab):
    with open(os.path.join(lab["root"], "emulator.json"), encoding="utf-8") as handle:
        config = json.load(handle)
    # Graph's audience names the port, so it must be known before the emulator starts.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config["listen"] = dict(config["listen"], port=port)
    config["control"] = dict(config["control"], port=0)
    config["graph_audiences"] = config["graph_audiences"] + ["https://%s:%d" % (config["public_host"], port)]
    server = build_server(config)
    register(server.control.router, server)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def standin(emulator):
    """Control client of the in-process emulator; the stand-in's knobs are reset after the test."""
    client = ControlClient(emulator.control_url)
    yield client
    client.post("/adsync/config", {"staging_mode": False, "scheduler_suspended": False, "sync_cycle_enabled": True, "result": "success"})
    wait_idle(client)


def wait_idle(client, limit=60):
    deadline = time.monotonic() + limit
    while client.get("/adsync/scheduler")["output"]["SyncCycleInProgress"]:
        assert time.monotonic() < deadline, "the stand-in stayed busy"
        time.sleep(0.2)


@pytest.fixture
def ad_user(lab):
    """A throw-away AD user in the sync scope (its own OU under the scope), deleted after the test."""
    ldap = lab["ldap"]
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ldap["ca_file"])
    server = ldap3.Server(ldap["server"], port=ldap["ldaps_port"], use_ssl=True, tls=tls, get_info=ldap3.NONE)
    conn = ldap3.Connection(server, ldap["username"], ldap["password"], auto_bind=True, raise_exceptions=False)
    ou = "OU=FullSyncTest,%s" % ldap["sync_scope"][0]
    sam = "fullsync%s" % uuid.uuid4().hex[:8]
    user = {"dn": "CN=%s,%s" % (sam, ou), "upn": "%s@lab.test" % sam}

    def set_mobile(value):
        assert conn.modify(user["dn"], {"mobile": [(ldap3.MODIFY_REPLACE, [value])]}), conn.result

    def cleanup():
        conn.search(ou, "(objectClass=*)", ldap3.SUBTREE, attributes=["1.1"])
        for dn in sorted((item["dn"] for item in conn.response or [] if item.get("type") == "searchResEntry"), key=lambda dn: -dn.count(",")):
            conn.delete(dn)

    cleanup()
    assert conn.add(ou, "organizationalUnit"), conn.result
    assert conn.add(user["dn"], USER_CLASSES, {"sAMAccountName": sam, "userPrincipalName": user["upn"], "mobile": "+1 425 555 0101"}), conn.result
    user["set_mobile"] = set_mobile
    yield user
    cleanup()
    conn.unbind()


def cloud_mobile(emulator, upn):
    tenant = emulator.state.default
    with tenant.lock:
        user = tenant.find_user(upn)
        return None if user is None else (user.props["onPremisesSyncEnabled"], user.props["mobilePhone"])


def action_result(run, action):
    found = [item for item in run.results if item["action"].endswith(action)]
    assert found, "%s did not run:\n%s" % (action, run.stdout[-3000:])
    return found[-1]


def cloud_sync_vars(lab, emulator):
    base = emulator.base_url()
    return {"full_sync_engine": "cloud_sync", "full_sync_poll_interval": 1, "full_sync_wait_timeout": 120,
            "full_sync_cloud_sync_service_principal_id": lab["cloud_sync"]["service_principal_id"],
            "full_sync_graph": "{{ entraid_graph | combine({'authority_host': '%s', 'graph_endpoint': '%s'}) }}" % (base, base)}


def entra_connect_vars(emulator, **extra):
    values = {"full_sync_engine": "entra_connect", "full_sync_entra_connect_standin_url": emulator.control_url,
              "full_sync_poll_interval": 1, "full_sync_busy_timeout": 60, "full_sync_wait_timeout": 120}
    values.update(extra)
    return values


@pytest.fixture(params=["previous", "placeholder"])
def running_execution(request, standin):
    """Microsoft documents nothing on what lastExecution shows while a cycle runs: the job is tested under both choices."""
    assert standin.post("/options", {"options": {"running_execution": request.param}})["options"]["running_execution"] == request.param
    yield request.param
    standin.post("/options", {"options": {"running_execution": "previous"}})


@pytest.mark.usefixtures("running_execution")
def test_cloud_sync_restart_makes_the_tenant_reflect_ad(lab, emulator, standin, ad_user, playbook):
    check = playbook(PLAY, check=True, extra_vars=cloud_sync_vars(lab, emulator))
    assert check.rc == 0, check.stdout[-3000:]
    job = action_result(check, "cloud_sync_job")["result"]
    assert job["changed"] is True and job["restarted"] is False and job["job_id"] == lab["cloud_sync"]["job_id"]
    assert cloud_mobile(emulator, ad_user["upn"]) is None

    first = playbook(PLAY, extra_vars=cloud_sync_vars(lab, emulator))
    assert first.rc == 0, first.stdout[-3000:]
    assert cloud_mobile(emulator, ad_user["upn"]) == (True, "+1 425 555 0101")

    ad_user["set_mobile"]("+1 425 555 0199")
    second = playbook(PLAY, extra_vars=cloud_sync_vars(lab, emulator))
    assert second.rc == 0, second.stdout[-3000:]
    job = action_result(second, "cloud_sync_job")["result"]
    assert job["restarted"] is True and job["execution"]["state"] == "Succeeded" and job["object_errors"] == []
    # The execution reported is the cycle the restart started: it began at or after the restart, and it ended.
    assert job["execution"]["timeBegan"] >= job["restarted_at"][:19] and not job["execution"]["timeEnded"].startswith("0001-")
    assert "inProgress" not in job["status"]
    assert cloud_mobile(emulator, ad_user["upn"]) == (True, "+1 425 555 0199")
    fact = action_result(second, "set_fact")["result"]["ansible_facts"]["full_sync_result"]
    assert fact["engine"] == "cloud_sync" and fact["ran"] is True


@pytest.fixture(params=["activity", "unrelated"])
def provisioning_cycle_id(request, standin):
    """Microsoft does not say how a provisioning-log event's cycleId relates to an execution: tested under both."""
    standin.post("/options", {"options": {"provisioning_cycle_id": request.param}})
    yield request.param
    standin.post("/options", {"options": {"provisioning_cycle_id": "activity"}})


@pytest.mark.usefixtures("provisioning_cycle_id")
def test_cloud_sync_object_errors_are_reported_and_fail_only_when_asked(lab, emulator, standin, ad_user, playbook):
    # A cloud-only user holds the AD user's UPN: the full cycle cannot create the synced user.
    standin.post("/seed/users", {"users": [{"userPrincipalName": ad_user["upn"], "displayName": "cloud holder"}]})
    try:
        failed = playbook(PLAY, extra_vars=cloud_sync_vars(lab, emulator))
        assert failed.rc != 0
        result = action_result(failed, "cloud_sync_job")["result"]
        assert "ended with EntryLevelErrors" in result["msg"] and ad_user["upn"] in result["msg"] and "fail_on_errors=false" in result["msg"]
        assert [(item["object"], item["error_code"]) for item in result["object_errors"]] == [(ad_user["upn"], "AttributeValueMustBeUnique")]
        assert result["execution"]["state"] == "EntryLevelErrors" and result["execution"]["countEscrowed"] == 1

        reported = playbook(PLAY, extra_vars=dict(cloud_sync_vars(lab, emulator), full_sync_fail_on_errors=False))
        assert reported.rc == 0, reported.stdout[-3000:]
        result = action_result(reported, "cloud_sync_job")["result"]
        assert result["object_errors"][0]["distinguished_name"] == ad_user["dn"]
        assert any("EntryLevelErrors" in warning for warning in result.get("warnings", []))
    finally:
        standin.post("/seed/delete", {"ids": [ad_user["upn"]]})


def test_cloud_sync_job_refuses_an_empty_service_principal_id(playbook):
    run = playbook("""
- hosts: lab
  gather_facts: false
  tasks:
    - name: Restart with an empty service principal
      module_defaults:
        entraid.dirsync.cloud_sync_job: "{{ entraid_graph }}"
      entraid.dirsync.cloud_sync_job:
        service_principal_id: ""
""")
    assert run.rc != 0
    assert action_result(run, "cloud_sync_job")["result"]["msg"].startswith("service_principal_id is empty")


def test_entra_connect_waits_for_a_busy_server_then_runs_a_full_cycle(emulator, standin, ad_user, playbook):
    wait_idle(standin)
    ad_user["set_mobile"]("+1 425 555 0123")
    # The server's scheduler is running a delta cycle when the task starts.
    assert standin.post("/adsync/config", {"busy_for_seconds": 3})["busy"] is True

    run = playbook(PLAY, extra_vars=entra_connect_vars(emulator))

    assert run.rc == 0, run.stdout[-3000:]
    result = action_result(run, "entra_connect_sync")["result"]
    assert result["started"] is True and result["waited_for_busy"] > 0
    # Only the runs of our Initial cycle are reported, not the scheduler's delta cycle it waited for.
    assert {item["RunProfileName"] for item in result["runs"]} == {"Full Import", "Full Synchronization", "Export"}
    assert result["run_errors"] == [] and all(item["outcome"] == "success" for item in result["runs"])
    assert cloud_mobile(emulator, ad_user["upn"]) == (True, "+1 425 555 0123")


def test_entra_connect_reports_export_errors(emulator, standin, playbook):
    wait_idle(standin)
    standin.post("/adsync/config", {"result": "completed-export-errors"})

    run = playbook(PLAY, extra_vars=entra_connect_vars(emulator))

    assert run.rc != 0
    result = action_result(run, "entra_connect_sync")
    assert result["status"] == "failed"
    assert "completed-export-errors" in result["result"]["msg"] and "fail_on_errors=false" in result["result"]["msg"]
    assert len(result["result"]["run_errors"]) == 1


def test_entra_connect_refuses_a_staging_server(emulator, standin, playbook):
    wait_idle(standin)
    standin.post("/adsync/config", {"staging_mode": True})
    runs_before = standin.get("/adsync/runs?n=1000")["output"]

    run = playbook(PLAY, extra_vars=entra_connect_vars(emulator))

    assert run.rc != 0
    result = action_result(run, "entra_connect_sync")
    assert result["status"] == "failed" and "staging mode" in result["result"]["msg"]
    assert "Nothing was started" in result["result"]["msg"]
    assert standin.get("/adsync/runs?n=1000")["output"] == runs_before


def test_entra_connect_times_out_on_a_long_cycle(emulator, standin, playbook):
    wait_idle(standin)
    usual = emulator.sync.cycle_seconds
    emulator.sync.cycle_seconds = 6
    try:
        run = playbook(PLAY, extra_vars=entra_connect_vars(emulator, full_sync_wait_timeout=1))
    finally:
        emulator.sync.cycle_seconds = usual
    assert run.rc != 0
    result = action_result(run, "entra_connect_sync")["result"]
    assert "had not finished after 1 s" in result["msg"] and "keeps running" in result["msg"]
    assert result["started"] is True


def test_engine_none_only_warns(playbook):
    run = playbook(PLAY, extra_vars={"full_sync_engine": "none"})

    assert run.rc == 0, run.stdout[-3000:]
    assert "no full sync cycle was run" in action_result(run, "debug")["result"]["msg"]
    fact = action_result(run, "set_fact")["result"]["ansible_facts"]["full_sync_result"]
    assert fact == {"engine": "none", "ran": False, "details": {}}


def test_entra_connect_check_mode_starts_nothing(emulator, standin, playbook):
    wait_idle(standin)
    runs_before = standin.get("/adsync/runs?n=1000")["output"]

    run = playbook(PLAY, check=True, extra_vars=entra_connect_vars(emulator))

    assert run.rc == 0, run.stdout[-3000:]
    result = action_result(run, "entra_connect_sync")["result"]
    assert result["changed"] is True and result["started"] is False and "Would start a sync cycle (policy type Initial)" in result["msg"]
    assert standin.get("/adsync/runs?n=1000")["output"] == runs_before

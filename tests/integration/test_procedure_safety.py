"""The procedure when things go wrong: a missing permission, a concurrent run, a run killed mid-reconcile, a lost DC.

Each case checks what a user would see (the refusal, the undo line) and what the directories hold afterwards. Tests
that change the lab start from a freshly seeded lab (``seeded_lab``), and the lab is reset at the end (``lab_reset``).
"""

import json
import os
import re
import signal
import ssl
import subprocess
import time

import ldap3
import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils import _phone
import lab_ad
from lab_play import ANSIBLE_PLAYBOOK, ROOT
from test_procedure import bypass_vars, ldap_phones, snapshot, assert_unchanged, result_of, results_of

USERS_LIST = r"^/v1\.0/users$"


@pytest.fixture(scope="module", autouse=True)
def reset_afterwards(lab_reset):
    yield lab_reset


def bypass_args(workdir, **extra):
    return bypass_vars(workdir, bypass_overrides_confirm=True, **extra)


def start_bypass(lab, extra_vars, log):
    """ansible-playbook in its own session, so that it and every process it started can be killed together."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".venv", "collections"), ANSIBLE_NOCOLOR="1")
    with open(log, "w", encoding="utf-8") as handle:
        return subprocess.Popen([ANSIBLE_PLAYBOOK, "-i", os.path.join(lab["root"], "inventory.yml"), "entraid.dirsync.bypass_overrides",
                                 "-e", json.dumps(extra_vars)], stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                start_new_session=True)


def highest_usn(lab):
    config = lab["ldap"]
    tls = ldap3.Tls(ca_certs_file=config["ca_file"], validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(config["server"], port=config["ldaps_port"], use_ssl=True, tls=tls, get_info=ldap3.NONE, connect_timeout=2)
    connection = ldap3.Connection(server, config["username"], config["password"], auto_bind=True, read_only=True)
    try:
        connection.search("", "(objectClass=*)", ldap3.BASE, attributes=["highestCommittedUSN"])
        return int(connection.response[0]["raw_attributes"]["highestCommittedUSN"][0])
    finally:
        connection.unbind()


def wait_for_first_ad_write(lab, proc, timeout=300):
    """Return as soon as AD's highest USN moves (the reconcile's first write): only the reconcile writes AD."""
    start = highest_usn(lab)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before writing to AD"
        if highest_usn(lab) != start:
            return
        time.sleep(0.01)
    raise AssertionError("the run wrote nothing to AD within %d s" % timeout)


def undo_backup(text):
    """The backup the last undo line of ``text`` names."""
    found = re.findall(r"rollback_backup_path=(\S+?\.json)", text)
    assert found, text[-3000:]
    return found[-1]


def test_a_missing_permission_stops_the_run_before_anything_is_written(playbook, lab, control, workdir_factory):
    workdir = workdir_factory("permission")
    before = snapshot(lab, control)
    readonly = dict(lab_graph(lab), client_id=lab["apps"]["readonly"]["client_id"], client_secret=lab["apps"]["readonly"]["client_secret"])
    run = playbook("entraid.dirsync.bypass_overrides", extra_vars=bypass_args(workdir, full_sync_graph=readonly))
    assert run.rc != 0
    refused = [result for result in results_of(run, "preflight") if result["status"] == "failed"]
    assert refused and "Synchronization.ReadWrite.All" in refused[0]["result"]["msg"]
    assert "Nothing was written to AD or Entra ID" in run.task("Say what the stopped run leaves behind and how to undo it")["result"]["msg"]
    assert not results_of(run, "phone_backup") and not results_of(run, "phone_reconcile")
    assert_unchanged(before, snapshot(lab, control))


def test_an_ad_account_that_may_not_write_mobile_stops_the_run_before_anything_is_written(playbook, lab, control, workdir_factory):
    workdir = workdir_factory("ad-rights")
    config = lab["ldap"]
    tls = ldap3.Tls(ca_certs_file=config["ca_file"], validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(config["server"], port=config["ldaps_port"], use_ssl=True, tls=tls, get_info=ldap3.NONE)
    admin = ldap3.Connection(server, config["username"], config["password"], auto_bind=True)
    dn, password = "CN=reader-%d,OU=Lab,%s" % (os.getpid(), config["base_dn"]), "Rd-%d-Aa1!x" % os.getpid()
    assert admin.add(dn, ["top", "person", "organizationalPerson", "user"], {
        "sAMAccountName": "reader%d" % os.getpid(), "userPrincipalName": "reader%d@%s" % (os.getpid(), config["realm"].lower()),
        "unicodePwd": ('"%s"' % password).encode("utf-16-le"), "userAccountControl": 512}), admin.result
    try:
        before = snapshot(lab, control)
        ad = {"ad_server": config["server"], "ad_port": config["ldaps_port"], "ad_ca_cert": config["ca_file"],
              "ad_username": "reader%d@%s" % (os.getpid(), config["realm"].lower()), "ad_password": password}
        run = playbook("entraid.dirsync.bypass_overrides", extra_vars=bypass_args(workdir, entraid_ad=ad))
        assert run.rc != 0
        refused = [result for result in results_of(run, "preflight") if result["status"] == "failed"]
        assert refused and "may not write mobile and otherMobile" in refused[0]["result"]["msg"], run.stdout[-3000:]
        assert not results_of(run, "phone_backup")
        assert_unchanged(before, snapshot(lab, control))
    finally:
        admin.delete(dn)
        admin.unbind()


def test_a_concurrent_second_run_refuses_naming_the_first(playbook, lab, control, faults, workdir_factory, tmp_path):
    workdir = workdir_factory("concurrent")
    before = snapshot(lab, control)
    # The first run reads the users slowly; it excludes the whole scope, so it writes nothing and stops at the gate.
    faults({"match": {"method": "GET", "path": USERS_LIST}, "action": "latency", "seconds": 4})
    first = start_bypass(lab, bypass_args(workdir, reconcile_exclude_ous=lab_ad.sync_scopes(lab)), str(tmp_path / "first.log"))
    lock = workdir / "backups" / ("procedure_%s.lock" % lab["tenant_id"])
    deadline = time.monotonic() + 120
    while not lock.exists():
        assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
        time.sleep(0.1)
    holder = json.loads(lock.read_text())
    assert holder["pid"] == first.pid  # the lock names ansible-playbook itself, which lives as long as the run
    second = playbook("entraid.dirsync.bypass_overrides", extra_vars=bypass_args(workdir))
    first.wait(timeout=600)
    assert second.rc != 0
    refusal = second.task("Take the tenant's procedure lock")
    assert refusal["status"] == "failed" and "Another run of the procedure holds tenant" in refusal["result"]["msg"]
    assert "process %d" % first.pid in refusal["result"]["msg"]
    assert not results_of(second, "phone_backup")
    assert not lock.exists()  # the first run released it
    assert_unchanged(before, snapshot(lab, control))


@pytest.mark.parametrize("interruption", ["ansible-playbook killed", "domain controller lost"])
def test_an_interrupted_reconcile_is_resumed_and_undone_with_the_first_backup(
        playbook, lab, seeded_lab, workdir_factory, tmp_path, interruption):
    workdir = workdir_factory("interrupted-%s" % interruption.split()[0])
    original = ldap_phones(lab)
    first = start_bypass(lab, bypass_args(workdir, reconcile_accept_unresolved=True), str(tmp_path / "first.log"))
    wait_for_first_ad_write(lab, first)
    if interruption == "ansible-playbook killed":
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        output = ""
    else:
        seeded_lab.stop_dc()
        first.wait(timeout=600)
        output = (tmp_path / "first.log").read_text()
        seeded_lab.start_dc()
    assert first.returncode != 0
    state = json.loads((workdir / "backups" / ("procedure_%s.json" % lab["tenant_id"])).read_text())
    assert state["status"] == "running"
    first_backup = state["first_backup"]
    if output:  # the stopped run said how to undo it, naming the backup taken before its first write
        assert undo_backup(output) == first_backup
    assert ldap_phones(lab) != original  # some cloud numbers were written before the interruption

    again = playbook("entraid.dirsync.bypass_overrides", extra_vars=bypass_args(workdir, reconcile_accept_unresolved=True))
    assert again.rc == 0, again.stdout[-5000:]
    summary = again.task("Summarise the procedure")["result"]["msg"]
    assert undo_backup(summary) == first_backup
    assert result_of(again, "phone_backup")["result"]["backup_path"] != first_backup  # its own backup is not the undo

    rollback = playbook("entraid.dirsync.rollback", extra_vars={"rollback_backup_path": undo_backup(summary),
                                                                "backup_dir": str(workdir / "backups")})
    assert rollback.rc == 0, rollback.stdout[-4000:]
    restored = ldap_phones(lab)
    assert {guid: user for guid, user in restored.items() if guid in original} == original


def lab_graph(lab):
    return {"tenant_id": lab["tenant_id"], "cloud": "custom", "authority_host": lab["authority_host"],
            "graph_endpoint": lab["graph_endpoint"], "ca_bundle": lab["ca_file"]}


@pytest.fixture
def workdir_factory(tmp_path_factory):
    return tmp_path_factory.mktemp


def test_when_cloud_sync_ignored_the_flag_the_run_fails_at_verify_and_keeps_the_cloud_numbers(
        playbook, lab, seeded_lab, control, workdir_factory):
    """Microsoft documents bypassDirSyncOverridesEnabled for Entra Connect only; the lab can make Cloud Sync ignore it
    (cloud_sync_bypass=ignored). The overrides then stay in force through the full sync: the run must not end in
    success, and the cloud numbers the policy left out of AD must still be in Entra ID."""
    workdir = workdir_factory("cloud-sync-ignores-the-flag")
    control.post("/options", {"options": {"cloud_sync_bypass": "ignored"}})
    try:
        run = playbook("entraid.dirsync.bypass_overrides", cwd=str(workdir),
                       extra_vars=bypass_args(workdir, reconcile_accept_unresolved=True, verify_timeout=5))
    finally:
        control.post("/options", {"options": {"cloud_sync_bypass": "honoured"}})
    assert run.rc != 0, run.stdout[-4000:]
    assert result_of(run, "cloud_sync_job")["status"] == "ok"  # the cycle ran; it is the flag that had no effect
    reconcile = result_of(run, "phone_reconcile")["result"]
    skipped = {item["user_principal_name"]: item for item in reconcile["numbers_not_carried"] if item["outcome"] == "skipped"}
    assert skipped
    failed = " ".join(run.task("entraid.dirsync.verify : Fail when numbers still differ")["result"]["msg"].split())
    still = [row for row in results_of(run, "phone_compare")[-1]["result"]["differences"]
             if row["Class"] in ("value_differs", "format_differs")]
    # What still differs is what the policy left to AD (format only, empty cloud numbers): written users agree.
    assert still and {row["UserPrincipalName"] for row in still} <= {item["user_principal_name"] for item in reconcile["skipped_users"]}
    for row in still:
        assert "%s (AD %s, Entra ID %s)" % (row["UserPrincipalName"], row["MobileInAD"] or "none", row["MobileInEntra"] or "none") in failed
    assert "honours it" in failed
    # No number is lost: each one the policy left out of AD is still in Entra ID, as it was or in AD's spelling of it.
    cloud = {user["userPrincipalName"]: user for user in snapshot(lab, control)["tenant"].values()}
    for upn, item in skipped.items():
        assert _phone.same(cloud[upn]["mobilePhone"], item["mobile_in_entra"], ignore_format=True), upn

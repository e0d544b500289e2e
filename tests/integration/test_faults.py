"""Faults of the identity platform in real ansible-playbook runs against the lab: sign-ins are retried like Graph calls,
and a fault that lasts is named truthfully; the read-only drift report never changes an existing directory's mode."""

import os
import stat

import pytest

from lab_play import PLAY_HEADER

TOKEN = r"/oauth2/v2\.0/token$"

PLAY = PLAY_HEADER + """    - name: read
      entraid.dirsync.user_phone_info:
        identities: [%(upn)s]
        directories: [entra]
        max_retries: %(retries)d
"""


def add_faults(control, *rules):
    return [rule["id"] for rule in control.post("/faults", {"rules": list(rules)})["rules"]]


def fired(control, rule_id):
    return next(rule["fired"] for rule in control.get("/faults")["rules"] if rule["id"] == rule_id)


@pytest.fixture
def upn(control, lab):
    tenant = control.get("/state?tenant=%s" % lab["tenant_id"])["tenants"][0]
    return next(user["userPrincipalName"] for user in tenant["users"] if user.get("onPremisesSyncEnabled") is True)


@pytest.mark.usefixtures("faults")
@pytest.mark.parametrize("fault", [
    {"action": "status", "status": 503},
    {"action": "status", "status": 429, "retry_after": "1"},
    {"action": "drop"},
], ids=["503", "429-AADSTS90033", "dropped"])
def test_transient_sign_in_faults_are_retried(playbook, control, upn, fault):
    rule, = add_faults(control, dict(fault, match={"method": "POST", "path": TOKEN}, count=2))
    run = playbook(PLAY % {"upn": upn, "retries": 3})
    task = run.task("read")
    assert task["status"] == "ok", run.stdout[-3000:]
    assert task["result"]["users"][0]["entra"]["user_principal_name"] == upn
    assert fired(control, rule) == 2


@pytest.mark.usefixtures("faults")
@pytest.mark.parametrize("fault, words", [
    ({"action": "status", "status": 503}, "The identity platform was unavailable for the sign-in (auth_method=client_secret)"),
    ({"action": "status", "status": 429, "retry_after": "1"}, "The identity platform throttled the sign-in (auth_method=client_secret)"),
    ({"action": "drop"}, "Could not reach the identity platform at"),
], ids=["503", "429-AADSTS90033", "dropped"])
def test_lasting_sign_in_faults_fail_naming_the_fault(playbook, control, upn, lab, fault, words):
    rule, = add_faults(control, dict(fault, match={"method": "POST", "path": TOKEN}))
    run = playbook(PLAY % {"upn": upn, "retries": 2}, args=("-vvv",))
    task = run.task("read")
    assert task["status"] == "failed"
    message = task["result"]["msg"]
    assert message.startswith(words) and "after 2 retries (max_retries)" in message
    assert "Check tenant_id" not in message
    assert fired(control, rule) == 3
    # Nothing of the lab's secrets in anything ansible-playbook printed at -vvv.
    secrets = [app["client_secret"] for app in lab["apps"].values() if app.get("client_secret")] + [lab["ldap"]["password"]]
    assert secrets and not [secret for secret in secrets if secret in run.stdout]


def test_drift_report_creates_a_missing_directory_0700_and_never_chmods_an_existing_one(playbook, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp
    for check in (True, False):
        run = playbook("entraid.dirsync.drift_report", check=check, extra_vars={"drift_report_dir": str(shared)})
        assert run.rc == 0, run.stdout[-3000:]
        assert stat.S_IMODE(os.stat(shared).st_mode) == 0o1777
    fresh = tmp_path / "fresh" / "reports"
    run = playbook("entraid.dirsync.drift_report", check=True, extra_vars={"drift_report_dir": str(fresh)})
    assert run.rc == 0, run.stdout[-3000:]
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o700 and stat.S_IMODE(os.stat(fresh.parent).st_mode) == 0o700
    assert [name for name in os.listdir(fresh) if name.endswith(".json")]

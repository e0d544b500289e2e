"""The running lab, as a user of `make lab-up` meets it: real Samba, real msal, real HTTPS."""

import json
import os
import ssl
import stat
import time

import ldap3
import msal
import pytest
import requests
import yaml

from dirsync_lab.emulator.state import Tenant
from dirsync_lab.orchestrator import Lab
from dirsync_lab.process import LabError


@pytest.fixture
def no_env_ca(monkeypatch):
    # REQUESTS_CA_BUNDLE would override the verify= that msal puts on its session.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def _ldap(lab):
    ldap = lab["ldap"]
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=lab["ca_file"])
    server = ldap3.Server(ldap["server"], port=ldap["ldaps_port"], use_ssl=True, tls=tls, get_info=ldap3.NONE)
    return ldap3.Connection(server, ldap["username"], ldap["password"], auto_bind=True)


def _user(control, **match):
    users = control.get("/state")["tenants"][0]["users"]
    return next(u for u in users if all(u.get(k) == v for k, v in match.items()))


def test_description_files_are_private_and_complete(lab):
    for name in ("lab.json", "inventory.yml"):
        mode = stat.S_IMODE(os.stat(os.path.join(lab["root"], name)).st_mode)
        assert mode == 0o600, "%s holds lab secrets and must be 0600, is %o" % (name, mode)
    with open(os.path.join(lab["root"], "inventory.yml"), encoding="utf-8") as handle:
        host = yaml.safe_load(handle)["all"]["children"]["tenants"]["hosts"]["lab"]
    assert host["entraid_graph"]["tenant_id"] == lab["tenant_id"]
    assert host["entraid_ad"]["ad_server"] == lab["ldap"]["server"]
    assert host["entraid_ad_search_bases"] == lab["ldap"]["sync_scope"]


def test_password_sign_in_through_port_443_and_mfa_refusal(lab, no_env_ca):
    app = msal.PublicClientApplication(lab["apps"]["interactive"]["client_id"], authority=lab["authority"],
                                       instance_discovery=False, verify=lab["ca_file"])
    admin = lab["users"]["admin"]
    result = app.acquire_token_by_username_password(admin["username"], admin["password"], scopes=[lab["graph_scope"]])
    assert "access_token" in result, result.get("error_description")
    features = requests.get(lab["graph_endpoint"] + "/v1.0/directory/onPremisesSynchronization", verify=lab["ca_file"],
                            headers={"Authorization": "Bearer " + result["access_token"]}, timeout=10)
    assert features.status_code == 200 and features.json()["value"][0]["id"] == lab["tenant_id"]

    mfa = lab["users"]["mfa_admin"]
    refused = app.acquire_token_by_username_password(mfa["username"], mfa["password"], scopes=[lab["graph_scope"]])
    assert refused.get("error") == "invalid_grant" and "AADSTS50076" in refused["error_description"]


def test_ldaps_only_with_the_lab_ca_and_no_plain_simple_bind(lab):
    conn = _ldap(lab)
    conn.search(lab["ldap"]["sync_scope"][0], "(objectClass=user)", attributes=["mobile"], paged_size=1000)
    assert conn.entries
    conn.unbind()
    plain = ldap3.Connection(ldap3.Server(lab["ldap"]["server"], port=lab["ldap"]["ldap_port"], get_info=ldap3.NONE),
                             lab["ldap"]["username"], lab["ldap"]["password"])
    assert not plain.bind(), "the DC must refuse a simple bind without TLS"
    assert plain.result["description"] == "strongerAuthRequired"


def test_a_second_up_with_busy_ports_says_which_port_and_why(lab, tmp_path):
    with pytest.raises(LabError) as info:
        Lab(str(tmp_path / "other-lab")).up(log=lambda message: None)
    message = str(info.value)
    assert "Port 389 is taken by" in message and "Samba" in message and "lab-down" in message


def test_sync_cycle_carries_ad_changes_and_honours_overrides(lab, control):
    """Real Samba + the sync engine: an AD edit reaches Entra unless the user has an override."""
    state = control.get("/state")["tenants"][0]
    overridden = next(u for u in state["users"] if "mobilePhone" in u.get("dirSyncOverrides", []))
    plain = next(u for u in state["users"] if u.get("onPremisesSyncEnabled") and not u.get("dirSyncOverrides")
                 and u.get("onPremisesDistinguishedName") and u["id"] != overridden["id"])
    conn = _ldap(lab)
    originals = {}
    for user in (overridden, plain):
        dn = user["onPremisesDistinguishedName"]
        conn.search(dn, "(objectClass=user)", search_scope=ldap3.BASE, attributes=["mobile"])
        originals[dn] = list(conn.entries[0].mobile.values)
    try:
        for index, user in enumerate((overridden, plain)):
            conn.modify(user["onPremisesDistinguishedName"], {"mobile": [(ldap3.MODIFY_REPLACE, ["+1 206 555 01%02d" % index])]})
        control.post("/sync", {"type": "delta", "wait": True})
        assert _user(control, id=plain["id"])["mobilePhone"] == "+1 206 555 0101"
        kept = _user(control, id=overridden["id"])
        assert kept["mobilePhone"] == overridden["mobilePhone"] and "mobilePhone" in kept["dirSyncOverrides"]
    finally:
        for dn, values in originals.items():
            conn.modify(dn, {"mobile": [(ldap3.MODIFY_REPLACE, values)]})
        control.post("/sync", {"type": "delta", "wait": True})
        conn.unbind()
    assert _user(control, id=overridden["id"])["mobilePhone"] == overridden["mobilePhone"]


def test_up_is_idempotent_and_fast_when_running(lab):
    started = time.monotonic()
    info = Lab(lab["root"]).up(count=lab["seed"]["count"], seed=lab["seed"]["seed"], log=lambda message: None)
    assert info["tenant_id"] == lab["tenant_id"]
    assert time.monotonic() - started < 5


def test_sign_in_accounts_keep_their_object_id_across_restarts(lab, control):
    """Token caches hold the account's object id: a lab restart must not turn the admin into a stranger."""
    with open(os.path.join(lab["root"], "emulator.json"), encoding="utf-8") as handle:
        config = json.load(handle)["tenants"][0]
    admin = lab["users"]["admin"]["username"]
    assert Tenant(config).by_upn[admin.lower()] == _user(control, userPrincipalName=admin)["id"]


def test_samba_keeps_its_pid_file_and_sockets_under_the_lab_directory(lab):
    """A second lab (another clone, in another network namespace) or a distribution Samba can run beside this one."""
    run_dir = os.path.join(lab["root"], "samba", "run")
    with open(os.path.join(run_dir, "samba.pid"), encoding="utf-8") as handle:
        pid = int(handle.read().split()[0])
    with open(os.path.join(lab["root"], "samba.pid"), encoding="utf-8") as handle:
        assert int(handle.read().split()[0]) == pid
    assert os.path.isdir(os.path.join(run_dir, "ncalrpc"))
    if os.path.exists("/run/samba/samba.pid"):
        with open("/run/samba/samba.pid", encoding="utf-8") as handle:
            assert handle.read().split()[0] != str(pid)

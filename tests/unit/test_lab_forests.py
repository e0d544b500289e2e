"""The lab's second forest without running it: its population, ports, krb5.conf, certificate and inventory."""

import base64
import socket

import pytest
import yaml

from dirsync_lab import orchestrator, pki, population, process, samba
from dirsync_lab.population import FABRIKAM, LAB


def test_the_first_forest_keeps_its_population_and_cache_key():
    # Cached snapshots of one-forest labs (samba-<key>.tar) must stay valid.
    assert population.seed_key(300, 42) == population.seed_key(300, 42, LAB) == "bc1cc10f761b817c"
    assert population.seed_key(300, 42, FABRIKAM) != population.seed_key(300, 42)
    assert len(population.generate_users(300, 42)) == 300
    assert population.SYNC_SCOPE == "OU=Sync,OU=Lab,DC=lab,DC=test" and population.OUS == LAB.ous


def test_the_second_forest_is_deterministic_and_distinct_from_the_first():
    users = population.generate_users(300, 42, FABRIKAM)
    assert users == population.generate_users(300, 42, FABRIKAM) != population.generate_users(300, 43, FABRIKAM)
    assert len(users) == 75 and len(population.generate_users(100, 42, FABRIKAM)) == 60
    assert all(user["dn"].endswith(",OU=Lab,DC=fabrikam,DC=test") for user in users)
    assert {user["userPrincipalName"].split("@")[1] for user in users} == {"fabrikam.test", "fabrikam.example"}
    assert {user["ou"] for user in users if user["in_scope"]} == set(FABRIKAM.in_scope_ous)
    # No cloud UPN can collide, even where Entra moves both forests' unverified suffixes to the initial domain.
    first = {user["sAMAccountName"] for user in population.generate_users(100000, 42)}
    assert not first & {user["sAMAccountName"] for user in population.generate_users(400000, 42, FABRIKAM)}
    text = population.ldif(users, FABRIKAM)
    assert "dn: OU=Contractors,OU=Lab,DC=fabrikam,DC=test" in text and "DC=lab,DC=test" not in text


def _synced(forest, count):
    return [{"id": "%s-%d" % (forest.netbios, index), "onPremisesImmutableId": base64.b64encode(b"%s-%04d" % (forest.netbios.encode(), index)).decode(),
             "mobilePhone": "+1 425 555 %04d" % index, "onPremisesSecurityIdentifier": "S-1-5-21-1-2-3-%d" % index,
             "onPremisesDistinguishedName": "CN=u%d,OU=Sales,%s" % (index, forest.sync_scope)} for index in range(count)]


def test_the_second_forests_scenarios_and_its_duplicate_anchor_across_forests():
    first = population.tenant_scenarios(_synced(LAB, 250), 300, 42)
    second = population.tenant_scenarios(_synced(FABRIKAM, 60), 75, 42, FABRIKAM, first["untouched"])
    assert second["overrides"] and second["pending"] and not second["cloud_only"]
    assert all(orphan["userPrincipalName"].endswith("@fabrikam.test") for orphan in second["orphans"])
    assert {case["forest"] for case in first["edge_cases"]} == {"lab.test"}
    [case] = second["edge_cases"]
    assert case["case"] == "duplicate_anchor_across_forests" and case["forest"] == "fabrikam.test"
    assert case["dn"].endswith(FABRIKAM.base_dn)
    owner = first["untouched"][0]
    assert case["changes"]["mS-DS-ConsistencyGuid"] == base64.b64decode(owner["onPremisesImmutableId"])
    # No user of the first forest's edge cases (the duplicate_anchor claimant, nor the owner of the anchor it copied).
    assert owner["onPremisesDistinguishedName"] not in {change["dn"] for change in first["edge_cases"]}
    [duplicate] = [change for change in first["edge_cases"] if change["case"] == "duplicate_anchor"]
    assert duplicate["changes"]["mS-DS-ConsistencyGuid"] != case["changes"]["mS-DS-ConsistencyGuid"]


def test_lab_forests_and_the_ports_of_each_address():
    assert orchestrator.lab_forests({}) == (LAB, FABRIKAM)
    assert orchestrator.lab_forests({"LAB_FORESTS": "1"}) == (LAB,)
    with pytest.raises(process.LabError, match="LAB_FORESTS"):
        orchestrator.lab_forests({"LAB_FORESTS": "3"})
    reasons = orchestrator.port_reasons((LAB, FABRIKAM))
    assert ("127.0.0.2", 636, "LDAPS of the lab's Samba domain controller of fabrikam.test") in reasons
    assert {(address, port) for address, port, _why in reasons if port in (443, 8450)} == {("127.0.0.1", 443), ("127.0.0.1", 8450)}
    assert not [reason for reason in orchestrator.port_reasons((LAB,)) if reason[0] == "127.0.0.2"]


def test_a_listener_on_another_address_is_no_conflict(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    lines = {"mine": "LISTEN 0 10 127.0.0.1:%d 0.0.0.0:* users:((\"samba\",pid=1,fd=3))" % port,
             "any": "LISTEN 0 10 0.0.0.0:%d 0.0.0.0:* users:((\"slapd\",pid=2,fd=3))" % port,
             "any6": "LISTEN 0 10 [::]:%d [::]:* users:((\"slapd\",pid=2,fd=3))" % port}

    def ss(listener):
        monkeypatch.setattr(process.subprocess, "run", lambda *args, **kwargs: type("Out", (), {"stdout": lines[listener] + "\n"}))
    ss("mine")
    assert process.port_owner(port, "127.0.0.2") is None
    assert "samba" in process.port_owner(port, "127.0.0.1")
    for listener in ("any", "any6"):
        ss(listener)
        assert "slapd" in process.port_owner(port, "127.0.0.2")


def test_krb5_conf_names_every_realm_with_its_kdc():
    text = samba.krb5_conf((LAB, FABRIKAM))
    assert "default_realm = LAB.TEST" in text
    assert "FABRIKAM.TEST = {\n\t\tkdc = 127.0.0.2:88" in text and "LAB.TEST = {\n\t\tkdc = 127.0.0.1:88" in text
    assert "\t.fabrikam.test = FABRIKAM.TEST" in text
    assert "ldap/dc1.fabrikam.test/FABRIKAM" in samba.ldap_service_principals(FABRIKAM)


def test_a_server_certificate_without_the_second_address_is_issued_again(tmp_path, monkeypatch):
    monkeypatch.setattr(pki, "SERVER_IPS", ("127.0.0.1",))
    paths = pki.ensure_pki(str(tmp_path))
    monkeypatch.undo()
    assert pki._server_names_missing(paths["server_cert"]) == ["127.0.0.2"]  # pylint: disable=protected-access
    with open(paths["ca_cert"], encoding="ascii") as handle:
        ca = handle.read()
    pki.ensure_pki(str(tmp_path))
    assert not pki._server_names_missing(paths["server_cert"])  # pylint: disable=protected-access
    with open(paths["ca_cert"], encoding="ascii") as handle:
        assert handle.read() == ca


@pytest.mark.parametrize("forests", [(LAB,), (LAB, FABRIKAM)])
def test_inventory_has_ad_sources_only_with_two_forests(tmp_path, forests):
    lab = orchestrator.Lab(str(tmp_path), forests)
    info = lab._description(pki.ensure_pki(lab.pki_dir), lab.secrets(), 300, 42)  # pylint: disable=protected-access
    assert [forest["name"] for forest in info["forests"]] == [forest.name for forest in forests]
    assert info["ldap"] == info["forests"][0]["ldap"] and info["ldap"]["server"] == "localhost"
    lab._write_inventory(info)  # pylint: disable=protected-access
    with open(lab.inventory, encoding="utf-8") as handle:
        host = yaml.safe_load(handle)["all"]["children"]["tenants"]["hosts"]["lab"]
    assert host["entraid_ad_forests"] == len(forests) and host["entraid_ad_search_bases"] == [LAB.sync_scope]
    if len(forests) == 1:
        assert "ad_sources" not in host["entraid_ad"]
        return
    second = info["forests"][1]["ldap"]
    assert host["entraid_ad"]["ad_sources"] == [
        {"name": "lab.test", "search_bases": [LAB.sync_scope]},
        {"name": "fabrikam.test", "ad_server": "127.0.0.2", "ad_port": 636, "ad_ca_cert": info["ldap"]["ca_file"],
         "ad_username": "Administrator@FABRIKAM.TEST", "ad_password": second["password"], "search_bases": [FABRIKAM.sync_scope]}]
    assert second["password"] != info["ldap"]["password"]


def test_samba_process_model_defaults_to_standard_and_refuses_unknown_models():
    assert samba.process_model({}) == "standard"
    assert samba.process_model({"LAB_SAMBA_MODEL": "single"}) == "single"
    with pytest.raises(process.LabError, match="LAB_SAMBA_MODEL must be one of standard, single, prefork"):
        samba.process_model({"LAB_SAMBA_MODEL": "threads"})

"""The running lab's second forest (fabrikam.test on 127.0.0.2): its own DC, synced into the same tenant."""

import base64
import os

import ldap3
import pytest
import yaml
from ldap3.utils.conv import escape_bytes

from dirsync_lab import samba
from dirsync_lab.population import FABRIKAM


@pytest.fixture(scope="module")
def forests(lab):
    if len(lab["forests"]) < 2:
        pytest.skip("the lab runs one forest (LAB_FORESTS=1)")
    return {forest["name"]: forest for forest in lab["forests"]}


def _synced_of(control, forest):
    suffix = "," + forest["ldap"]["base_dn"].lower()
    return [user for user in control.get("/state")["tenants"][0]["users"]
            if user.get("onPremisesSyncEnabled") and (user.get("onPremisesDistinguishedName") or "").lower().endswith(suffix)]


def _search(connection, base, search_filter, attributes):
    connection.search(base, search_filter, attributes=attributes, paged_size=1000)
    return {entry.entry_dn: entry for entry in connection.entries}


def test_each_dc_answers_on_its_own_address_with_its_own_credentials(lab, forests):
    for name, forest in forests.items():
        connection = samba.connect(forest["ldap"])
        connection.search("", "(objectClass=*)", ldap3.BASE, attributes=["defaultNamingContext"])
        assert connection.entries[0].defaultNamingContext.value == forest["ldap"]["base_dn"], name
        connection.unbind()
    # The second forest's Administrator is no account of the first forest's DC.
    crossed = dict(forests["lab.test"]["ldap"], username=forests["fabrikam.test"]["ldap"]["username"],
                   password=forests["fabrikam.test"]["ldap"]["password"])
    with pytest.raises(ldap3.core.exceptions.LDAPBindError):
        samba.connect(crossed)
    assert forests["fabrikam.test"]["kerberos"]["kdc"] == "127.0.0.2:88" and forests["fabrikam.test"]["ldap"]["server"] == "127.0.0.2"
    with open(lab["kerberos"]["krb5_conf"], encoding="utf-8") as handle:
        assert "FABRIKAM.TEST = {\n\t\tkdc = 127.0.0.2:88" in handle.read()


def test_the_second_forests_users_in_scope_are_synced_with_its_domain(control, forests):
    forest = forests["fabrikam.test"]
    connection = samba.connect(forest["ldap"])
    in_scope = _search(connection, forest["ldap"]["sync_scope"][0], "(&(objectCategory=person)(objectClass=user))", ["userPrincipalName"])
    outside = _search(connection, forest["ldap"]["out_of_scope"][0], "(objectClass=user)", ["userPrincipalName"])
    connection.unbind()
    synced = _synced_of(control, forest)
    assert outside and len(synced) > len(in_scope) // 2
    dns = {dn.lower() for dn in in_scope}
    for user in synced:
        dn = user["onPremisesDistinguishedName"]
        assert user["onPremisesDomainName"] == "fabrikam.test"
        if dn.lower() not in dns:
            continue  # a departed user: only in the tenant
        ad_upn = in_scope[next(key for key in in_scope if key.lower() == dn.lower())].userPrincipalName.value
        if ad_upn.endswith("@fabrikam.test"):
            assert user["userPrincipalName"] == ad_upn
    assert not {dn.lower() for dn in outside} & {user["onPremisesDistinguishedName"].lower() for user in synced}


def test_the_cross_forest_duplicate_anchor_is_in_ad(forests, control, lab):
    [case] = [case for case in lab["edge_cases"] if case["case"] == "duplicate_anchor_across_forests"]
    assert case["forest"] == "fabrikam.test" and {item["forest"] for item in lab["edge_cases"]} == {"lab.test", "fabrikam.test"}
    connection = samba.connect(forests["fabrikam.test"]["ldap"])
    connection.search(case["dn"], "(objectClass=user)", ldap3.BASE, attributes=["mS-DS-ConsistencyGuid", "objectGUID"])
    entry = connection.entries[0]
    guid = entry["mS-DS-ConsistencyGuid"].raw_values[0]
    assert guid != entry.objectGUID.raw_values[0]
    connection.unbind()
    # The anchor of a synced user of the first forest (mS-DS-ConsistencyGuid, else objectGUID).
    connection = samba.connect(forests["lab.test"]["ldap"])
    connection.search(forests["lab.test"]["ldap"]["sync_scope"][0], "(|(mS-DS-ConsistencyGuid=%s)(objectGUID=%s))"
                      % (escape_bytes(guid), escape_bytes(guid)), attributes=["distinguishedName"])
    assert len(connection.entries) == 1
    connection.unbind()
    immutable = base64.b64encode(guid).decode()
    assert [user for user in control.get("/state")["tenants"][0]["users"] if user.get("onPremisesImmutableId") == immutable]


def test_inventory_lists_both_forests_as_ad_sources(lab, forests):
    with open(os.path.join(lab["root"], "inventory.yml"), encoding="utf-8") as handle:
        host = yaml.safe_load(handle)["all"]["children"]["tenants"]["hosts"]["lab"]
    second = forests["fabrikam.test"]["ldap"]
    assert host["entraid_ad_forests"] == 2
    assert host["entraid_ad"]["ad_sources"] == [
        {"name": "lab.test", "search_bases": lab["ldap"]["sync_scope"]},
        {"name": "fabrikam.test", "ad_server": "127.0.0.2", "ad_port": 636, "ad_ca_cert": second["ca_file"],
         "ad_username": "Administrator@FABRIKAM.TEST", "ad_password": second["password"], "search_bases": second["sync_scope"]}]


def test_a_mobile_change_in_the_second_forest_reaches_the_tenant_on_a_delta_cycle(control, forests):
    forest = forests["fabrikam.test"]
    control.post("/sync", {"type": "delta", "wait": True})  # nothing left over from earlier tests
    user = next(u for u in _synced_of(control, forest) if not u.get("dirSyncOverrides") and u["mobilePhone"] != "+1 206 555 0199")
    connection = samba.connect(forest["ldap"])
    dn = user["onPremisesDistinguishedName"]
    connection.search(dn, "(objectClass=user)", ldap3.BASE, attributes=["mobile"])
    original = list(connection.entries[0].mobile.values)
    watermarks = control.get("/state")["tenants"][0]["watermarks"]
    try:
        connection.modify(dn, {"mobile": [(ldap3.MODIFY_REPLACE, ["+1 206 555 0199"])]})
        run = control.post("/sync", {"type": "delta", "wait": True})
        assert run["state"] == "success" and run["sources"] == {"lab.test": 0, "fabrikam.test": 1}
        changed = next(u for u in control.get("/state")["tenants"][0]["users"] if u["id"] == user["id"])
        assert changed["mobilePhone"] == "+1 206 555 0199"
        after = control.get("/state")["tenants"][0]["watermarks"]
        assert after["lab.test"] == watermarks["lab.test"] and after["fabrikam.test"] > watermarks["fabrikam.test"]
    finally:
        connection.modify(dn, {"mobile": [(ldap3.MODIFY_REPLACE, original)]})
        control.post("/sync", {"type": "delta", "wait": True})
        connection.unbind()


def test_an_initial_cycle_deletes_a_user_gone_from_the_second_forest_and_keeps_the_first_forests(lab_reset, control, forests):
    control.post("/sync", {"type": "initial", "wait": True})
    before = {user["id"] for user in control.get("/state")["tenants"][0]["users"] if user.get("onPremisesSyncEnabled")}
    first = len(_synced_of(control, forests["lab.test"]))
    # Not the user that shares the first forest's anchor: that cloud object stays while the first forest has it.
    [shared] = [case["dn"] for case in lab_reset["edge_cases"] if case["case"] == "duplicate_anchor_across_forests"]
    gone = next(u for u in _synced_of(control, forests["fabrikam.test"]) if u["onPremisesDistinguishedName"] != shared)
    connection = samba.connect(forests["fabrikam.test"]["ldap"], raise_exceptions=True)
    connection.delete(gone["onPremisesDistinguishedName"])
    connection.unbind()
    run = control.post("/sync", {"type": "initial", "wait": True})
    assert run["state"] == "success" and run["deleted"] == 1
    after = {user["id"] for user in control.get("/state")["tenants"][0]["users"] if user.get("onPremisesSyncEnabled")}
    # (A cycle may create a user the previous one could not, e.g. changed_anchor's after its old object was deleted.)
    assert gone["id"] not in after and before - {gone["id"]} <= after and len(_synced_of(control, forests["lab.test"])) >= first


def test_a_lost_second_dc_fails_the_cycle_with_its_name_and_the_first_stays_up(seeded_lab, control, forests):
    seeded_lab.stop_dc(FABRIKAM)
    try:
        run = control.post("/sync", {"type": "initial", "wait": True})
        assert run["state"] == "failed" and run["error"].startswith("source fabrikam.test: ") and run["deleted"] == 0
        assert set(seeded_lab.running()) == {"emulator", "samba"}
        samba.connect(forests["lab.test"]["ldap"]).unbind()
    finally:
        seeded_lab.start_dc(FABRIKAM)
    assert control.post("/sync", {"type": "delta", "wait": True})["state"] == "success"

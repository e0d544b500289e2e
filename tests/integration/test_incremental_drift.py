"""phone_compare with state_file against the lab: after random changes on both sides, an incremental run gives exactly
the report a full run gives, under each delta behaviour the lab offers; and every reason for a full read is taken.

The lab is reset afterwards (lab_reset): the tests add, move, delete and edit users in AD and in the tenant.
"""

import json
import os
import random
import uuid

import ldap3
import pytest

import lab_ad
from lab_play import PLAY_HEADER

USER_CLASSES = ["top", "person", "organizationalPerson", "user"]
USER_FILTER = "(&(objectCategory=person)(objectClass=user))"

PLAY = PLAY_HEADER + """    - name: compare
      entraid.dirsync.phone_compare:
        search_bases: "{{ entraid_ad_search_bases }}"
        report_json: %(json)s
        report_in_sync: true
        max_differences: 0
%(extra)s
"""


@pytest.fixture(scope="module")
def forests(lab_reset):
    """[(forest, connection)] for every forest of the lab, forest A first."""
    connections = lab_ad.connections(lab_reset, raise_exceptions=False)
    yield connections
    for _forest, conn in connections:
        conn.unbind()


@pytest.fixture(scope="module")
def ad(forests):
    return forests[0][1]


@pytest.fixture
def compare(playbook, tmp_path):
    """``compare(state=None, **options)`` -> (task result, report rows as a sorted list of JSON texts, counts)."""
    counter = [0]

    def run(state=None, **options):
        counter[0] += 1
        report = str(tmp_path / ("drift%d.json" % counter[0]))
        if state:
            options["state_file"] = state
        extra = "".join("        %s: %s\n" % (name, json.dumps(value)) for name, value in options.items())
        result = playbook(PLAY % {"json": report, "extra": extra})
        task = result.task("compare")
        assert task["status"] == "ok", result.stdout[-4000:]
        with open(report, encoding="utf-8") as handle:
            body = json.load(handle)
        return task["result"], sorted(json.dumps(row, sort_keys=True) for row in body["rows"]), body["counts"]
    return run


def scope_users(ad, base):
    ad.search(base, USER_FILTER, ldap3.SUBTREE, attributes=["mobile", "userAccountControl"], paged_size=1000)
    return [(item["dn"], item["attributes"]) for item in ad.response if item.get("type") == "searchResEntry"]


def change_ad(ad, ldap, rng, tag):
    """Random AD changes of every kind the report can see, in the forest of ``ldap`` (lab.json's description of it)."""
    base, outside = ldap["sync_scope"][0], ldap["out_of_scope"][0]
    users = scope_users(ad, base)
    picked = rng.sample(users, 8)
    for dn, _attrs in picked[:3]:
        assert ad.modify(dn, {"mobile": [(ldap3.MODIFY_REPLACE, ["+1 425 555 %04d" % rng.randrange(10000)])]}), ad.result
    assert ad.modify(picked[3][0], {"mobile": [(ldap3.MODIFY_REPLACE, [])]}), ad.result
    assert ad.modify(picked[4][0], {"otherMobile": [(ldap3.MODIFY_REPLACE, ["+1 206 555 0100", "+1 206 555 0101"])]}), ad.result
    assert ad.modify(picked[5][0], {"userAccountControl": [(ldap3.MODIFY_REPLACE, ["514"])]}), ad.result  # disabled
    rdn = picked[6][0].split(",", 1)[0]
    assert ad.modify_dn(picked[6][0], rdn, new_superior=outside), ad.result  # moved out of the scope
    assert ad.delete(picked[7][0]), ad.result
    sam = "incr%s%s" % (tag, uuid.uuid4().hex[:6])
    assert ad.add("CN=%s,%s" % (sam, base), USER_CLASSES,
                  {"sAMAccountName": sam, "userPrincipalName": "%s@%s" % (sam, ldap["realm"].lower()), "mobile": "+1 425 555 0199"}), ad.result
    # A user moved into the scope from outside it.
    outsiders = scope_users(ad, outside)
    dn = rng.choice(outsiders)[0]
    assert ad.modify_dn(dn, dn.split(",", 1)[0], new_superior=base), ad.result


def change_cloud(control, rng, tag):
    tenant = control.get("/state")["tenants"][0]
    synced = [user for user in tenant["users"] if user.get("onPremisesSyncEnabled") is True]
    picked = rng.sample(synced, 5)
    control.post("/seed/overrides", {"overrides": [{"userPrincipalName": user["userPrincipalName"],
                                                    "mobilePhone": "+1 999 555 %04d" % rng.randrange(10000)} for user in picked[:3]]})
    control.post("/seed/delete", {"ids": [picked[3]["id"]]})
    control.post("/seed/delete", {"ids": [picked[4]["id"]], "reason": "deleted"})
    control.post("/seed/users", {"users": [{"userPrincipalName": "cloud-%s-%s@lab.test" % (tag, uuid.uuid4().hex[:6]),
                                            "mobilePhone": "+1 111 555 0100"}]})


@pytest.mark.parametrize("minimal,unselected", [("honoured", "skipped"), ("ignored", "returned")])
def test_an_incremental_run_gives_the_full_run_s_report_after_random_changes_on_both_sides(
        compare, forests, lab, control, tmp_path, minimal, unselected):
    control.post("/options", {"options": {"delta_minimal": minimal, "delta_unselected_changes": unselected}})
    state = str(tmp_path / "state" / "drift-state.json")
    first, first_rows, _counts = compare(state)
    assert (first["read"]["ad"], first["read"]["entra"]) == ("full", "full")
    assert oct(os.stat(state).st_mode & 0o777) == "0o600"
    rng = random.Random(minimal + unselected)
    for round_number in range(3):  # later rounds read the state's base and journal, or fold them into a new base
        for number, (forest, ad) in enumerate(forests):  # in every forest
            change_ad(ad, forest["ldap"], rng, "%s%d%d" % (minimal[0], round_number, number))
        change_cloud(control, rng, "%s%d" % (minimal[0], round_number))
        control.post("/sync", {"type": "delta"})  # some AD changes reach the cloud, some cloud edits stay overrides
        for number, (forest, ad) in enumerate(forests):
            change_ad(ad, forest["ldap"], rng, "%s%db%d" % (minimal[0], round_number, number))
        incremental, rows, counts = compare(state)
        assert (incremental["read"]["ad"], incremental["read"]["entra"]) == ("incremental", "incremental"), incremental["read"]
        assert incremental["read"]["full_read_reasons"] == []
        full, full_rows, full_counts = compare()
        assert "read" not in full
        assert counts == full_counts and rows == full_rows
        assert (incremental["ad_users"], incremental["entra_users"]) == (full["ad_users"], full["entra_users"])
        assert rows != first_rows  # the changes are in the report
        if round_number == 0:  # the base was kept, the changes are its journal (later rounds may fold it into a new base)
            with open(state, encoding="utf-8") as handle:
                assert any(line.startswith('{"journal": ') for line in handle)
    unchanged, rows, _counts = compare(state)
    assert unchanged["read"]["ad"] == "incremental" and rows == full_rows


def test_each_reason_for_a_full_read_is_taken_and_said(compare, ad, lab, control, tmp_path):
    state = str(tmp_path / "drift-state.json")
    compare(state)
    # An OU of the scope renamed: its users' DNs change while the users do not.
    base = lab["ldap"]["sync_scope"][0]
    ou = "OU=IncrementalRename,%s" % base
    assert ad.add(ou, "organizationalUnit"), ad.result
    sam = "incrou%s" % uuid.uuid4().hex[:6]
    assert ad.add("CN=%s,%s" % (sam, ou), USER_CLASSES, {"sAMAccountName": sam, "userPrincipalName": "%s@lab.test" % sam}), ad.result
    compare(state)
    assert ad.modify_dn(ou, "OU=IncrementalRenamed"), ad.result
    renamed, rows, _counts = compare(state)
    # Only forest A's OU changed: each forest has its own watermark, so only A is read in full.
    others = {forest["name"]: "incremental" for forest in lab_ad.forests(lab)[1:]}
    assert renamed["read"]["ad_sources"] == dict(others, **{lab_ad.forests(lab)[0]["name"]: "full"})
    assert renamed["read"]["ad"] == ("mixed" if others else "full") and renamed["read"]["entra"] == "incremental"
    assert "IncrementalRename" in renamed["read"]["full_read_reasons"][0] and "container" in renamed["read"]["full_read_reasons"][0]
    assert rows == compare()[1]
    assert any(sam in row and "OU=IncrementalRenamed" in row for row in rows)
    # Graph's delta link expired.
    control.post("/delta/expire", {})
    expired, rows, _counts = compare(state)
    assert (expired["read"]["ad"], expired["read"]["entra"]) == ("incremental", "full")
    assert "syncStateNotFound" in expired["read"]["full_read_reasons"][0]
    # full_read, then a back-link filter, then another scope.
    assert compare(state, full_read=True)[0]["read"] == {"state_file": state, "ad": "full", "entra": "full",
                                                         "ad_sources": {forest["name"]: "full" for forest in lab_ad.forests(lab)},
                                                         "full_read_reasons": ["full_read=true"]}
    member_of = compare(state, ldap_filter="(!(memberOf=CN=Nobody,%s))" % base)[0]
    assert member_of["read"]["ad"] == "full" and "another tenant, search bases or ldap_filter" in member_of["read"]["full_read_reasons"][0]
    member_of = compare(state, ldap_filter="(!(memberOf=CN=Nobody,%s))" % base)[0]
    assert member_of["read"]["ad"] == "full" and all("memberOf" in reason for reason in member_of["read"]["full_read_reasons"])
    assert member_of["read"]["entra"] == "incremental"


def test_a_state_file_others_could_have_written_is_refused(playbook, compare, tmp_path):
    state = tmp_path / "drift-state.json"
    compare(str(state))
    os.chmod(state, 0o664)
    result = playbook(PLAY % {"json": str(tmp_path / "r.json"), "extra": "        state_file: %s\n" % state})
    task = result.task("compare")
    assert task["status"] == "failed" and "chmod go-w" in task["result"]["msg"]
    assert not (tmp_path / "r.json").exists()

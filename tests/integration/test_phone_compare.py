"""phone_compare in real ansible-playbook runs against the lab.

The expectation is derived from the lab itself, independently of the collection's code: the tenant's synced users from
the control API's state dump and the users of the sync scope from our own LDAP read, paired as the sync engines join
them, by source anchor only. Nothing here changes AD or the tenant; fault rules are cleared after each test.
"""

import base64
import collections
import json
import unicodedata

import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils._identity import sid_bytes_to_string
import lab_ad
from lab_play import PLAY_HEADER

USER_FILTER = "(&(objectCategory=person)(objectClass=user))"
USERS_LIST = r"^/v1\.0/users$"

PLAY = PLAY_HEADER + """    - name: compare
      entraid.dirsync.phone_compare:
        search_bases: "{{ entraid_ad_search_bases }}"
        report_json: %(json)s
        report_csv: %(csv)s
        report_in_sync: %(in_sync)s
        graph_page_size: %(page_size)d
        max_differences: 1000
"""


@pytest.fixture
def compare(playbook, tmp_path):
    """``compare(check=False, in_sync=False, page_size=999)`` -> (task result, JSON report)."""
    counter = [0]

    def run(check=False, in_sync=False, page_size=999):
        counter[0] += 1
        paths = {"json": str(tmp_path / ("drift%d.json" % counter[0])), "csv": str(tmp_path / ("drift%d.csv" % counter[0]))}
        result = playbook(PLAY % dict(paths, in_sync=str(in_sync).lower(), page_size=page_size), check=check)
        task = result.task("compare")
        assert task["status"] == "ok", result.stdout[-4000:]
        with open(paths["json"], encoding="utf-8") as handle:
            return task["result"], json.load(handle)
    return run


def ldap_users(lab):
    """Users of the sync scope of every forest as the lab's DCs have them: {dn: {anchor, sid, upn, mobile, source}}."""
    users = {}
    for forest, connection in lab_ad.connections(lab, read_only=True):
        try:
            for base in forest["ldap"]["sync_scope"]:
                attributes = ["objectGUID", "mS-DS-ConsistencyGuid", "objectSid", "userPrincipalName", "mobile"]
                for item in lab_ad.paged(connection, base, USER_FILTER, attributes):
                    raw = item["raw_attributes"]
                    anchor = (raw.get("mS-DS-ConsistencyGuid") or raw["objectGUID"])[0]
                    users[item["dn"]] = {
                        "anchor": base64.b64encode(anchor).decode("ascii"),
                        "sid": sid_bytes_to_string(raw["objectSid"][0]),
                        "upn": raw["userPrincipalName"][0].decode("utf-8").lower() if raw.get("userPrincipalName") else None,
                        "mobile": raw["mobile"][0].decode("utf-8") if raw.get("mobile") else None,
                        "source": forest["name"],
                    }
        finally:
            connection.unbind()
    return users


def synced_users(control, lab):
    tenant = control.get("/state?tenant=%s" % lab["tenant_id"])["tenants"][0]
    return [user for user in tenant["users"] if user.get("onPremisesSyncEnabled") is True]


def _digits(number):
    """The digits of a number (any script's decimal digits, fullwidth included) and its "+", for a format-blind comparison."""
    text = unicodedata.normalize("NFKC", number)
    return "".join(str(unicodedata.digit(char)) if char.isdigit() else char for char in text if char.isdigit() or char == "+")


def _blank(value):
    return value.strip() if value and value.strip() else None


def expected_rows(ad_users, entra_users):
    """{("ad", dn) or ("entra", id): (class, Entra id, AD mobile, Entra mobile)} for every user, paired by anchor alone."""
    claims = collections.Counter(user["anchor"] for user in ad_users.values())
    cloud = collections.defaultdict(list)
    for entra in entra_users:
        cloud[entra["onPremisesImmutableId"]].append(entra)
    expected, accounted = {}, set()
    for dn, user in ad_users.items():
        partners = cloud.get(user["anchor"], [])
        accounted |= {entra["id"] for entra in partners}
        ad_mobile, entra = _blank(user["mobile"]), partners[0] if len(partners) == 1 else None
        entra_mobile = _blank(entra["mobilePhone"]) if entra else None
        if claims[user["anchor"]] > 1 or len(partners) > 1:
            cls = "ambiguous"
        elif not partners:
            cls = "only_in_ad"
        elif ad_mobile == entra_mobile:
            cls = "in_sync"
        elif ad_mobile and entra_mobile and _digits(ad_mobile) == _digits(entra_mobile):
            cls = "format_differs"
        else:
            cls = "value_differs"
        expected[("ad", dn)] = (cls, entra["id"] if entra else None, user["mobile"], entra["mobilePhone"] if entra else None)
    for entra in entra_users:
        if entra["id"] not in accounted:
            expected[("entra", entra["id"])] = ("only_in_entra", entra["id"], None, entra["mobilePhone"])
    return expected


def reported_rows(report):
    return {(("entra", row["EntraId"]) if row["Class"] == "only_in_entra" else ("ad", row["DistinguishedName"])):
            (row["Class"], row["EntraId"], row["MobileInAD"], row["MobileInEntra"]) for row in report["rows"]}


def test_report_agrees_user_by_user_with_an_independent_anchor_pairing(compare, control, lab):
    ad_users = ldap_users(lab)
    expected = expected_rows(ad_users, synced_users(control, lab))
    result, report = compare()
    # Every forest is read, and each AD row names the forest its user is in.
    assert [(source["name"], source["search_bases"]) for source in result["ad_sources"]] == [
        (forest["name"], forest["ldap"]["sync_scope"]) for forest in lab_ad.forests(lab)]
    assert all(row["ADSource"] == ad_users[row["DistinguishedName"]]["source"] for row in report["rows"] if row["ObjectGUID"])
    differing = {key: row for key, row in expected.items() if row[0] != "in_sync"}
    assert reported_rows(report) == differing
    wanted_counts = {cls: [row[0] for row in expected.values()].count(cls) for cls in report["counts"]}
    assert result["counts"] == report["counts"] == wanted_counts
    missing = [cls for cls in ("value_differs", "format_differs", "only_in_ad", "only_in_entra", "ambiguous") if not wanted_counts[cls]]
    assert not missing, "the seeded lab should have every class; none of %s" % missing
    assert result["changed"] is False
    assert result["tenant_id"] == lab["tenant_id"] == report["tenant_id"]
    assert len(result["differences"]) == len(differing) and result["differences_truncated"] is False
    assert any("otherMobile" in note for note in report["notes"])


EDGE_CLASSES = {"duplicate_anchor": "ambiguous", "changed_anchor": "only_in_ad", "renamed_to_departed_upn": "value_differs",
                "arabic_digits": "format_differs", "fullwidth_digits": "format_differs", "trailing_space": "in_sync",
                "blank": "value_differs", "control_characters": "format_differs"}


def test_the_labs_edge_cases_are_reported_as_the_sync_engine_sees_them(compare, seeded_lab):
    """The lab plants each case of issue 11; the report must show what the sync engine would do with each.

    From the seeded lab: earlier tests may have run sync cycles that carried the edge cases' AD values to the cloud."""
    lab = seeded_lab.describe()
    cases = {case["case"]: case["dn"] for case in lab["edge_cases"]}
    expected = dict(EDGE_CLASSES)
    if len(lab_ad.forests(lab)) > 1:
        # A user of the second forest claims the anchor of a synced user of the first: neither can be joined one to one.
        expected["duplicate_anchor_across_forests"] = "ambiguous"
    assert set(cases) == set(expected)
    _result, report = compare(in_sync=True)
    by_dn = collections.defaultdict(list)
    for row in report["rows"]:
        by_dn[row["DistinguishedName"]].append(row)
    if "duplicate_anchor_across_forests" in expected:
        claimant, = [row for row in by_dn[cases["duplicate_anchor_across_forests"]] if row["ObjectGUID"]]
        both = [row for row in report["rows"] if row["Class"] == "ambiguous" and row["ImmutableId"] == claimant["ImmutableId"]]
        assert sorted(row["ADSource"] for row in both) == sorted(forest["name"] for forest in lab_ad.forests(lab))
        assert all("in the AD sources" in row["Note"] for row in both) and claimant["EntraId"]
    for case, cls in expected.items():
        assert [row["Class"] for row in by_dn[cases[case]] if row["ObjectGUID"]] == [cls], (case, by_dn[cases[case]])
    changed, = [row for row in by_dn[cases["changed_anchor"]] if row["ObjectGUID"]]
    assert changed["HintMatchedBy"] == "sid,upn" and changed["HintId"]
    old_object = next(row for row in report["rows"] if row["EntraId"] == changed["HintId"])
    assert old_object["Class"] == "only_in_entra" and old_object["HintId"] == changed["ObjectGUID"]
    duplicate, = [row for row in by_dn[cases["duplicate_anchor"]] if row["ObjectGUID"]]
    owner = [row for row in report["rows"] if row["Class"] == "ambiguous" and row["EntraId"] == duplicate["EntraId"]]
    assert len(owner) == 2 and duplicate["MobileInEntra"]
    # The duplicate's own cloud object lost its AD anchor: it is reported, hinted by SID and UPN.
    own, = [row for row in by_dn[cases["duplicate_anchor"]] if not row["ObjectGUID"]]
    assert own["Class"] == "only_in_entra" and own["HintId"] == duplicate["ObjectGUID"]
    renamed, = [row for row in by_dn[cases["renamed_to_departed_upn"]] if row["ObjectGUID"]]
    departed = next(row for row in report["rows"] if row["Class"] == "only_in_entra"
                    and row["UserPrincipalName"].lower() == renamed["UserPrincipalName"].lower())
    assert departed["HintMatchedBy"] == "upn" and departed["HintId"] == renamed["ObjectGUID"]
    spaced, = [row for row in by_dn[cases["trailing_space"]] if row["ObjectGUID"]]
    assert spaced["MobileInAD"].endswith(" ")  # reported as AD holds it


def test_users_whose_upn_differs_are_paired_by_anchor(compare, control, lab):
    renamed = {user["id"]: user for user in synced_users(control, lab)
               if user["onPremisesUserPrincipalName"] and user["onPremisesUserPrincipalName"].lower() != user["userPrincipalName"].lower()}
    if not renamed:
        pytest.skip("the lab's tenant has no synced user whose cloud UPN differs from the on-premises one")
    _result, report = compare(in_sync=True)
    # The lab's edge cases (changed and duplicated anchors) leave some cloud users without their AD anchor on purpose.
    planted = {case["dn"].lower() for case in lab["edge_cases"]}
    rows = {row["EntraId"]: row for row in report["rows"] if row["EntraId"] in renamed
            and (row["DistinguishedName"] or "").lower() not in planted}
    paired = [row for row in rows.values() if row["Class"] != "ambiguous"]
    assert paired, "no user with a differing UPN was paired: %s" % rows
    for row in paired:
        user = renamed[row["EntraId"]]
        assert row["MatchedBy"] == "anchor"
        assert row["UserPrincipalName"].lower() == user["onPremisesUserPrincipalName"].lower()
        assert row["UserPrincipalNameInEntra"] == user["userPrincipalName"]
        assert row["ImmutableId"] == user["onPremisesImmutableId"]


def add_faults(control, *rules):
    """Add fault rules (the ``faults`` fixture must be in use: it clears them after the test); return their ids."""
    return [rule["id"] for rule in control.post("/faults", {"rules": list(rules)})["rules"]]


def fired(control, rule_id):
    return next(rule["fired"] for rule in control.get("/faults")["rules"] if rule["id"] == rule_id)


def _tenant_snapshot(control, lab):
    tenant = control.get("/state?tenant=%s" % lab["tenant_id"])["tenants"][0]
    return tenant["features"], [(user["id"], user["mobilePhone"], user["alternateMobilePhones"], user["dirSyncOverrides"])
                                for user in tenant["users"]]


def test_check_mode_writes_the_same_report_and_changes_nothing(compare, control, lab):
    _result, report = compare()
    before = (_tenant_snapshot(control, lab), ldap_users(lab))
    checked_result, checked = compare(check=True)
    after = (_tenant_snapshot(control, lab), ldap_users(lab))
    assert checked["rows"] == report["rows"]
    assert checked_result["changed"] is False
    assert after == before


@pytest.mark.usefixtures("faults")
@pytest.mark.parametrize("status, retry_after, seed", [(429, "0.25", 7), (503, None, 11)])
def test_throttled_and_failing_pages_give_the_same_report(compare, control, status, retry_after, seed):
    _result, clean = compare(page_size=20)
    rule, = add_faults(control, {"match": {"method": "GET", "path": USERS_LIST}, "action": "status", "status": status,
                                 "retry_after": retry_after, "rate": 0.2, "seed": seed})
    _result, faulty = compare(page_size=20)
    assert faulty["rows"] == clean["rows"]
    assert faulty["counts"] == clean["counts"]
    assert fired(control, rule) >= 1


@pytest.mark.usefixtures("faults")
def test_token_expiring_mid_paging_is_refreshed(compare, control):
    _result, clean = compare(page_size=20)
    pages = -(-clean["entra_users"] // 20)
    lifetime, latency = 2, 0.5
    assert pages * latency > 2 * lifetime, "too few pages for the token to expire; lower page_size"
    short_tokens, slow_pages = add_faults(
        control, {"match": {"method": "POST", "path": r"/oauth2/v2\.0/token$"}, "action": "token_lifetime", "seconds": lifetime},
        {"match": {"method": "GET", "path": USERS_LIST}, "action": "latency", "seconds": latency})
    _result, slow = compare(page_size=20)
    assert slow["rows"] == clean["rows"]
    assert fired(control, slow_pages) >= pages  # the pages outlived the first token, so it was refreshed
    assert fired(control, short_tokens) >= 2

"""phone_compare in real ansible-playbook runs against the lab.

The expectation is derived from the lab itself: the tenant's synced users from the control API's
state dump and the users of the sync scope from our own LDAP read, paired by anchor, SID or
on-premises UPN. Nothing here changes AD or the tenant; fault rules are cleared after each test.
"""

import base64
import json
import re
import ssl

import ldap3
import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils._identity import sid_bytes_to_string
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
    """Users of the sync scope as the lab's DC has them: {dn: {anchor, sid, upn, mobile}}."""
    config = lab["ldap"]
    tls = ldap3.Tls(ca_certs_file=config["ca_file"], validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(config["server"], port=config["ldaps_port"], use_ssl=True, tls=tls, get_info=ldap3.NONE)
    connection = ldap3.Connection(server, user=config["username"], password=config["password"], auto_bind=True, read_only=True)
    users = {}
    try:
        for base in config["sync_scope"]:
            for item in connection.extend.standard.paged_search(base, USER_FILTER, attributes=[
                    "objectGUID", "mS-DS-ConsistencyGuid", "objectSid", "userPrincipalName", "mobile"], paged_size=500, generator=True):
                if item.get("type") != "searchResEntry":
                    continue
                raw = item["raw_attributes"]
                anchor = (raw.get("mS-DS-ConsistencyGuid") or raw["objectGUID"])[0]
                users[item["dn"]] = {
                    "anchor": base64.b64encode(anchor).decode("ascii"),
                    "sid": sid_bytes_to_string(raw["objectSid"][0]),
                    "upn": raw["userPrincipalName"][0].decode("utf-8").lower() if raw.get("userPrincipalName") else None,
                    "mobile": raw["mobile"][0].decode("utf-8").strip() if raw.get("mobile") else None,
                }
    finally:
        connection.unbind()
    return users


def synced_users(control, lab):
    tenant = control.get("/state?tenant=%s" % lab["tenant_id"])["tenants"][0]
    return [user for user in tenant["users"] if user.get("onPremisesSyncEnabled") is True]


def _digits(number):
    return re.sub(r"[^0-9+]", "", number)


def expected_classes(ad_users, entra_users):
    """{("ad", dn) or ("entra", id): class} for every user, from the two directories' raw data."""
    expected = {}
    named = set()
    for dn, user in ad_users.items():
        partners = {entra["id"] for entra in entra_users
                    if entra["onPremisesImmutableId"] == user["anchor"] or entra["onPremisesSecurityIdentifier"] == user["sid"]
                    or (user["upn"] and (entra["onPremisesUserPrincipalName"] or "").lower() == user["upn"])}
        named |= partners
        if not partners:
            expected[("ad", dn)] = "only_in_ad"
        elif len(partners) > 1:
            expected[("ad", dn)] = "ambiguous"
        else:
            cloud = next(entra for entra in entra_users if entra["id"] in partners)["mobilePhone"] or None
            if user["mobile"] == (cloud.strip() if cloud else None):
                expected[("ad", dn)] = "in_sync"
            elif user["mobile"] and cloud and _digits(user["mobile"]) == _digits(cloud):
                expected[("ad", dn)] = "format_differs"
            else:
                expected[("ad", dn)] = "value_differs"
    for entra in entra_users:
        if entra["id"] not in named:
            expected[("entra", entra["id"])] = "only_in_entra"
    return expected


def reported_classes(report):
    return {(("entra", row["EntraId"]) if row["Class"] == "only_in_entra" else ("ad", row["DistinguishedName"])): row["Class"]
            for row in report["rows"]}


def test_report_lists_exactly_the_users_the_lab_says_differ(compare, control, lab):
    expected = expected_classes(ldap_users(lab), synced_users(control, lab))
    result, report = compare()
    differing = {key: cls for key, cls in expected.items() if cls != "in_sync"}
    assert reported_classes(report) == differing
    wanted_counts = {cls: list(expected.values()).count(cls) for cls in report["counts"]}
    assert result["counts"] == report["counts"] == wanted_counts
    missing = [cls for cls in ("value_differs", "format_differs", "only_in_ad", "only_in_entra", "ambiguous") if not wanted_counts[cls]]
    assert not missing, "the seeded lab should have every class; none of %s" % missing
    assert result["changed"] is False
    assert result["tenant_id"] == lab["tenant_id"] == report["tenant_id"]
    assert len(result["differences"]) == len(differing) and result["differences_truncated"] is False
    assert any("otherMobile" in note for note in report["notes"])


def test_users_whose_upn_differs_are_paired_by_anchor(compare, control, lab):
    renamed = {user["id"]: user for user in synced_users(control, lab)
               if user["onPremisesUserPrincipalName"] and user["onPremisesUserPrincipalName"].lower() != user["userPrincipalName"].lower()}
    if not renamed:
        pytest.skip("the lab's tenant has no synced user whose cloud UPN differs from the on-premises one")
    _result, report = compare(in_sync=True)
    rows = {row["EntraId"]: row for row in report["rows"] if row["EntraId"] in renamed}
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

"""The reconcile policy of phone_reconcile: which users get the cloud number in AD, which are left alone, and the backup check."""

import uuid

import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils import _drift
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput
from ansible_collections.entraid.dirsync.plugins.module_utils import _backup, _identity, _reconcile

PARAMS = dict(clear_when_cloud_empty=False, include_format_differences=False, exclude_upns=[], exclude_ous=[], exclude_groups=[])


def ad(name, mobile, ou="OU=Sales,OU=Sync,DC=lab,DC=test", upn=None):
    return _drift.ADUser(dn="CN=%s,%s" % (name, ou), upn=upn or "%s@lab.test" % name, sam=name,
                         guid=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), anchor="anchor-" + name,
                         sid="S-1-5-21-1-2-3-%d" % (sum(map(ord, name)) + 1000), mobile=mobile, other_mobile=(), enabled=True)


def entra(user, mobile, upn=None):
    return _drift.EntraUser(id="id-" + user.sam, upn=upn or user.upn, onprem_upn=user.upn, mobile=mobile,
                            immutable_id=user.anchor, sid=user.sid, dn=user.dn)


def population():
    """One user per case; the Entra side of each pairs by anchor."""
    cases = {
        "newer": ("+1 425 555 0100", "+1 425 555 0199"),       # value differs: the cloud number is newer
        "adempty": (None, "+1 206 555 0100"),                   # AD has none: the cloud one is written
        "cloudempty": ("+1 312 555 0100", None),                # the cloud has none: kept by default
        "format": ("+1 646 555 0100", "+16465550100"),          # the same number written differently
        "same": ("+1 737 555 0100", "+1 737 555 0100"),         # in sync
        "renamed": ("+1 415 555 0100", "+1 415 555 0177"),      # cloud UPN differs (unverified suffix)
        "contractor": ("+1 503 555 0100", "+1 503 555 0111"),   # in an OU to exclude
    }
    ad_users, entra_users = [], []
    for name, (ad_mobile, cloud_mobile) in sorted(cases.items()):
        user = ad(name, ad_mobile, ou="OU=Contractors , OU=Sync,DC=lab,DC=test" if name == "contractor" else "OU=Sales,OU=Sync,DC=lab,DC=test")
        ad_users.append(user)
        entra_users.append(entra(user, cloud_mobile, upn="renamed@lab.onmicrosoft.com" if name == "renamed" else None))
    only_ad = ad("pending", "+1 202 555 0100")
    ad_users.append(only_ad)
    orphan = ad("departed", None)
    entra_users.append(entra(orphan, "+1 202 555 0199"))
    return _drift.pair_and_classify(ad_users, entra_users).rows


def plan(**params):
    return _reconcile.plan(population(), _reconcile.make_policy(dict(PARAMS, **params)), params.pop("excluded", frozenset()))


def names(items):
    return sorted(item["user_principal_name"].split("@")[0] for item in items)


def reasons(skipped):
    return {item["user_principal_name"].split("@")[0]: item["reason"] for item in skipped}


def test_safe_defaults_write_only_real_differences_with_a_cloud_number():
    changes, skipped = plan()
    assert names(changes) == ["adempty", "contractor", "newer", "renamed"]
    newer = [change for change in changes if change["user_principal_name"] == "newer@lab.test"][0]
    assert newer["mobile_in_ad"] == "+1 425 555 0100" and newer["mobile_in_entra"] == "+1 425 555 0199"
    assert newer["object_guid"] == str(uuid.uuid5(uuid.NAMESPACE_DNS, "newer"))
    # In sync, only in AD and only in Entra ID are never touched.
    assert reasons(skipped) == {"cloudempty": "cloud_empty", "format": "format_only"}


def test_clearing_and_format_differences_are_opt_in():
    changes, skipped = plan(clear_when_cloud_empty=True, include_format_differences=True)
    assert names(changes) == ["adempty", "cloudempty", "contractor", "format", "newer", "renamed"]
    assert [change["mobile_in_entra"] for change in changes if change["user_principal_name"] == "cloudempty@lab.test"] == [None]
    assert skipped == []


def test_exclusions_by_upn_either_side_ou_and_group():
    excluded = frozenset([str(uuid.uuid5(uuid.NAMESPACE_DNS, "adempty"))])
    changes, skipped = plan(exclude_upns=["NEWER@lab.test", "renamed@LAB.onmicrosoft.com"],
                            exclude_ous=["ou=contractors,ou=sync,dc=lab,dc=test"], excluded=excluded)
    assert changes == []
    assert reasons(skipped) == {"newer": "excluded_upn", "renamed": "excluded_upn", "contractor": "excluded_ou",
                                "adempty": "excluded_group", "cloudempty": "cloud_empty", "format": "format_only"}


def test_an_excluded_user_is_reported_as_excluded_even_when_also_format_only():
    _changes, skipped = plan(exclude_upns=["format@lab.test"])
    assert reasons(skipped)["format"] == "excluded_upn"


@pytest.mark.parametrize("dn, ou, inside", [
    ("CN=a,OU=Sales,DC=lab,DC=test", "OU=Sales,DC=lab,DC=test", True),
    ("CN=a,OU=Sales,DC=lab,DC=test", "ou=sales, dc=lab, dc=test", True),
    ("CN=a,OU=Presales,DC=lab,DC=test", "OU=Sales,DC=lab,DC=test", False),
    ("OU=Sales,DC=lab,DC=test", "OU=Sales,DC=lab,DC=test", True),
])
def test_ou_membership_is_a_dn_suffix_on_rdn_boundaries(dn, ou, inside):
    assert _identity.in_container(dn, ou) is inside


def backup_of(changes, **overrides):
    return {change["object_guid"]: {"mobile": overrides.get(change["user_principal_name"], change["mobile_in_ad"])} for change in changes}


def test_a_backup_holding_every_user_with_the_current_numbers_passes():
    changes, _skipped = plan()
    _reconcile.check_backup(changes, backup_of(changes), "/b.json")


def test_a_backup_missing_a_user_is_refused_naming_the_user():
    changes, _skipped = plan()
    backup = backup_of(changes)
    del backup[str(uuid.uuid5(uuid.NAMESPACE_DNS, "newer"))]
    with pytest.raises(InvalidInput, match=r"/b.json does not cover.*1 user\(s\) are not in it: newer@lab.test.*Nothing was changed") as caught:
        _reconcile.check_backup(changes, backup, "/b.json")
    assert len(caught.value.details["missing"]) == 1


def test_a_backup_older_than_the_current_ad_number_is_refused():
    changes, _skipped = plan()
    backup = backup_of(changes, **{"renamed@lab.test": "+1 415 555 0000"})
    with pytest.raises(InvalidInput, match=r"another mobile number in AD than in the backup: renamed@lab.test .*'\+1 415 555 0000' in the backup"):
        _reconcile.check_backup(changes, backup, "/b.json")


# -- writing ------------------------------------------------------------------------------

class FakeAD:
    """Records writes; a user looked up again would make the run plan from other values than the backup was checked against."""

    def __init__(self):
        self.modified = []

    def resolve_users(self, identities, attributes):
        raise AssertionError("looked users up again: %r" % (identities,))

    def modify(self, dn, changes, **_hint):
        self.modified.append((dn, changes))


def written(cloud_numbers, check_mode=False):
    """Pair one user per cloud number (AD has "+1 000" and otherMobile "+9"), plan and write -> (fake AD, changes, results)."""
    ad_users, entra_users = [], []
    for name, cloud in cloud_numbers.items():
        user = ad(name, "+1 000")._replace(other_mobile=("+9",))
        ad_users.append(user)
        entra_users.append(entra(user, cloud))
    rows = _drift.pair_and_classify(ad_users, entra_users).rows
    changes, _skipped = _reconcile.plan(rows, _reconcile.make_policy(PARAMS))
    fake = FakeAD()
    return fake, changes, _reconcile.write_cloud_numbers(fake, changes, rows, check_mode=check_mode)


def test_users_are_written_from_the_values_the_comparison_read():
    fake, changes, results = written({"alice": "+1 425", "bob": "+1 206"})
    assert [change["user_principal_name"] for change in changes] == ["alice@lab.test", "bob@lab.test"]
    assert fake.modified == [("CN=alice,OU=Sales,OU=Sync,DC=lab,DC=test", {"mobile": ("replace", ["+1 425"])}),
                             ("CN=bob,OU=Sales,OU=Sync,DC=lab,DC=test", {"mobile": ("replace", ["+1 206"])})]
    alice = results[0]
    # "before" is the value the backup was checked against (mobile_in_ad), otherMobile as the comparison read it.
    assert alice["before"] == {"mobile": changes[0]["mobile_in_ad"], "other_mobile": ["+9"]} == {"mobile": "+1 000", "other_mobile": ["+9"]}
    assert alice["after"] == {"mobile": "+1 425", "other_mobile": ["+9"]}
    assert alice["identity"] == str(uuid.uuid5(uuid.NAMESPACE_DNS, "alice")) and alice["user_principal_name"] == "alice@lab.test"
    assert alice["changed"] is True and alice["error"] is None


def test_check_mode_writes_nothing():
    fake, _changes, results = written({"alice": "+1 425"}, check_mode=True)
    assert fake.modified == [] and results[0]["changed"] is True


@pytest.mark.parametrize("cloud, words", [("+1 425\x07", "control character U+0007"), ("9" * 70, "70 characters long")])
def test_a_cloud_number_ad_cannot_take_fails_that_user_only(cloud, words):
    fake, _changes, results = written({"alice": "+1 425", "bad": cloud, "carol": "+1 312"})
    assert [dn for dn, _change in fake.modified] == ["CN=alice,OU=Sales,OU=Sync,DC=lab,DC=test", "CN=carol,OU=Sales,OU=Sync,DC=lab,DC=test"]
    bad = results[1]
    assert bad["user_principal_name"] == "bad@lab.test" and bad["changed"] is False and bad["dn"] == "CN=bad,OU=Sales,OU=Sync,DC=lab,DC=test"
    assert bad["error"].startswith("mobilePhone of the Entra ID user bad@lab.test (id-bad): ")
    assert words in bad["error"] and "exclude_upns" in bad["error"]
    # Nothing about a users option the task does not have, nor YAML quoting.
    assert "users[" not in bad["error"] and "YAML" not in bad["error"]
    assert results[0]["changed"] is True and results[2]["changed"] is True


# -- accounting: every cloud number the full sync would overwrite or delete ends in exactly one place ----------------

def account(rows, changes=None, skipped=None, failed=(), **kwargs):
    policy = _reconcile.make_policy(PARAMS)
    if changes is None:
        changes, skipped = _reconcile.plan(rows, policy)
    results = [{"error": "refused" if change["user_principal_name"].split("@")[0] in failed else None} for change in changes]
    return _reconcile.account(rows, changes, skipped, results, **kwargs)


def test_every_cloud_number_at_risk_is_written_skipped_or_unresolved():
    rows = population()
    result = account(rows)
    counts = result["counts"]
    # At risk: newer, adempty, format, renamed, contractor (paired, numbers differ) and departed (only in Entra ID).
    # cloudempty has no cloud number to lose; same is in sync; pending has no cloud object.
    assert counts["at_risk"] == 6
    assert counts["at_risk"] == counts["written"] + counts["skipped"] + counts["unresolved"]
    assert (counts["written"], counts["skipped"], counts["unresolved"]) == (4, 1, 1)
    assert [(item["user_principal_name"], item["reason"]) for item in result["not_carried"]] == \
        [("format@lab.test", "format_only"), ("departed@lab.test", "only_in_entra")]
    unresolved, = result["unresolved"]
    assert (unresolved["entra_id"], unresolved["mobile_in_entra"], unresolved["acknowledged"]) == ("id-departed", "+1 202 555 0199", False)
    assert (counts["acknowledged"], counts["unacknowledged"]) == (0, 1)


@pytest.mark.parametrize("acknowledge, accept_all, acknowledged", [
    (["DEPARTED@lab.test"], False, True), (["id-departed"], False, True), (["someone@lab.test"], False, False), ([], True, True)])
def test_unresolved_numbers_are_acknowledged_by_upn_id_or_all(acknowledge, accept_all, acknowledged):
    result = account(population(), acknowledge=acknowledge, accept_all=accept_all)
    assert result["unresolved"][0]["acknowledged"] is acknowledged
    assert result["counts"]["unacknowledged"] == (0 if acknowledged else 1)


def test_a_failed_write_is_unresolved():
    result = account(population(), failed=("newer",))
    assert ("newer@lab.test", "write_failed") in [(item["user_principal_name"], item["reason"]) for item in result["unresolved"]]
    assert result["counts"]["written"] == 3


def test_ambiguous_and_hinted_users_are_unresolved_once_per_cloud_object():
    owner, claimer = ad("owner", "+1 1"), ad("claimer", "+1 5")
    claimer = claimer._replace(anchor=owner.anchor)
    changed = ad("changed", "+1 7")
    old_cloud = entra(changed, "+1 8")._replace(immutable_id="old-anchor")
    rows = _drift.pair_and_classify([owner, claimer, changed], [entra(owner, "+1 2"), old_cloud]).rows
    result = account(rows)
    assert sorted((item["entra_id"], item["reason"]) for item in result["unresolved"]) == [
        ("id-changed", "hinted"), ("id-owner", "ambiguous")]
    assert result["counts"]["written"] == 0


def test_the_backup_must_keep_every_cloud_number_at_risk():
    rows = population()
    keeps = [{"id": row.EntraId, "mobile": row.MobileInEntra} for row in rows if row.EntraId]
    _reconcile.check_backup_keeps(rows, keeps, "/b.json")
    lacking = [record for record in keeps if record["id"] != "id-departed"]
    with pytest.raises(_backup.BackupRefused, match="departed@lab.test"):
        _reconcile.check_backup_keeps(rows, lacking, "/b.json")


def test_a_user_moved_out_of_the_backups_search_bases_is_refused():
    changes, _skipped = plan()
    with pytest.raises(_backup.BackupRefused, match="outside its search bases") as info:
        _reconcile.check_backup(changes, backup_of(changes), "/b.json", ["OU=Contractors,OU=Sync,DC=lab,DC=test"])
    assert "Nothing was changed" in str(info.value)

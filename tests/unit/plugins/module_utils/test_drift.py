"""Unit tests of _drift: record building, streaming reads, pairing and classification, report files."""

import csv
import gc
import json
import os
import stat
import threading
import uuid

import pytest
import yaml

from ansible_collections.entraid.dirsync.plugins.doc_fragments import scope
from ansible_collections.entraid.dirsync.plugins.module_utils import _ad, _drift, _identity
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import ADError, InvalidInput


def ad(name, mobile=None, anchor=None, sid=None, upn=None, other=(), enabled=True):
    return _drift.ADUser(dn="CN=%s,OU=Sync,DC=lab,DC=test" % name, upn=upn or "%s@lab.test" % name, sam=name,
                         guid=str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), anchor=anchor or "anchor-" + name,
                         sid=sid or "S-1-5-21-1-2-3-%d" % (sum(map(ord, name)) + 1000), mobile=mobile,
                         other_mobile=tuple(other), enabled=enabled)


def entra(user, mobile=None, anchor=None, sid=None, upn=None, onprem_upn=None, entra_id=None):
    """The Entra side of ``user`` (an ADUser) as the sync engine would have written it; override what should differ."""
    return _drift.EntraUser(id=entra_id or "id-" + user.sam, upn=upn or user.upn, onprem_upn=onprem_upn or user.upn, mobile=mobile,
                            immutable_id=anchor or user.anchor, sid=sid or user.sid, dn=user.dn)


def classes(drift):
    return {(row.UserPrincipalName, row.Class) for row in drift.rows}


# -- filters and records -------------------------------------------------------------------

def test_user_filter_ands_the_extra_filter_with_or_without_parentheses():
    assert _drift.user_filter(None) == _drift.USER_FILTER
    assert _drift.user_filter("department=Sales") == "(&%s(department=Sales))" % _drift.USER_FILTER
    assert _drift.user_filter(" (|(a=1)(b=2)) ") == "(&%s(|(a=1)(b=2)))" % _drift.USER_FILTER


@pytest.mark.parametrize("bad", ["(department=Sales", "(a=1))(", "a=1)"])
def test_user_filter_rejects_unbalanced_parentheses(bad):
    with pytest.raises(InvalidInput) as info:
        _drift.user_filter(bad)
    assert "unbalanced" in str(info.value) and "(department=Sales)" in str(info.value)


def _entry(guid, consistency=None, uac="512", mobile=(), other=(), sid=None):
    return {"dn": "CN=x,DC=lab,DC=test", "objectguid": [guid.bytes_le], "ms-ds-consistencyguid": [consistency.bytes_le] if consistency else [],
            "objectsid": [_identity.sid_string_to_bytes(sid or "S-1-5-21-10-20-30-1105")], "userprincipalname": ["x@lab.test"],
            "samaccountname": ["x"], "distinguishedname": ["CN=x,DC=lab,DC=test"], "mobile": list(mobile), "othermobile": list(other),
            "useraccountcontrol": [uac]}


def test_ad_record_anchor_is_consistency_guid_when_set_else_object_guid():
    guid, consistency = uuid.uuid4(), uuid.uuid4()
    plain = _drift.ad_user_from_entry(_entry(guid))
    assert plain.guid == str(guid)
    assert plain.anchor == _identity.guid_to_immutable_id(str(guid))
    with_consistency = _drift.ad_user_from_entry(_entry(guid, consistency))
    assert with_consistency.guid == str(guid)
    assert with_consistency.anchor == _identity.guid_to_immutable_id(str(consistency))


def test_ad_record_keeps_phone_values_exactly_as_ad_holds_them():
    record = _drift.ad_user_from_entry(_entry(uuid.uuid4(), uac="514", mobile=["+1 206 555 0166 "],
                                              other=["+1 425 555 0100", " ", "+1\t425"]))
    assert record.sid == "S-1-5-21-10-20-30-1105"
    assert record.enabled is False
    assert record.mobile == "+1 206 555 0166 "
    assert record.other_mobile == ("+1 425 555 0100", " ", "+1\t425")
    assert _drift.ad_user_from_entry(_entry(uuid.uuid4(), uac="512", mobile=["+1 1"])).enabled is True


class FakeAD:
    def __init__(self, pages):
        self.pages = pages
        self.searches = []

    def paged_search(self, base, ldap_filter, attributes, page_size=1000):
        self.searches.append((base, ldap_filter, tuple(attributes), page_size))
        yield from self.pages.get(base, [])


def test_read_ad_users_reads_every_base_once_per_user():
    shared, only = uuid.uuid4(), uuid.uuid4()
    fake = FakeAD({"OU=Sync": [_entry(shared), _entry(only)], "OU=Sales,OU=Sync": [_entry(shared)]})
    users = list(_drift.read_ad_users(fake, ["OU=Sync", "OU=Sales,OU=Sync"], "(department=Sales)"))
    assert [user.guid for user in users] == [str(shared), str(only)]
    assert [search[0] for search in fake.searches] == ["OU=Sync", "OU=Sales,OU=Sync"]
    assert fake.searches[0][1] == "(&%s(department=Sales))" % _drift.USER_FILTER
    assert set(fake.searches[0][2]) == set(_drift.AD_ATTRIBUTES)


def _matches(ldap_filter, sam):
    """Evaluates the filters _ad.partition_filters makes (AND, NOT and sAMAccountName<=bound), as AD orders names."""
    if ldap_filter.startswith("(&"):
        inner, parts, depth, start = ldap_filter[2:-1], [], 0, 0
        for position, char in enumerate(inner):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0:
                parts.append(inner[start:position + 1])
                start = position + 1
        return all(_matches(part, sam) for part in parts)
    if ldap_filter.startswith("(!"):
        return not _matches(ldap_filter[2:-1], sam)
    bound = ldap_filter[len("(sAMAccountName<="):-1]
    return sam is not None and sam.casefold() <= bound


@pytest.mark.parametrize("count", [2, 3, 4, 8])
def test_partitions_place_every_user_in_exactly_one_part(count):
    filters = _ad.partition_filters(count)
    assert len(filters) == count
    names = ["a", "aaron", "m", "mary", "Zoe", "zz", "0day", "émile", "_svc", "", None, "Ω", "n"]
    for name in names:
        assert sum(_matches(part, name) for part in filters) == 1, (name, filters)
    assert _ad.partition_filters(1) == [None]


class PartitionedAD(FakeAD):
    """A domain controller holding ``users`` (entries) under one base, evaluating the partition filters; every
    connection opened from it is recorded."""

    def __init__(self, users, fail_on=None, opened=None):
        super().__init__({})
        self.users, self.fail_on = users, fail_on
        self.opened = opened if opened is not None else []
        self.closed = False
        self.lock = threading.Lock()

    def another_connection(self):
        other = PartitionedAD(self.users, self.fail_on, self.opened)
        self.opened.append(other)
        return other

    def close(self):
        self.closed = True

    def paged_search(self, base, ldap_filter, attributes, page_size=1000):
        with self.lock:
            self.searches.append((base, ldap_filter, tuple(attributes), page_size))
        part = ldap_filter[len("(&%s" % _drift.USER_FILTER):-1] or None
        for entry in self.users:
            if part is None or _matches(part, entry["samaccountname"][0]):
                if self.fail_on and entry["samaccountname"][0] == self.fail_on:
                    raise ADError("the connection to the domain controller was lost")
                yield entry


def _named_entry(name):
    entry = _entry(uuid.uuid5(uuid.NAMESPACE_DNS, name))
    entry.update(dn="CN=%s,OU=Sync,DC=lab,DC=test" % name, samaccountname=[name])
    return entry


def test_a_partitioned_read_gives_every_user_once_and_closes_the_connections_it_opened():
    names = ["%s%d" % (letter, index) for letter in "abcmnoxyz" for index in range(30)] + ["émile", "0day"]
    fake = PartitionedAD([_named_entry(name) for name in names])
    users = list(_drift.read_ad_users(fake, ["OU=Sync"], connections=3, page_size=7))
    assert sorted(user.dn for user in users) == sorted("CN=%s,OU=Sync,DC=lab,DC=test" % name for name in names)
    assert len(fake.opened) == 2 and all(other.closed for other in fake.opened) and not fake.closed
    searches = fake.searches + [search for other in fake.opened for search in other.searches]
    assert len(searches) == 3 and all(set(search[2]) == set(_drift.AD_ATTRIBUTES) for search in searches)


def test_a_partitioned_read_that_fails_raises_and_stops_every_reader():
    names = ["%s%d" % (letter, index) for letter in "abmnyz" for index in range(50)]
    fake = PartitionedAD([_named_entry(name) for name in names], fail_on="y3")
    with pytest.raises(ADError, match="lost"):
        list(_drift.read_ad_users(fake, ["OU=Sync"], connections=2, page_size=5))
    assert all(other.closed for other in fake.opened)
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("ad-read-")]


def test_check_scope_refuses_a_read_connection_count_out_of_range():
    with pytest.raises(InvalidInput, match="ad_read_connections must be between 1 and 8"):
        _drift.check_scope({"search_bases": ["OU=Sync"], "ldap_filter": None, "graph_page_size": 999, "ad_read_connections": 9})


class FakeGraph:
    def __init__(self, items):
        self.items = items
        self.calls = []

    def iter_items(self, path, params=None, headers=None):
        self.calls.append((path, params, headers))
        yield from self.items


def test_read_entra_users_asks_for_synced_users_only_with_the_needed_properties():
    graph = FakeGraph([{"id": "1", "userPrincipalName": "a@lab.onmicrosoft.com", "onPremisesUserPrincipalName": "a@contoso.example",
                        "mobilePhone": "", "onPremisesImmutableId": "QUJD", "onPremisesSecurityIdentifier": "S-1-5-21-1-2-3-4",
                        "onPremisesDistinguishedName": "CN=a"}])
    users = list(_drift.read_entra_users(graph))
    assert users == [_drift.EntraUser("1", "a@lab.onmicrosoft.com", "a@contoso.example", "", "QUJD", "S-1-5-21-1-2-3-4", "CN=a")]
    path, params, headers = graph.calls[0]
    assert path == "users" and headers is None  # a plain filter: no advanced query needed
    assert params == {"$filter": "onPremisesSyncEnabled eq true", "$top": "999", "$select": ",".join(_drift.ENTRA_SELECT)}


SCOPE = {"search_bases": [" OU=Sync,DC=lab,DC=test ", ""], "ldap_filter": None, "graph_page_size": 999}


def test_check_scope_returns_the_non_blank_bases():
    assert _drift.check_scope(SCOPE) == ["OU=Sync,DC=lab,DC=test"]


def test_the_scope_fragment_documents_the_scope_options():
    documented = yaml.safe_load(scope.ModuleDocFragment.DOCUMENTATION)["options"]
    spec = _drift.scope_argument_spec()
    assert sorted(documented) == sorted(spec)
    for name, option in spec.items():
        assert {key: documented[name].get(key) for key in option} == option, name


@pytest.mark.parametrize("change, words", [
    ({"search_bases": ["", "  "]}, "search_bases is empty"),
    ({"graph_page_size": 1000}, "graph_page_size must be between 1 and 999, got 1000"),
    ({"graph_page_size": 0}, "graph_page_size must be between 1 and 999, got 0"),
    ({"ldap_filter": "(department=Sales"}, "unbalanced parentheses"),
])
def test_check_scope_refuses_what_would_fail_later(change, words):
    with pytest.raises(InvalidInput, match=words):
        _drift.check_scope(dict(SCOPE, **change))


# -- concurrency ------------------------------------------------------------------------------

def test_read_concurrently_overlaps_both_reads():
    # Each side waits for the other to have started: this only completes when they run at the same time.
    started = [threading.Event(), threading.Event()]

    def records(me, other):
        started[me].set()
        assert started[other].wait(5), "the reads did not overlap"
        yield from range(me * 10, me * 10 + 3)

    assert _drift.read_concurrently(records(0, 1), records(1, 0)) == ([0, 1, 2], [10, 11, 12])


def test_read_concurrently_raises_the_failure_and_stops_the_other_read():
    produced = []

    def endless():
        number = 0
        while True:
            number += 1
            produced.append(number)
            yield number

    def failing():
        yield 1
        raise ADError("the DC went away")

    with pytest.raises(ADError, match="the DC went away"):
        _drift.read_concurrently(failing(), endless())
    assert produced  # it ran, and it stopped (otherwise this test would never finish)


# -- pairing and classification -------------------------------------------------------------

def test_classes_of_paired_users():
    same, fmt, differs, cleared, both_empty = ad("same", "+1 425 555 0100"), ad("fmt", "+1 425 555 0101"), ad("differs", "+14255550102"), \
        ad("cleared", "+14255550103"), ad("empty", None)
    drift = _drift.pair_and_classify(
        [same, fmt, differs, cleared, both_empty],
        [entra(same, "+1 425 555 0100"), entra(fmt, "+14255550101"), entra(differs, "+14255550199"), entra(cleared, ""),
         entra(both_empty, "  ")],
        include_in_sync=True)
    assert classes(drift) == {("same@lab.test", "in_sync"), ("fmt@lab.test", "format_differs"), ("differs@lab.test", "value_differs"),
                              ("cleared@lab.test", "value_differs"), ("empty@lab.test", "in_sync")}
    assert drift.counts == {"in_sync": 2, "format_differs": 1, "value_differs": 2, "only_in_ad": 0, "only_in_entra": 0, "ambiguous": 0}
    assert {row.MatchedBy for row in drift.rows} == {"anchor"}
    cleared_row = next(row for row in drift.rows if row.UserPrincipalName == "cleared@lab.test")
    assert "Entra ID has no mobile number" in cleared_row.Note


def test_in_sync_users_are_counted_but_not_listed_by_default():
    user = ad("same", "+1")
    drift = _drift.pair_and_classify([user], [entra(user, "+1")])
    assert drift.rows == [] and drift.counts["in_sync"] == 1


def test_only_in_ad_and_only_in_entra():
    pending, departed = ad("pending", "+1"), ad("departed", "+2")
    drift = _drift.pair_and_classify([pending], [entra(departed, "+2")])
    assert classes(drift) == {("pending@lab.test", "only_in_ad"), ("departed@lab.test", "only_in_entra")}
    only_entra = next(row for row in drift.rows if row.Class == "only_in_entra")
    assert only_entra.EntraId == "id-departed" and only_entra.MobileInEntra == "+2" and only_entra.EnabledInAD is None


def test_user_whose_cloud_upn_differs_is_paired_by_anchor():
    user = ad("jdoe", "+1", upn="jdoe@contoso.example")
    cloud = entra(user, "+1", upn="jdoe@lab.onmicrosoft.com")
    drift = _drift.pair_and_classify([user], [cloud], include_in_sync=True)
    row, = drift.rows
    assert (row.Class, row.MatchedBy, row.UserPrincipalName, row.UserPrincipalNameInEntra) == \
        ("in_sync", "anchor", "jdoe@contoso.example", "jdoe@lab.onmicrosoft.com")


def by_upn(drift):
    return {row.UserPrincipalName: row for row in drift.rows}


def test_sid_and_upn_never_pair_they_only_hint():
    """An anchor changed after the sync: the sync engine would create a new cloud user and delete the old one."""
    user = ad("jdoe", "+1", upn="JDoe@Contoso.example")
    old = entra(user, "+2", anchor="old-anchor", upn="jdoe@lab.onmicrosoft.com", onprem_upn="jdoe@contoso.example", entra_id="e-old")
    drift = _drift.pair_and_classify([user], [old])
    assert drift.counts == {"in_sync": 0, "format_differs": 0, "value_differs": 0, "only_in_ad": 1, "only_in_entra": 1, "ambiguous": 0}
    ad_row = next(row for row in drift.rows if row.Class == "only_in_ad")
    cloud_row = next(row for row in drift.rows if row.Class == "only_in_entra")
    assert (ad_row.MatchedBy, ad_row.HintMatchedBy, ad_row.HintUserPrincipalName, ad_row.HintId) == \
        ("", "sid,upn", "jdoe@lab.onmicrosoft.com", "e-old")
    assert (cloud_row.HintMatchedBy, cloud_row.HintUserPrincipalName, cloud_row.HintId) == ("sid,upn", user.upn, user.guid)
    assert cloud_row.MobileInEntra == "+2" and "anchor changed" in cloud_row.Note


def test_a_live_user_sharing_a_sid_with_a_departed_object_stays_paired_and_the_departed_object_gets_its_row():
    live, departed = ad("live", "+1"), ad("departed", "+2")
    stale = entra(departed, "+2", sid=live.sid)
    drift = _drift.pair_and_classify([live], [entra(live, "+9"), stale])
    rows = by_upn(drift)
    assert rows["live@lab.test"].Class == "value_differs"
    assert (rows["departed@lab.test"].Class, rows["departed@lab.test"].HintMatchedBy) == ("only_in_entra", "sid")
    assert rows["departed@lab.test"].HintUserPrincipalName == "live@lab.test"


def test_a_user_renamed_to_a_departed_users_upn_keeps_its_real_difference():
    renamed = ad("renamed", "+1", upn="departed@lab.test")
    departed = ad("departed", "+3")
    drift = _drift.pair_and_classify([renamed], [entra(renamed, "+2", upn="renamed@lab.test", onprem_upn="renamed@lab.test"),
                                                 entra(departed, "+3")])
    classes_seen = sorted((row.Class, row.EntraId) for row in drift.rows)
    assert classes_seen == [("value_differs", "id-renamed"), ("only_in_entra", "id-departed")] or \
        classes_seen == [("only_in_entra", "id-departed"), ("value_differs", "id-renamed")]
    departed_row = next(row for row in drift.rows if row.Class == "only_in_entra")
    assert (departed_row.HintMatchedBy, departed_row.HintId) == ("upn", renamed.guid)


def test_every_ad_user_claiming_one_anchor_is_ambiguous_with_the_cloud_object():
    owner = ad("owner", "+1")
    claimer = ad("claimer", "+5", anchor=owner.anchor)  # its mS-DS-ConsistencyGuid copied from the owner's anchor
    claimer_cloud = entra(claimer, "+6", anchor="claimer-old-anchor")
    drift = _drift.pair_and_classify([owner, claimer], [entra(owner, "+2"), claimer_cloud])
    rows = by_upn(drift)
    assert rows["owner@lab.test"].Class == rows["claimer@lab.test"].Class == "ambiguous"
    assert rows["owner@lab.test"].EntraId == rows["claimer@lab.test"].EntraId == "id-owner"
    assert rows["owner@lab.test"].MobileInEntra == "+2"
    # The claimer's own cloud object is reported too, hinted by its SID and UPN.
    orphan = next(row for row in drift.rows if row.Class == "only_in_entra")
    assert (orphan.EntraId, orphan.MobileInEntra, orphan.HintMatchedBy) == ("id-claimer", "+6", "sid,upn")


def test_two_cloud_objects_with_one_anchor_are_ambiguous():
    user = ad("jdoe", "+1")
    drift = _drift.pair_and_classify([user], [entra(user, "+1", entra_id="e1"), entra(user, "+2", entra_id="e2")])
    row, = drift.rows
    assert row.Class == "ambiguous" and "e1" in row.Note and "e2" in row.Note
    assert drift.counts["only_in_entra"] == 0


def test_unicode_digits_are_a_format_difference():
    arabic, fullwidth = ad("arabic", "+\u0661 \u0664\u0662\u0665 \u0665\u0665\u0665 \u0660\u0661\u0660\u0660"), \
        ad("fullwidth", "\uff0b\uff11 \uff14\uff12\uff15 \uff15\uff15\uff15 \uff10\uff11\uff10\uff11")
    drift = _drift.pair_and_classify([arabic, fullwidth], [entra(arabic, "+14255550100"), entra(fullwidth, "+14255550101")])
    assert {row.Class for row in drift.rows} == {"format_differs"}


def test_rows_are_sorted_by_class_then_upn():
    users = [ad(name, "+%d" % index) for index, name in enumerate(["zed", "amy", "bob"])]
    clouds = [entra(users[0], "+9"), entra(users[1], "+8")]
    drift = _drift.pair_and_classify(users, clouds)
    assert [(row.Class, row.UserPrincipalName) for row in drift.rows] == [
        ("value_differs", "amy@lab.test"), ("value_differs", "zed@lab.test"), ("only_in_ad", "bob@lab.test")]
    assert (drift.ad_users, drift.entra_users) == (3, 2)


# -- report files -------------------------------------------------------------------------------

@pytest.fixture
def rows():
    user = ad("jdoe", "+1 425 555 0100", other=["+1 425 555 0101", "+1 425 555 0102"], upn="jdoe@contoso.example")
    missing = ad("gone", "+2")
    return _drift.pair_and_classify([user], [entra(user, "+14255550199", upn="jdoe@lab.onmicrosoft.com"), entra(missing)]).rows


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_csv_starts_with_adsynctools_columns_and_is_private(tmp_path, rows):
    path = tmp_path / "drift.csv"
    path.write_text("old")
    os.chmod(path, 0o644)
    assert _drift.write_csv(str(path), rows) == str(path)
    assert _mode(path) == 0o600
    with open(path, newline="", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert list(table[0])[:4] == ["UserPrincipalName", "MobileInAD", "MobileInEntra", "OtherMobileInAD"]
    first = table[0]
    assert first["UserPrincipalName"] == "jdoe@contoso.example"
    assert first["UserPrincipalNameInEntra"] == "jdoe@lab.onmicrosoft.com"
    assert first["OtherMobileInAD"] == "+1 425 555 0101;+1 425 555 0102"
    assert (first["Class"], first["EnabledInAD"]) == ("value_differs", "True")
    assert (table[1]["Class"], table[1]["MobileInAD"], table[1]["EnabledInAD"]) == ("only_in_entra", "", "")
    assert os.listdir(tmp_path) == ["drift.csv"]  # no temporary file left behind


def test_json_has_header_and_rows(tmp_path, rows):
    drift = _drift.Drift({"value_differs": 1}, rows, 1, 2)
    header = _drift.report_header(drift, "tenant-1", ["OU=Sync"], None, ("anchor", "sid", "upn"), False)
    path = _drift.write_json(str(tmp_path / "drift.json"), header, rows)
    assert _mode(path) == 0o600
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    assert data["tenant_id"] == "tenant-1" and data["counts"] == {"value_differs": 1}
    assert (data["ad_users"], data["entra_users"]) == (1, 2)
    assert any("otherMobile" in note and "Graph" in note for note in data["notes"])
    assert data["rows"] == [_drift.row_dict(row) for row in rows]
    assert data["rows"][0]["OtherMobileInAD"] == ["+1 425 555 0101", "+1 425 555 0102"]
    empty = _drift.write_json(str(tmp_path / "empty.json"), header, [])
    with open(empty, encoding="utf-8") as handle:
        assert json.load(handle)["rows"] == []


def test_report_in_a_missing_directory_says_what_to_do(tmp_path, rows):
    with pytest.raises(InvalidInput, match="does not exist. Create it first"):
        _drift.write_csv(str(tmp_path / "nowhere" / "drift.csv"), rows)


def test_failed_write_leaves_the_old_report_and_no_temporary_file(tmp_path, rows):
    path = tmp_path / "drift.json"
    path.write_text("previous report")

    class Exploding:
        def items(self):
            raise OSError(28, "No space left on device")

    with pytest.raises(Exception, match="No space left on device"):
        _drift.write_json(str(path), Exploding(), rows)
    assert path.read_text() == "previous report"
    assert os.listdir(tmp_path) == ["drift.json"]


def test_several_hinted_candidates_are_listed_even_without_a_upn():
    cloud_user = ad("jdoe", "+1", upn="jdoe@lab.test")
    twin = ad("twin", "+2", sid=cloud_user.sid)._replace(upn=None)
    same_sid = ad("other", "+3", sid=cloud_user.sid)
    drift = _drift.pair_and_classify([twin, same_sid], [entra(cloud_user, "+9", anchor="gone")])
    row = next(row for row in drift.rows if row.Class == "only_in_entra")
    assert row.HintMatchedBy == "sid;sid"
    assert row.HintUserPrincipalName == ";other@lab.test" and row.HintId == ";".join((twin.guid, same_sid.guid))


def _copy(text):
    return None if text is None else "".join(list(text))  # equal text, another object


def test_shared_text_gives_ad_records_the_entra_objects_of_equal_values_only():
    shared = _drift.SharedText()
    alice, bob, carol = ad("alice", mobile="+1 425 555 0100"), ad("bob", mobile="+1 425 555 0101"), ad("carol")
    cloud = [entra(alice, mobile="+1 425 555 0100"),
             entra(bob, mobile="+1 425 555 0199", upn="bob@contoso.onmicrosoft.com", onprem_upn="bob@lab.test")]
    assert list(shared.entra(cloud)) == cloud
    read = [user._replace(dn=_copy(user.dn), upn=_copy(user.upn), sid=_copy(user.sid), anchor=_copy(user.anchor),
                          mobile=_copy(user.mobile)) for user in (alice, bob, carol)]
    got = list(shared.ad(read))
    assert got == [alice, bob, carol]  # every value as AD gave it
    for mine, theirs in (("dn", "dn"), ("upn", "onprem_upn"), ("sid", "sid"), ("anchor", "immutable_id"), ("mobile", "mobile")):
        assert getattr(got[0], mine) is getattr(cloud[0], theirs), mine
    assert got[1].upn is cloud[1].onprem_upn and got[1].mobile == "+1 425 555 0101" and got[1].mobile is not cloud[1].mobile
    assert got[2] is read[2]  # no counterpart: untouched


def test_pairing_from_a_shared_read_is_the_pairing_of_separate_records():
    users = [ad("u%d" % index, mobile="+1 425 555 01%02d" % index) for index in range(6)]
    cloud = [entra(user, mobile=user.mobile if index % 2 else "+1 206 555 0000") for index, user in enumerate(users[:5])]
    shared = _drift.SharedText()
    list(shared.entra(cloud))
    assert _drift.pair_and_classify(list(shared.ad(users)), cloud) == _drift.pair_and_classify(users, cloud)


def test_shared_text_works_whichever_side_is_read_first():
    shared = _drift.SharedText()
    alice = ad("alice", mobile="+1 425 555 0100")
    assert list(shared.ad([alice])) == [alice]
    cloud = entra(alice, mobile="+1 425 555 0100")
    cloud = cloud._replace(dn=_copy(cloud.dn), sid=_copy(cloud.sid), immutable_id=_copy(cloud.immutable_id), mobile=_copy(cloud.mobile),
                           upn=_copy(cloud.upn), onprem_upn=_copy(cloud.onprem_upn))
    got = list(shared.entra([cloud]))[0]
    assert got == cloud
    assert got.dn is alice.dn and got.sid is alice.sid and got.immutable_id is alice.anchor and got.mobile is alice.mobile
    assert got.onprem_upn is alice.upn and got.upn is not alice.upn  # the cloud UPN is not one of the shared fields


def test_the_collector_is_paused_for_a_run_and_enabled_again_even_when_it_fails():
    assert gc.isenabled()
    with pytest.raises(RuntimeError):
        with _drift.collector_paused():
            assert not gc.isenabled()
            raise RuntimeError("the read failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with _drift.collector_paused():
            pass
        assert not gc.isenabled()  # left as it was
    finally:
        gc.enable()

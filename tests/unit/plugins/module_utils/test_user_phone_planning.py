"""Planning and applying users' phone numbers (_user_phone) with fake AD and Graph clients."""

import base64
import uuid

import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils import _backup, _user_phone
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import (
    ADError, DirsyncError, GraphError, IdentityNotFound, InvalidInput,
)


def spec(directory="ad", **entry):
    entry.setdefault("identity", "alice@lab.test")
    return _user_phone.parse_spec(entry, directory)


def ad_entry(dn="CN=Alice,DC=lab,DC=test", mobile=None, other=()):
    return {"dn": dn, "mobile": [mobile] if mobile else [], "othermobile": list(other)}


# -- parsing ----------------------------------------------------------------------------

def test_mobile_key_presence_decides_whether_it_is_managed():
    assert spec().manage_mobile is False
    for value in (None, "", "   "):
        parsed = spec(mobile=value)
        assert parsed.manage_mobile is True and parsed.mobile is None
    assert spec(mobile=" +1 425 ").mobile == "+1 425"


@pytest.mark.parametrize("entry, words", [
    ({"mobile": 4255550100}, "Quote the phone number"),
    ({"mobile": "1" * 65}, "at most 64"),
    ({"mobile": "+1\x07"}, "control character U+0007"),
    ({"other_mobile": {"add": [1]}}, "other_mobile.add[0]"),
    ({"other_mobile": {"add": "+1"}}, "must be a list"),
    ({"other_mobile": {"add": ["+1"], "remove": ["+1"]}}, "both add and remove"),
    ({"other_mobile": {"replace": []}}, "unknown key(s) replace"),
    ({"mobil": "+1"}, "unknown key(s) mobil"),
    ({"identity": ""}, "identity must name the user"),
    ({"state": "gone"}, "present or absent"),
    ({"state": "absent", "mobile": "+1"}, "state=absent clears"),
])
def test_invalid_entries_are_refused(entry, words):
    with pytest.raises(InvalidInput) as info:
        spec(**entry)
    assert words in str(info.value) and "changed" in str(info.value)


def test_entra_refuses_other_mobile_and_ad_only_identities():
    with pytest.raises(InvalidInput, match="no API"):
        spec("entra", other_mobile={"set": []})
    for identity in ("alice", "CN=Alice,DC=lab,DC=test", "S-1-5-21-1-2-3-1105"):
        with pytest.raises(InvalidInput, match="neither a userPrincipalName nor an object id"):
            spec("entra", identity=identity, mobile="+1")
    assert spec("entra", identity="6f2d1a3e-52b4-4c8e-9a3b-1f0c2d3e4f50", mobile="+1").identity


def test_parse_specs_reports_every_bad_entry_at_once():
    entries = [{"identity": "a", "mobile": "+1"}, {"identity": "b", "mobile": 5}, "c", {"identity": "d", "mobile": "x" * 70}]
    with pytest.raises(InvalidInput) as info:
        _user_phone.parse_specs(entries, "ad")
    assert "3 of 4 user entries are invalid" in str(info.value)
    assert len(info.value.details["errors"]) == 3
    assert "users[1].mobile" in str(info.value) and "users[2]" in str(info.value) and "users[3].mobile" in str(info.value)


def test_single_entry_treats_null_as_omitted():
    params = {"identity": "alice", "mobile": None, "other_mobile": {"add": ["+1"], "remove": None, "set": None}, "state": None}
    parsed = _user_phone.parse_spec(_user_phone.single_entry(params), "ad", where="identity")
    assert parsed.manage_mobile is False and parsed.other_mobile == {"add": ["+1"], "remove": None, "set": None}
    assert parsed.state == "present"


# -- planning AD ------------------------------------------------------------------------

def test_plan_ad_nothing_to_do_when_equal():
    entry = ad_entry(mobile="+1 425 555 0100", other=["+2", "+3"])
    before, after, changes = _user_phone.plan_ad(spec(mobile="+1 425 555 0100", other_mobile={"set": ["+3", "+2"]}), entry)
    assert changes == {} and before == after == {"mobile": "+1 425 555 0100", "other_mobile": ["+2", "+3"]}


def test_plan_ad_ignore_format_avoids_churn():
    entry = ad_entry(mobile="+1 425 555 0100", other=["+1 (206) 555-0100"])
    wanted = spec(mobile="+14255550100", other_mobile={"add": ["+12065550100"]})
    assert _user_phone.plan_ad(wanted, entry, ignore_format=True)[2] == {}
    changes = _user_phone.plan_ad(wanted, entry)[2]
    assert changes["mobile"] == ("replace", ["+14255550100"])
    assert changes["otherMobile"] == [("add", ["+12065550100"])]


def test_plan_ad_add_remove_touch_only_named_values():
    before, after, changes = _user_phone.plan_ad(spec(other_mobile={"add": ["+4"], "remove": ["+2"]}), ad_entry(other=["+2", "+3"]))
    assert changes == {"otherMobile": [("delete", ["+2"]), ("add", ["+4"])]}
    assert after == {"mobile": None, "other_mobile": ["+3", "+4"]} and before["other_mobile"] == ["+2", "+3"]


def test_plan_ad_set_replaces_and_empty_set_deletes():
    assert _user_phone.plan_ad(spec(other_mobile={"set": ["+9"]}), ad_entry(other=["+2"]))[2] == {"otherMobile": ("replace", ["+9"])}
    assert _user_phone.plan_ad(spec(other_mobile={"set": []}), ad_entry(other=["+2"]))[2] == {"otherMobile": ("delete", [])}
    assert _user_phone.plan_ad(spec(other_mobile={"set": []}), ad_entry())[2] == {}


def test_plan_ad_clearing():
    assert _user_phone.plan_ad(spec(mobile=None), ad_entry(mobile="+1"))[2] == {"mobile": ("delete", [])}
    assert _user_phone.plan_ad(spec(mobile=""), ad_entry())[2] == {}
    _before, after, changes = _user_phone.plan_ad(spec(state="absent"), ad_entry(mobile="+1", other=["+2"]))
    assert changes == {"mobile": ("delete", []), "otherMobile": ("delete", [])}
    assert after == {"mobile": None, "other_mobile": []}


# -- applying AD ------------------------------------------------------------------------

class FakeAD:
    def __init__(self, entries, fail_modify=()):
        self.entries = entries  # identity -> entry
        self.fail_modify = set(fail_modify)
        self.modified = []
        self.resolve_calls = 0

    def resolve_users(self, identities, attributes):
        self.resolve_calls += 1
        assert "mobile" in attributes and "otherMobile" in attributes
        return {identity: self.entries.get(identity) or IdentityNotFound("No AD user matches %r." % identity) for identity in identities}

    def modify(self, dn, changes, rights_hint=None):
        if dn in self.fail_modify:
            raise ADError("The bind account may not write mobile on %s." % dn)
        self.modified.append((dn, changes))


def test_apply_ad_captures_each_users_error_and_goes_on():
    alice, bob, carol = ad_entry("CN=Alice", mobile="+1"), ad_entry("CN=Bob"), ad_entry("CN=Carol", mobile="+3")
    ad = FakeAD({"alice": alice, "bob": bob, "carol": carol, "alice@lab.test": alice}, fail_modify={"CN=Bob"})
    specs = _user_phone.parse_specs([{"identity": "ghost", "mobile": "+9"}, {"identity": "bob", "mobile": "+2"},
                                     {"identity": "alice", "mobile": "+1"}, {"identity": "carol", "state": "absent"},
                                     {"identity": "alice@lab.test", "mobile": "+7"}], "ad")
    results = _user_phone.apply_ad(ad, specs)
    assert ad.resolve_calls == 1
    assert ad.modified == [("CN=Carol", {"mobile": ("delete", [])})]
    ghost, bob_r, alice_r, carol_r, alice_again = results
    assert "No AD user matches" in ghost["error"] and ghost["before"] is None
    assert "may not write" in bob_r["error"] and bob_r["changed"] is False and bob_r["after"] is None
    assert alice_r["changed"] is False and alice_r["error"] is None
    assert carol_r["changed"] is True and carol_r["after"] == {"mobile": None, "other_mobile": []}
    assert "names the same AD user (CN=Alice) as users[2]" in alice_again["error"] and "Name each user once." in alice_again["error"]

    with pytest.raises(DirsyncError) as info:
        _user_phone.summarise(results)
    assert "3 of 5 users failed (ghost, bob, alice@lab.test)" in str(info.value)
    assert info.value.details["counts"] == {"total": 5, "changed": 1, "unchanged": 1, "failed": 3}
    assert info.value.details["changed"] is True and info.value.details["users"] is results


def test_apply_ad_check_mode_writes_nothing_but_reports():
    ad = FakeAD({"alice": ad_entry("CN=Alice")})
    results = _user_phone.apply_ad(ad, [spec(identity="alice", mobile="+1")], check_mode=True)
    assert ad.modified == [] and results[0]["changed"] is True and results[0]["after"]["mobile"] == "+1"
    output = _user_phone.summarise(results, single=True)
    assert output["diff"] == {"before": {"mobile": None, "other_mobile": []}, "after": {"mobile": "+1", "other_mobile": []},
                              "before_header": "CN=Alice", "after_header": "CN=Alice"}
    assert output["dn"] == "CN=Alice" and "error" not in output


def test_single_failure_is_the_users_own_message():
    results = _user_phone.apply_ad(FakeAD({}), [spec(identity="ghost", mobile="+1")])
    with pytest.raises(DirsyncError) as info:
        _user_phone.summarise(results, single=True)
    assert str(info.value).startswith("No AD user matches 'ghost'")


def test_bulk_diff_lists_only_changed_users():
    ad = FakeAD({"a": ad_entry("CN=A", mobile="+1"), "b": ad_entry("CN=B")})
    output = _user_phone.summarise(_user_phone.apply_ad(ad, _user_phone.parse_specs(
        [{"identity": "a", "mobile": "+1"}, {"identity": "b", "mobile": "+2"}], "ad")))
    assert output["changed"] is True and output["diff"] == {"prepared": 'CN=B: mobile none -> "+2"'}
    assert output["counts"] == {"total": 2, "changed": 1, "unchanged": 1, "failed": 0}


def test_bulk_diff_is_one_line_a_user_with_a_cap():
    results = [{"identity": "g%d" % index, "dn": "CN=U%d" % index, "changed": True, "error": None,
                "before": {"mobile": "+1 %d " % index, "other_mobile": []}, "after": {"mobile": "+2", "other_mobile": ["+3\t4"]}}
               for index in range(_user_phone.DIFF_LIMIT + 7)]
    lines = _user_phone.bulk_diff(results)["prepared"].splitlines()
    assert len(lines) == _user_phone.DIFF_LIMIT + 1
    assert lines[0] == 'CN=U0: mobile "+1 0 " -> "+2"; otherMobile none -> ["+3\\t4"]'
    assert lines[-1].startswith("... and 7 more user(s)")


# -- Entra ID ---------------------------------------------------------------------------

class FakeGraph:
    def __init__(self, users):
        self.users = users  # key (upn or id) -> user
        self.patched = []
        self.paths = []

    def get(self, path, params=None, headers=None):
        self.paths.append(path)
        assert params["$select"] == _user_phone.ENTRA_SELECT
        user = self.users.get(path.split("/", 1)[1])
        if user is None:
            raise GraphError("Graph GET %s returned 404 Request_ResourceNotFound" % path, status=404)
        return dict(user)

    def patch(self, path, json):
        self.patched.append((path, json))


CLOUD = {"id": "id-cloud", "userPrincipalName": "cloud@lab.test", "mobilePhone": "+1 425 555 0100", "onPremisesSyncEnabled": None}
SYNCED = {"id": "id-synced", "userPrincipalName": "synced@lab.test", "mobilePhone": "+1", "onPremisesSyncEnabled": True}


def test_plan_entra_refuses_synced_user_only_when_a_write_is_needed():
    with pytest.raises(InvalidInput) as info:
        _user_phone.plan_entra(spec("entra", mobile="+2"), SYNCED)
    assert "mastered in AD" in str(info.value) and "directory: ad" in str(info.value)
    assert _user_phone.plan_entra(spec("entra", mobile="+1"), SYNCED)[2] is None
    assert _user_phone.plan_entra(spec("entra", state="absent"), CLOUD)[2] == {"mobilePhone": None}
    assert _user_phone.plan_entra(spec("entra", mobile="+14255550100"), CLOUD, ignore_format=True)[2] is None


def test_apply_entra_reads_patches_and_captures_errors():
    graph = FakeGraph({"cloud@lab.test": CLOUD, "id-cloud": CLOUD, "synced@lab.test": SYNCED, "a%2Fb@lab.test": CLOUD})
    specs = _user_phone.parse_specs([{"identity": "cloud@lab.test", "mobile": "+2"}, {"identity": "synced@lab.test", "mobile": "+2"},
                                     {"identity": "ghost@lab.test", "mobile": "+2"}, {"identity": "id-cloud@x", "mobile": None},
                                     {"identity": "a/b@lab.test", "mobile": "+3"}], "entra")
    results = _user_phone.apply_entra(graph, specs)
    assert graph.patched == [("users/id-cloud", {"mobilePhone": "+2"})]
    assert results[0]["changed"] is True and results[0]["after"] == {"mobile": "+2"}
    assert "mastered in AD" in results[1]["error"] and results[1]["before"] is None
    assert "No Entra ID user 'ghost@lab.test'" in results[2]["error"]
    assert "No Entra ID user" in results[3]["error"]
    # The identity is URL-encoded, so "/" cannot address another resource.
    assert "users/a%2Fb@lab.test" in graph.paths
    assert "names the same Entra ID user" in results[4]["error"]


def test_apply_entra_check_mode_writes_nothing():
    graph = FakeGraph({"cloud@lab.test": CLOUD})
    results = _user_phone.apply_entra(graph, [spec("entra", identity="cloud@lab.test", mobile="")], check_mode=True)
    assert graph.patched == [] and results[0]["changed"] is True and results[0]["after"] == {"mobile": None}


def test_an_object_id_in_braces_is_sent_to_graph_as_the_bare_guid():
    guid = "6f2d1a3e-52b4-4c8e-9a3b-1f0c2d3e4f50"
    graph = FakeGraph({guid: CLOUD})
    results = _user_phone.apply_entra(graph, [spec("entra", identity="{6F2D1A3E-52B4-4C8E-9A3B-1F0C2D3E4F50}", mobile="+2")])
    assert graph.paths == ["users/" + guid]
    assert results[0]["error"] is None and results[0]["changed"] is True


# -- entries already read, messages, views ----------------------------------------------

def test_apply_ad_plans_from_entries_already_read_without_a_lookup():
    ad = FakeAD({})
    specs = [spec(identity="one", mobile="+2"), spec(identity="gone", mobile="+3")]
    results = _user_phone.apply_ad(ad, specs, resolved={"one": ad_entry("CN=One", mobile="+1"), "gone": IdentityNotFound("No AD user matches 'gone'.")})
    assert ad.resolve_calls == 0
    assert ad.modified == [("CN=One", {"mobile": ("replace", ["+2"])})]
    assert results[0]["before"] == {"mobile": "+1", "other_mobile": []} and results[0]["changed"] is True
    assert results[1]["error"] == "No AD user matches 'gone'."


def test_long_lists_in_messages_stop_after_twenty():
    names = ["u%02d" % number for number in range(25)]
    assert _user_phone.listed(names[:2]) == "u00, u01"
    assert _user_phone.listed(names) == ", ".join(names[:20]) + ", ... and 5 more"
    assert _user_phone.listed(names, " | ").endswith("u18 | u19 | ... and 5 more")
    results = [{"identity": name, "dn": None, "before": None, "after": None, "changed": False, "error": "boom"} for name in names]
    with pytest.raises(DirsyncError, match=r"25 of 25 users failed \(u00, .*, u19, \.\.\. and 5 more\)"):
        _user_phone.summarise(results)


def test_ad_view_is_the_record_a_backup_keeps():
    guid = uuid.UUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")
    entry = {"dn": "CN=A,DC=lab,DC=test", "objectguid": [guid.bytes_le], "ms-ds-consistencyguid": [], "userprincipalname": ["a@lab.test"],
             "samaccountname": ["a"], "mobile": [" +1 425 "], "othermobile": ["+2", " "], "source": "lab.test"}
    view = _user_phone.ad_view(entry)
    assert view == {"dn": "CN=A,DC=lab,DC=test", "object_guid": str(guid), "user_principal_name": "a@lab.test", "sam_account_name": "a",
                    "immutable_id": base64.b64encode(guid.bytes_le).decode(), "mobile": " +1 425 ", "other_mobile": ["+2", " "],
                    "source": "lab.test"}
    assert tuple(view) == _backup.AD_KEYS + ("source",)

"""Unit tests of _drift_state: which state files are used, the back-link rule, the Graph delta merge."""

import datetime
import json
import os

import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils import _drift, _drift_state
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput

KEY = _drift_state.scope_key("TENANT", ["OU=Sync,DC=lab,DC=test"], None)


def write_state(path, age=datetime.timedelta(0), **changes):
    _drift_state.save(str(path), KEY, {}, {"delta_link": "https://graph/x", "users": []})
    with open(path, encoding="utf-8") as handle:
        header, *rest = handle.readlines()
    state = json.loads(header)
    state["written_at"] = (datetime.datetime.now(datetime.timezone.utc) - age).strftime("%Y-%m-%dT%H:%M:%SZ")
    state.update(changes)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(state) + "\n" + "".join(rest))
    os.chmod(path, 0o600)


def ad_row(number):
    return _drift.ADUser(dn="CN=u%d,DC=lab,DC=test" % number, upn="u%d@lab.test" % number, sam="u%d" % number, guid="g%d" % number,
                         anchor="a%d" % number, sid=None, mobile="+1 %d" % number, other_mobile=("+2",), enabled=True, source="lab.test")


def test_a_state_gives_back_each_sides_users_a_chunk_per_line(tmp_path, monkeypatch):
    monkeypatch.setattr(_drift_state, "SAVE_CHUNK", 3)
    path = str(tmp_path / "state.json")
    users = [ad_row(number) for number in range(7)]
    _drift_state.save(path, KEY, {"lab.test": {"usn": 5, "users": users}, "fabrikam.test": None}, {"delta_link": "x", "users": []})
    with open(path, encoding="utf-8") as handle:
        assert len(handle.readlines()) == 1 + (1 + 3) + (1 + 0) + 1  # header, lab.test's 3 chunks, entra's none, end
    state, why = _drift_state.load(path, KEY)
    assert why is None and state["ad"]["fabrikam.test"] is None and state["ad"]["lab.test"]["watermark"] == {"usn": 5}
    assert state["ad"]["lab.test"]["users"]() == {user.guid: user for user in users}
    assert state["entra"]["users"]() == {}


def test_a_states_ad_and_entra_records_of_a_user_hold_its_equal_text_once(tmp_path):
    path = str(tmp_path / "state.json")
    users = [ad_row(number) for number in range(3)]
    cloud = [_drift.EntraUser(id="id-" + user.guid, upn=user.upn, onprem_upn=user.upn, mobile=user.mobile if number else "+9",
                              immutable_id=user.anchor, sid=None, dn=user.dn) for number, user in enumerate(users[:2])]
    _drift_state.save(path, KEY, {"lab.test": {"usn": 5, "users": users}}, {"delta_link": "x", "users": cloud})
    state, _why = _drift_state.load(path, KEY)
    read_ad, read_entra = list(state["ad"]["lab.test"]["users"]().values()), list(state["entra"]["users"]().values())
    assert read_ad == users and read_entra == cloud
    for number, user in enumerate(read_entra):
        twin = read_ad[number]
        assert user.dn is twin.dn and user.immutable_id is twin.anchor and user.onprem_upn is twin.upn
        assert (user.mobile is twin.mobile) == (number == 1)  # only equal numbers are shared


def test_a_truncated_state_file_is_unusable_for_the_users_not_for_the_watermarks(tmp_path):
    path = str(tmp_path / "state.json")
    _drift_state.save(path, KEY, {"lab.test": {"usn": 5, "users": [ad_row(1)]}}, None)
    with open(path, encoding="utf-8") as handle:
        lines = handle.readlines()
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(lines[:-1]))
    state, why = _drift_state.load(path, KEY)
    assert why is None
    with pytest.raises(_drift_state.StateUnusable, match="edited or truncated: it has no end mark"):
        state["ad"]["lab.test"]["users"]()


def test_the_scope_key_ignores_order_and_case_of_the_bases():
    assert _drift_state.scope_key("Tenant", ["OU=B,DC=x", "ou=a,dc=x"], " ") == _drift_state.scope_key("tenant", ["ou=A,dc=x", "OU=b,DC=X"], None)
    assert _drift_state.scope_key("t", ["OU=A"], "(a=1)") != _drift_state.scope_key("t", ["OU=A"], None)


@pytest.mark.parametrize("change,reason", [
    ({}, None),
    ({"scope": _drift_state.scope_key("OTHER", ["OU=Sync,DC=lab,DC=test"], None)}, "another tenant"),
    ({"version": 99}, "not a phone_compare state"),
    ({"written_at": "yesterday"}, "no valid written_at"),
])
def test_a_state_file_is_used_only_for_its_tenant_scope_and_version(tmp_path, change, reason):
    path = tmp_path / "state.json"
    write_state(path, **change)
    state, why = _drift_state.load(str(path), KEY)
    if reason is None:
        assert why is None and state["entra"]["watermark"] == {"delta_link": "https://graph/x"} and state["ad"] == {}
    else:
        assert state is None and reason in why


def test_a_state_older_than_graph_s_delta_links_is_not_used(tmp_path):
    path = tmp_path / "state.json"
    write_state(path, age=datetime.timedelta(days=6, hours=1))
    assert _drift_state.load(str(path), KEY) == (None, "the state file is older than 6 days (Graph's delta links expire after 7)")
    assert _drift_state.load(str(tmp_path / "none.json"), KEY)[1].startswith("no state file yet")
    (tmp_path / "broken.json").write_text("{")
    os.chmod(tmp_path / "broken.json", 0o600)
    assert "could not be read" in _drift_state.load(str(tmp_path / "broken.json"), KEY)[1]


def test_a_state_file_others_can_write_is_refused(tmp_path):
    path = tmp_path / "state.json"
    write_state(path)
    os.chmod(path, 0o620)
    with pytest.raises(InvalidInput, match="chmod go-w"):
        _drift_state.load(str(path), KEY)


@pytest.mark.parametrize("ldap_filter,found", [
    ("(department=Sales)", None), (None, None), ("(memberOf=CN=G,DC=x)", "memberOf"), ("(!(memberof=CN=G))", "memberof"),
    ("(memberOf:1.2.840.113556.1.4.1941:=CN=G)", "memberOf"), ("(&(a=1)(msDS-MembersForAzRoleBL=x))", "msDS-MembersForAzRoleBL"),
    ("(manager=CN=Boss,DC=x)", None), ("(description=memberOf=x)", None)])
def test_a_filter_on_a_back_link_is_found(ldap_filter, found):
    assert _drift_state._back_link_in(ldap_filter) == found  # pylint: disable=protected-access


class FakeGraph:
    def __init__(self, users):
        self.users = users
        self.asked = []

    def get(self, path, params=None, headers=None):
        self.asked.append(path)
        return self.users[path.split("/")[-1]]


def entra_user(user_id, mobile, upn=None):
    return _drift.entra_user_from_item({"id": user_id, "userPrincipalName": upn or user_id + "@lab.test", "mobilePhone": mobile,
                                        "onPremisesImmutableId": "anchor-" + user_id})


def test_the_delta_merge_patches_drops_and_adds_users():
    users = {"a": entra_user("a", "+1 1"), "b": entra_user("b", "+1 2"), "c": entra_user("c", "+1 3")}
    whole = dict({name: None for name in _drift_state.DELTA_SELECT}, id="e", userPrincipalName="e@lab.test", mobilePhone="+1 5",
                 onPremisesSyncEnabled=True)
    graph = FakeGraph({"d": {"id": "d", "userPrincipalName": "d@lab.test", "mobilePhone": "+1 4", "onPremisesSyncEnabled": True}})
    _drift_state._apply_delta(graph, users, [  # pylint: disable=protected-access
        {"id": "a", "mobilePhone": None},  # minimal: only what changed
        {"id": "b", "@removed": {"reason": "changed"}},
        {"id": "c", "onPremisesSyncEnabled": None},  # no longer synchronized
        {"id": "d", "onPremisesSyncEnabled": True},  # newly synchronized, minimal: read whole
        whole,  # a new user with every property
        {"id": "cloud", "jobTitle": "x"},  # never synchronized
    ])
    assert users["a"] == entra_user("a", None)
    assert set(users) == {"a", "d", "e"} and users["d"].mobile == "+1 4" and users["e"].mobile == "+1 5"
    assert graph.asked == ["users/d"]


def _entra_row(user, mobile=None):
    return _drift.EntraUser(id="id-" + user.guid, upn=user.upn, onprem_upn=user.upn, mobile=mobile or user.mobile, immutable_id=user.anchor,
                            sid=None, dn=user.dn)


def _lines(path):
    with open(path, encoding="utf-8") as handle:
        return handle.readlines()


def _repeat_run(path, ad_now, entra_now, ad_changed, entra_changed, usn):
    """What read_both does after an incremental read: the state of ``path`` -> users, then a save with the changes."""
    state, why = _drift_state.load(path, KEY)
    assert why is None
    base = state["users"]
    ad_journal, entra_journal = state["ad"]["lab.test"]["journal"](), state["entra"]["journal"]()
    ad_before, entra_before = state["ad"]["lab.test"]["users"](), state["entra"]["users"]()
    ad_side = {"usn": usn, "users": list(ad_now.values()),
               "changes": {guid: ad_now.get(guid) for guid in ad_journal | set(ad_changed)}}
    entra_side = {"delta_link": "x%d" % usn, "users": list(entra_now.values()),
                  "changes": {user_id: entra_now.get(user_id) for user_id in entra_journal | set(entra_changed)}}
    _drift_state.save(path, KEY, {"lab.test": ad_side}, entra_side, base=base)
    base.close()
    return ad_before, entra_before


def _first_state(path):
    """A state of 20 AD users and their cloud users, as a full read writes it -> ({guid: ADUser}, {id: EntraUser})."""
    ad_users = {user.guid: user for user in (ad_row(number) for number in range(20))}
    entra_users = {user.id: user for user in (_entra_row(user) for user in ad_users.values())}
    _drift_state.save(path, KEY, {"lab.test": {"usn": 1, "users": list(ad_users.values())}},
                      {"delta_link": "x1", "users": list(entra_users.values())})
    return ad_users, entra_users


def test_a_repeat_run_keeps_the_base_and_writes_the_users_changed_since_it_in_a_journal(tmp_path, monkeypatch):
    monkeypatch.setattr(_drift_state, "SAVE_CHUNK", 4)
    path = str(tmp_path / "state.json")
    ad_users, entra_users = _first_state(path)
    base_lines = _lines(path)[1:-1]
    expected = [(dict(ad_users), dict(entra_users))]
    # Run 2: two AD users changed, one gone, one new; a cloud number changed and a cloud user gone.
    ad_users["g1"] = ad_users["g1"]._replace(mobile="+1 new")
    ad_users["g2"] = ad_users["g2"]._replace(other_mobile=("+3", "+4"))
    del ad_users["g3"]
    ad_users["g99"] = ad_row(99)
    entra_users["id-g4"] = entra_users["id-g4"]._replace(mobile="+1 cloud")
    del entra_users["id-g5"]
    _repeat_run(path, ad_users, entra_users, ["g1", "g2", "g3", "g99"], ["id-g4", "id-g5"], 2)
    expected.append((dict(ad_users), dict(entra_users)))
    lines = _lines(path)
    assert lines[1:1 + len(base_lines)] == base_lines  # the base is copied, not written again
    assert sum('"journal"' in line for line in lines) == 2
    # Run 3: g1 changed back, g2 gone, g99 changed; the journal keeps what run 2 changed.
    ad_users["g1"] = ad_row(1)
    del ad_users["g2"]
    ad_users["g99"] = ad_users["g99"]._replace(mobile=None)
    read = _repeat_run(path, ad_users, entra_users, ["g1", "g2", "g99"], [], 3)
    assert read == expected[1]  # run 3 read what run 2 left
    assert _lines(path)[1:1 + len(base_lines)] == base_lines
    state, _why = _drift_state.load(path, KEY)
    assert state["ad"]["lab.test"]["journal"]() == {"g1", "g2", "g3", "g99"} and state["entra"]["journal"]() == {"id-g4", "id-g5"}
    assert (state["ad"]["lab.test"]["users"](), state["entra"]["users"]()) == (ad_users, entra_users)
    assert state["ad"]["lab.test"]["watermark"] == {"usn": 3} and state["entra"]["watermark"] == {"delta_link": "x3"}
    state["users"].close()


def test_a_long_journal_or_a_side_read_in_full_means_a_new_base(tmp_path, monkeypatch):
    monkeypatch.setattr(_drift_state, "MAX_JOURNAL_SHARE", 0.1)
    path = str(tmp_path / "state.json")
    ad_users, entra_users = _first_state(path)
    for number in range(5):  # 5 changed of 40 users: more than a tenth
        ad_users["g%d" % number] = ad_users["g%d" % number]._replace(mobile="+9 %d" % number)
    _repeat_run(path, ad_users, entra_users, ["g%d" % number for number in range(5)], [], 2)
    assert not any('"journal"' in line for line in _lines(path))
    state, _why = _drift_state.load(path, KEY)
    assert (state["ad"]["lab.test"]["users"](), state["entra"]["users"]()) == (ad_users, entra_users)
    base = state["users"]
    # The Entra side read in full (no changes to give): every user is written again.
    _drift_state.save(path, KEY, {"lab.test": {"usn": 3, "users": list(ad_users.values()), "changes": {}}},
                      {"delta_link": "x3", "users": list(entra_users.values())}, base=base)
    base.close()
    assert not any('"journal"' in line for line in _lines(path))
    state, _why = _drift_state.load(path, KEY)
    assert (state["ad"]["lab.test"]["users"](), state["entra"]["users"]()) == (ad_users, entra_users)
    state["users"].close()


def test_a_journal_for_a_side_the_base_does_not_have_makes_the_state_unusable(tmp_path):
    path = str(tmp_path / "state.json")
    _drift_state.save(path, KEY, {"lab.test": {"usn": 5, "users": [ad_row(1)]}}, None)
    lines = _lines(path)
    lines.insert(-1, json.dumps({"journal": "ad", "name": "fabrikam.test", "chunks": 1}) + "\n" + json.dumps([["g1", None]]) + "\n")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(lines))
    state, _why = _drift_state.load(path, KEY)
    with pytest.raises(_drift_state.StateUnusable, match="edited or truncated"):
        state["ad"]["lab.test"]["users"]()

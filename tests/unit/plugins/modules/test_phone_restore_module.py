"""phone_restore: each backed-up user is looked up once, and there is no Graph sign-in when tenant_id is given."""

import json
import uuid

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.entraid.dirsync.plugins.module_utils import _backup, _drift
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import IdentityNotFound
from ansible_collections.entraid.dirsync.plugins.module_utils import _ad_sources
from ansible_collections.entraid.dirsync.tests.unit.plugins.modules.ad_fakes import ConnectableFake
from ansible_collections.entraid.dirsync.plugins.modules import phone_restore

TENANT = "e1f41257-abc5-59f8-83f4-66462474b972"
DOMAIN = "DC=lab,DC=test"


def guid(name):
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, name))


def ad_user(name, mobile):
    return _drift.ADUser(dn="CN=%s,OU=Sync,DC=lab,DC=test" % name, upn="%s@lab.test" % name, sam=name, guid=guid(name),
                         anchor="anchor-" + name, sid=None, mobile=mobile, other_mobile=(), enabled=True)


class FakeADClient(ConnectableFake):
    """AD now: ann's number changed since the backup, bob is unchanged, gone was deleted."""

    instances = []
    now = None  # {guid: (dn, mobile list, otherMobile list)} to replace the default directory

    def __init__(self, params):
        self.base_dn = DOMAIN
        self.lookups = []
        self.modified = []
        FakeADClient.instances.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def resolve_users(self, identities, attributes, search_base=None):
        self.lookups.append(list(identities))
        assert "mobile" in attributes and "otherMobile" in attributes
        if FakeADClient.now is not None:
            return {identity: {"dn": FakeADClient.now[identity][0], "mobile": FakeADClient.now[identity][1],
                               "othermobile": FakeADClient.now[identity][2]} for identity in identities}
        now = {guid("ann"): "+1 999", guid("bob"): "+1 206"}
        return {identity: {"dn": "CN=%s,OU=Sync,DC=lab,DC=test" % identity, "mobile": [now[identity]], "othermobile": []} if identity in now
                else IdentityNotFound("No AD user matches %r." % identity) for identity in identities}

    def modify(self, dn, changes, **_hint):
        self.modified.append((dn, changes))


class FakeGraph:
    tenant_id = TENANT


@pytest.fixture
def backup_path(tmp_path):
    users = [ad_user("ann", "+1 425"), ad_user("bob", "+1 206"), ad_user("gone", "+1 312")]
    return _backup.write(str(tmp_path), _backup.build(TENANT, DOMAIN, ["OU=Sync,DC=lab,DC=test"], None, users, []))


@pytest.fixture
def sign_ins(monkeypatch):
    calls = []
    FakeADClient.instances = []
    FakeADClient.now = None
    monkeypatch.delenv("AZURE_TENANT_ID", raising=False)
    monkeypatch.setattr(_ad_sources, "ADClient", FakeADClient)
    monkeypatch.setattr(phone_restore, "graph_client_from_module", lambda module: calls.append(module) or FakeGraph())
    return calls


def run(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        phone_restore.main()
    return info.value.code, json.loads(capsys.readouterr().out)


def test_restore_looks_each_user_up_once_and_does_not_sign_in_with_a_tenant_id(backup_path, sign_ins, capsys):
    code, result = run({"backup_path": backup_path, "tenant_id": TENANT, "ad_server": "dc1"}, capsys)
    assert code == 0, result
    assert sign_ins == []
    ad = FakeADClient.instances[0]
    assert len(ad.lookups) == 1 and sorted(ad.lookups[0]) == sorted([guid("ann"), guid("bob"), guid("gone")])
    assert ad.modified == [("CN=%s,OU=Sync,DC=lab,DC=test" % guid("ann"), {"mobile": ("replace", ["+1 425"])})]
    assert result["counts"] == {"total": 2, "changed": 1, "unchanged": 1, "failed": 0, "missing": 1}
    assert result["missing"] == [{"dn": "CN=gone,OU=Sync,DC=lab,DC=test", "object_guid": guid("gone")}]
    assert [user["identity"] for user in result["users"]] == [guid("ann")]
    assert result["users"][0]["before"] == {"mobile": "+1 999", "other_mobile": []}


def test_a_restore_in_batches_looks_each_user_up_once_and_counts_every_user(backup_path, sign_ins, capsys, monkeypatch):
    """The restore holds at most RESTORE_BATCH users of AD at once; what the task reports is the same as in one batch."""
    monkeypatch.setattr(phone_restore, "RESTORE_BATCH", 2)
    code, result = run({"backup_path": backup_path, "tenant_id": TENANT, "ad_server": "dc1"}, capsys)
    assert code == 0, result
    ad = FakeADClient.instances[0]
    assert [len(lookup) for lookup in ad.lookups] == [2, 1]
    assert sorted(sum(ad.lookups, [])) == sorted([guid("ann"), guid("bob"), guid("gone")])
    assert ad.modified == [("CN=%s,OU=Sync,DC=lab,DC=test" % guid("ann"), {"mobile": ("replace", ["+1 425"])})]
    assert result["counts"] == {"total": 2, "changed": 1, "unchanged": 1, "failed": 0, "missing": 1}
    assert result["missing"] == [{"dn": "CN=gone,OU=Sync,DC=lab,DC=test", "object_guid": guid("gone")}]
    assert [user["identity"] for user in result["users"]] == [guid("ann")]


def test_without_a_tenant_id_the_sign_in_gives_it(backup_path, sign_ins, capsys):
    code, result = run({"backup_path": backup_path, "access_token": "x", "ad_server": "dc1"}, capsys)
    assert code == 0, result
    assert len(sign_ins) == 1 and result["tenant_id"] == TENANT


def test_odd_values_are_restored_byte_for_byte_and_never_block_the_others(tmp_path, sign_ins, capsys):
    odd = {"space": ("+1 206 555 0166 ", ()), "blank": (" ", ()), "tab": ("+1 206\t555 0177", ("+1\n2", " x "))}
    users = [_drift.ADUser(dn="CN=%s,OU=Sync,DC=lab,DC=test" % name, upn=name, sam=name, guid=guid(name), anchor="a-" + name,
                           sid=None, mobile=mobile, other_mobile=other, enabled=True) for name, (mobile, other) in odd.items()]
    path = _backup.write(str(tmp_path), _backup.build(TENANT, DOMAIN, ["OU=Sync,DC=lab,DC=test"], None, users, []))
    kept = {record["dn"]: record["mobile"] for record in _backup.load(path)["ad_users"]}
    assert kept["CN=space,OU=Sync,DC=lab,DC=test"] == "+1 206 555 0166 "  # kept as AD held it
    FakeADClient.now = {guid(name): ("CN=%s,OU=Sync,DC=lab,DC=test" % name, ["+1 cloud"], []) for name in odd}
    code, result = run({"backup_path": path, "tenant_id": TENANT, "ad_server": "dc1"}, capsys)
    assert code == 0, result
    written = dict(FakeADClient.instances[0].modified)
    assert written["CN=space,OU=Sync,DC=lab,DC=test"] == {"mobile": ("replace", ["+1 206 555 0166 "])}
    assert written["CN=blank,OU=Sync,DC=lab,DC=test"] == {"mobile": ("replace", [" "])}
    assert written["CN=tab,OU=Sync,DC=lab,DC=test"] == {"mobile": ("replace", ["+1 206\t555 0177"]),
                                                        "otherMobile": ("replace", ["+1\n2", " x "])}
    assert result["counts"]["changed"] == 3


def test_a_user_moved_out_of_the_backups_search_bases_is_not_written(backup_path, sign_ins, capsys):
    FakeADClient.now = {guid("ann"): ("CN=ann,OU=Elsewhere,DC=lab,DC=test", ["+1 999"], []),
                        guid("bob"): ("CN=bob,OU=Sync,DC=lab,DC=test", ["+1 999"], []),
                        guid("gone"): ("CN=gone,OU=Sync,DC=lab,DC=test", ["+1 312"], [])}
    code, result = run({"backup_path": backup_path, "tenant_id": TENANT, "ad_server": "dc1"}, capsys)
    assert code == 1
    assert [dn for dn, _changes in FakeADClient.instances[0].modified] == ["CN=bob,OU=Sync,DC=lab,DC=test"]
    failed = [user for user in result["users"] if user["error"]]
    assert len(failed) == 1 and "outside the backup's search bases" in failed[0]["error"]

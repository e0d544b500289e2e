"""The user_phone and user_phone_info modules connect only to the directory they need."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.entraid.dirsync.plugins.module_utils import _ad_sources
from ansible_collections.entraid.dirsync.tests.unit.plugins.modules.ad_fakes import ConnectableFake
from ansible_collections.entraid.dirsync.plugins.modules import user_phone, user_phone_info


class FakeADClient(ConnectableFake):
    """Stands in for _ad.ADClient (a context manager with resolve_users/modify)."""

    instances = []

    def __init__(self, params):
        self.params = params
        self.modified = []
        FakeADClient.instances.append(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def resolve_users(self, identities, attributes, search_base=None):
        return {identity: {"dn": "CN=%s" % identity, "mobile": [], "othermobile": [], "objectguid": [b"\x01" * 16],
                           "userprincipalname": [identity], "samaccountname": [identity]} for identity in identities}

    def modify(self, dn, changes, rights_hint=None):
        self.modified.append((dn, changes))


def no_graph(module):
    raise AssertionError("signed in to Graph although directory=ad")


def run(module, args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        module.main()
    return info.value.code, json.loads(capsys.readouterr().out)


@pytest.fixture(autouse=True)
def fakes(monkeypatch):
    FakeADClient.instances = []
    for module in (user_phone, user_phone_info):
        monkeypatch.setattr(_ad_sources, "ADClient", FakeADClient)
        monkeypatch.setattr(module, "graph_client_from_module", no_graph)


def test_directory_ad_uses_only_ad(capsys):
    code, result = run(user_phone, {"directory": "ad", "users": [{"identity": "alice", "mobile": "+1"}, {"identity": "bob", "mobile": None}],
                                    "ad_server": "dc1"}, capsys)
    assert code == 0 and result["changed"] is True
    assert result["counts"] == {"total": 2, "changed": 1, "unchanged": 1, "failed": 0}
    assert FakeADClient.instances[0].modified == [("CN=alice", {"mobile": ("replace", ["+1"])})]


def test_invalid_value_fails_before_connecting(capsys):
    code, result = run(user_phone, {"directory": "ad", "identity": "alice", "mobile": 4255550100}, capsys)
    assert code == 1 and "Quote the phone number" in result["msg"]
    assert not FakeADClient.instances


def test_directory_entra_never_binds_to_ad(capsys, monkeypatch):
    class Graph:
        def get(self, path, params=None, headers=None):
            return {"id": "id-1", "userPrincipalName": "c@lab.test", "mobilePhone": None, "onPremisesSyncEnabled": None}

        def patch(self, path, json):
            raise AssertionError("wrote in check mode")
    monkeypatch.setattr(user_phone, "graph_client_from_module", lambda module: Graph())
    code, result = run(user_phone, {"directory": "entra", "identity": "c@lab.test", "mobile": "+1", "_ansible_check_mode": True}, capsys)
    assert code == 0 and result["changed"] is True and result["after"] == {"mobile": "+1"}
    assert not FakeADClient.instances


def test_info_ad_only_does_not_sign_in(capsys):
    code, result = run(user_phone_info, {"identities": ["alice"], "directories": ["ad"], "ad_server": "dc1"}, capsys)
    assert code == 0 and result["changed"] is False
    assert result["users"][0]["ad"]["dn"] == "CN=alice" and result["users"][0]["entra"] is None

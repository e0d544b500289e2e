"""dirsync_feature and dirsync_feature_info as Ansible runs them: options in, one JSON result out (Graph faked)."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.entraid.dirsync.plugins.module_utils import _dirsync_features as features_mod
from ansible_collections.entraid.dirsync.plugins.modules import dirsync_feature, dirsync_feature_info

TENANT = "e1f41257-abc5-59f8-83f4-66462474b972"
CONNECTION = {"tenant_id": TENANT, "client_id": "c", "username": "admin@lab.test", "password": "pw"}


class FakeClient:
    def __init__(self, delegated=True, **values):
        state = {name: False for name in features_mod.FEATURES}
        state.update(values)
        self.state = state
        self.is_delegated = delegated
        self.auth_method = "password" if delegated else "client_secret"
        self.tenant_id = TENANT
        self.patches = []

    def get(self, path, params=None, headers=None):
        return {"value": [{"id": TENANT, "features": dict(self.state)}]}

    def patch(self, path, json, headers=None):
        self.patches.append(json)
        self.state.update(json["features"])


@pytest.fixture
def run(monkeypatch, capsys):
    """``run(module, args, client, check=False, diff=False)`` -> the module's result dict."""
    def runner(module, args, client=None, check=False, diff=False):
        monkeypatch.setattr(module, "graph_client_from_module", lambda ansible_module: client)
        module_args = dict(CONNECTION, **args)
        module_args["_ansible_check_mode"] = check
        module_args["_ansible_diff"] = diff
        with patch_module_args(module_args):
            with pytest.raises(SystemExit):
                module.main()
        return json.loads(capsys.readouterr().out)
    return runner


def test_enable_one_feature_by_msonline_name(run):
    client = FakeClient()
    result = run(dirsync_feature, {"feature": "BypassDirSyncOverrides", "enabled": True}, client)
    assert result["changed"] is True
    assert result["changes"] == [{"feature": "bypassDirSyncOverridesEnabled", "before": False, "after": True}]
    assert client.state["bypassDirSyncOverridesEnabled"] is True
    assert "diff" not in result
    assert "pw" not in json.dumps(result)


def test_second_run_reports_no_change(run):
    client = FakeClient(bypassDirSyncOverridesEnabled=True)
    result = run(dirsync_feature, {"features": {"bypass_dir_sync_overrides": True}}, client)
    assert result["changed"] is False
    assert client.patches == []


def test_check_mode_with_diff_changes_nothing(run):
    client = FakeClient()
    result = run(dirsync_feature, {"features": {"bypassDirSyncOverridesEnabled": True, "BLOCKSOFTMATCH": True}}, client,
                 check=True, diff=True)
    assert result["changed"] is True
    assert client.patches == []
    assert result["diff"]["before"]["features"]["blockSoftMatchEnabled"] is False
    assert result["diff"]["after"]["features"]["blockSoftMatchEnabled"] is True
    assert [change["feature"] for change in result["changes"]] == ["blockSoftMatchEnabled", "bypassDirSyncOverridesEnabled"]


def test_without_enabled_it_only_reports(run):
    client = FakeClient(blockSoftMatchEnabled=True)
    result = run(dirsync_feature, {"feature": "block_soft_match"}, client)
    assert result["changed"] is False
    assert result["features"]["blockSoftMatchEnabled"] is True
    assert len(result["features"]) == len(features_mod.FEATURES)
    assert client.patches == []


def test_unknown_feature_fails_with_the_list(run):
    result = run(dirsync_feature, {"feature": "BypassOverrides", "enabled": True}, FakeClient())
    assert result["failed"] is True
    assert "Unknown directory synchronization feature 'BypassOverrides'" in result["msg"]
    assert "bypassDirSyncOverridesEnabled (BypassDirSyncOverrides, bypass_dir_sync_overrides)" in result["msg"]


def test_app_only_sign_in_fails_without_changes(run):
    client = FakeClient(delegated=False)
    result = run(dirsync_feature, {"feature": "BypassDirSyncOverrides", "enabled": True}, client)
    assert result["failed"] is True
    assert "app-only" in result["msg"]
    assert client.patches == []


@pytest.mark.parametrize("args, message", [
    ({"feature": "BlockSoftMatch", "features": {"BlockSoftMatch": True}}, "mutually exclusive"),
    ({"enabled": True}, "missing parameter(s) required by 'enabled': feature"),
])
def test_option_combinations_are_checked(run, args, message):
    result = run(dirsync_feature, args, FakeClient())
    assert result["failed"] is True
    assert message in result["msg"]


def test_info_module_returns_every_feature(run):
    client = FakeClient(bypassDirSyncOverridesEnabled=True)
    result = run(dirsync_feature_info, {}, client)
    assert result["changed"] is False
    assert result["tenant_id"] == TENANT
    assert result["features"]["bypassDirSyncOverridesEnabled"] is True
    assert set(result["features"]) == set(features_mod.FEATURES)


def test_info_module_refuses_app_only_tokens(run):
    result = run(dirsync_feature_info, {}, FakeClient(delegated=False))
    assert result["failed"] is True
    assert "delegated sign-in" in result["msg"]

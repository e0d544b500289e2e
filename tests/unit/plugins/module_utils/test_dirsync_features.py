"""Feature names, planning and the read/PATCH logic of _dirsync_features, with a fake Graph client."""

import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils import _dirsync_features as features_mod
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, GraphError, InvalidInput

TENANT = "e1f41257-abc5-59f8-83f4-66462474b972"


class FakeClient:
    """Stands in for GraphClient: records calls, answers GET with ``objects``, can fail with a GraphError."""

    def __init__(self, objects=None, delegated=True, auth_method="password", fail_get=None, fail_patch=None, tenant_id=TENANT):
        self.objects = objects if objects is not None else [sync_object()]
        self.is_delegated = delegated
        self.auth_method = auth_method
        self.tenant_id = tenant_id
        self.fail_get = fail_get
        self.fail_patch = fail_patch
        self.calls = []

    def get(self, path, params=None, headers=None):
        self.calls.append(("GET", path, None))
        if self.fail_get:
            raise self.fail_get
        return {"value": self.objects}

    def patch(self, path, json, headers=None):
        self.calls.append(("PATCH", path, json))
        if self.fail_patch:
            raise self.fail_patch


def sync_object(tenant=TENANT, **overrides):
    values = {name: False for name in features_mod.FEATURES}
    values.update(overrides)
    return {"id": tenant, "configuration": {}, "features": values}


def forbidden():
    return GraphError("Graph GET returned 403", status=403, code="Authorization_RequestDenied",
                      graph_message="Insufficient privileges to complete the operation.", request_id="r-1")


@pytest.mark.parametrize("graph_name", features_mod.FEATURES)
def test_every_feature_resolves_from_all_three_spellings(graph_name):
    msonline = features_mod.msonline_name(graph_name)
    for spelling in (graph_name, msonline, msonline.upper(), msonline.lower(), features_mod.snake_name(graph_name),
                     features_mod.snake_name(graph_name) + "_enabled"):
        assert features_mod.resolve_feature(spelling) == graph_name, spelling


def test_spellings_of_bypass_dir_sync_overrides():
    assert features_mod.msonline_name("bypassDirSyncOverridesEnabled") == "BypassDirSyncOverrides"
    assert features_mod.snake_name("bypassDirSyncOverridesEnabled") == "bypass_dir_sync_overrides"
    assert features_mod.resolve_feature("bypassdirsyncoverrides") == "bypassDirSyncOverridesEnabled"


def test_legacy_msonline_aliases_resolve():
    assert features_mod.resolve_feature("EnableSoftMatchOnUpn") == "softMatchOnUpnEnabled"
    assert features_mod.resolve_feature("DuplicateUPNResiliency") == "quarantineUponUpnConflictEnabled"


@pytest.mark.parametrize("name", ["BypassDirSync", "bypass_overrides", "", None])
def test_unknown_name_fails_listing_every_valid_name(name):
    with pytest.raises(InvalidInput) as error:
        features_mod.resolve_feature(name)
    message = str(error.value)
    assert "Unknown directory synchronization feature %r" % (name,) in message
    for graph_name in features_mod.FEATURES:
        assert graph_name in message
    assert "BypassDirSyncOverrides" in message and "bypass_dir_sync_overrides" in message
    assert error.value.details["valid_features"] == list(features_mod.FEATURES)


def test_resolve_features_converts_values_and_names():
    resolved = features_mod.resolve_features({"BypassDirSyncOverrides": "yes", "block_soft_match": False,
                                              "bypassDirSyncOverridesEnabled": True})
    assert resolved == {"bypassDirSyncOverridesEnabled": True, "blockSoftMatchEnabled": False}


def test_resolve_features_refuses_two_spellings_with_different_values():
    with pytest.raises(InvalidInput, match="BypassDirSyncOverrides and bypass_dir_sync_overrides name the same feature"):
        features_mod.resolve_features({"BypassDirSyncOverrides": True, "bypass_dir_sync_overrides": False})


def test_resolve_features_refuses_non_boolean_values():
    with pytest.raises(InvalidInput, match="BlockSoftMatch must be true or false, got 'maybe'"):
        features_mod.resolve_features({"BlockSoftMatch": "maybe"})


def test_plan_lists_only_differences_sorted():
    current = {"bypassDirSyncOverridesEnabled": False, "blockSoftMatchEnabled": True}
    desired = {"blockSoftMatchEnabled": True, "bypassDirSyncOverridesEnabled": True, "userWritebackEnabled": False}
    assert features_mod.plan_changes(current, desired) == [
        {"feature": "bypassDirSyncOverridesEnabled", "before": False, "after": True},
        {"feature": "userWritebackEnabled", "before": None, "after": False},
    ]


def test_apply_sends_the_whole_features_object_with_the_change():
    client = FakeClient(objects=[sync_object(blockSoftMatchEnabled=True)])
    result = features_mod.apply_features(client, {"bypassDirSyncOverridesEnabled": True}, check_mode=False)
    method, path, body = client.calls[-1]
    assert (method, path) == ("PATCH", "directory/onPremisesSynchronization/%s" % TENANT)
    assert set(body) == {"features"}
    assert body["features"] == dict(sync_object(blockSoftMatchEnabled=True)["features"], bypassDirSyncOverridesEnabled=True)
    assert result["changed"] is True
    assert result["tenant_id"] == TENANT
    assert result["features"]["bypassDirSyncOverridesEnabled"] is True
    assert result["features"]["blockSoftMatchEnabled"] is True
    assert result["changes"] == [{"feature": "bypassDirSyncOverridesEnabled", "before": False, "after": True}]
    assert result["diff"]["before"]["features"]["bypassDirSyncOverridesEnabled"] is False
    assert result["diff"]["after"]["features"]["bypassDirSyncOverridesEnabled"] is True


def test_apply_in_check_mode_reports_but_does_not_write():
    client = FakeClient()
    result = features_mod.apply_features(client, {"bypassDirSyncOverridesEnabled": True}, check_mode=True)
    assert [call[0] for call in client.calls] == ["GET"]
    assert result["changed"] is True
    assert result["features"]["bypassDirSyncOverridesEnabled"] is True


def test_apply_without_differences_does_not_write():
    client = FakeClient(objects=[sync_object(bypassDirSyncOverridesEnabled=True)])
    result = features_mod.apply_features(client, {"bypassDirSyncOverridesEnabled": True}, check_mode=False)
    assert [call[0] for call in client.calls] == ["GET"]
    assert result["changed"] is False
    assert result["changes"] == []


def test_app_only_token_is_refused_before_any_call():
    client = FakeClient(delegated=False, auth_method="client_secret")
    with pytest.raises(InvalidInput) as error:
        features_mod.apply_features(client, {"bypassDirSyncOverridesEnabled": True}, check_mode=False)
    message = str(error.value)
    assert "auth_method=client_secret" in message and "app-only" in message and "Global Administrator" in message
    assert "auth_method=password" in message and "auth_method=device_code" in message and "entraid.dirsync.sign_in" in message
    assert client.calls == []


def test_tenant_without_directory_synchronization_is_a_clear_error():
    client = FakeClient(objects=[])
    with pytest.raises(DirsyncError) as error:
        features_mod.read_features(client)
    assert "Tenant %s has no directory synchronization" % TENANT in str(error.value)
    assert "Check tenant_id" in str(error.value)


def test_the_tenants_own_object_is_chosen():
    other = sync_object(tenant="00000000-0000-0000-0000-000000000001", bypassDirSyncOverridesEnabled=True)
    client = FakeClient(objects=[other, sync_object(tenant=TENANT.upper())])
    sync_id, values = features_mod.read_features(client)
    assert sync_id == TENANT.upper()
    assert values["bypassDirSyncOverridesEnabled"] is False


@pytest.mark.parametrize("write, permission", [(False, "OnPremDirectorySynchronization.Read.All"),
                                               (True, "OnPremDirectorySynchronization.ReadWrite.All")])
def test_forbidden_names_the_role_and_the_permission(write, permission):
    client = FakeClient(fail_patch=forbidden()) if write else FakeClient(fail_get=forbidden())
    with pytest.raises(GraphError) as error:
        features_mod.apply_features(client, {"bypassDirSyncOverridesEnabled": True}, check_mode=False)
    message = str(error.value)
    assert "Graph refused to %s" % ("change" if write else "read") in message
    assert "must be a Global Administrator" in message
    assert permission in message
    assert error.value.status == 403 and error.value.request_id == "r-1"


def test_other_graph_errors_pass_through_unchanged():
    failure = GraphError("Graph GET failed with 500. run again", status=500)
    with pytest.raises(GraphError) as error:
        features_mod.read_features(FakeClient(fail_get=failure))
    assert error.value is failure


def test_password_writeback_change_is_refused_before_writing():
    client = FakeClient()
    with pytest.raises(InvalidInput) as error:
        features_mod.apply_features(client, {"passwordWritebackEnabled": True, "bypassDirSyncOverridesEnabled": True}, check_mode=False)
    assert "passwordWritebackEnabled cannot be changed" in str(error.value)
    assert "It is false in tenant" in str(error.value)
    assert [call[0] for call in client.calls] == ["GET"]


def test_password_writeback_at_its_current_value_is_accepted():
    client = FakeClient()
    result = features_mod.apply_features(client, {"passwordWritebackEnabled": False}, check_mode=False)
    assert result["changed"] is False

"""user_phone_info fails when a directory it was asked to read cannot be read, instead of reporting ok with entra: null."""

import json

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.entraid.dirsync.plugins.module_utils import _ad_sources
from ansible_collections.entraid.dirsync.tests.unit.plugins.modules.ad_fakes import ConnectableFake
from ansible_collections.entraid.dirsync.plugins.modules import user_phone_info
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import ADError, AuthError, GraphError

GUID = b"\x01" * 16
ANCHOR = "AQEBAQEBAQEBAQEBAQEBAQ=="


class FakeAD(ConnectableFake):

    def __init__(self, params, search_error=None):
        self.search_error = search_error

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def resolve_users(self, identities, attributes, search_base=None):
        from ansible_collections.entraid.dirsync.plugins.module_utils._errors import IdentityNotFound  # pylint: disable=import-outside-toplevel
        return {identity: IdentityNotFound("No AD user matches %r." % identity) for identity in identities}

    def paged_search(self, base, ldap_filter, attributes, **_options):
        if self.search_error:
            raise self.search_error
        return iter(())


class FakeGraph:
    def __init__(self, sign_in_error=None, get_error=None):
        self.sign_in_error, self.get_error = sign_in_error, get_error
        self.signed_in = False

    def sign_in(self):
        if self.sign_in_error:
            raise self.sign_in_error
        self.signed_in = True

    def get(self, path, params=None, headers=None):
        assert self.signed_in
        if self.get_error:
            raise self.get_error
        return {"id": "id-1", "userPrincipalName": "alice@lab.test", "mobilePhone": "+1", "onPremisesSyncEnabled": True,
                "onPremisesImmutableId": ANCHOR}


def run(args, capsys, graph, ad_error=None, monkeypatch=None):
    monkeypatch.setattr(user_phone_info, "graph_client_from_module", lambda module: graph)
    monkeypatch.setattr(_ad_sources, "ADClient", lambda params: FakeAD(params, ad_error))
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        user_phone_info.main()
    return info.value.code, json.loads(capsys.readouterr().out)


SIGN_IN_FAILED = AuthError("Sign-in to Microsoft Entra ID (auth_method=client_secret) failed: invalid_client: AADSTS7000215: "
                           "Invalid client secret provided. The client secret is wrong.")


@pytest.mark.parametrize("directories", [["entra"], ["ad", "entra"]])
def test_failed_sign_in_fails_the_task(capsys, monkeypatch, directories):
    code, result = run({"identities": ["alice@lab.test"], "directories": directories, "ad_server": "dc1"}, capsys,
                       FakeGraph(sign_in_error=SIGN_IN_FAILED), monkeypatch=monkeypatch)
    assert code == 1 and result["failed"] is True
    assert result["msg"] == str(SIGN_IN_FAILED) and "users" not in result


@pytest.mark.parametrize("error", [
    GraphError("Graph GET users/alice@lab.test returned 503 ServiceUnavailable: down. Graph is unavailable", status=503),
    GraphError("Graph GET users/alice@lab.test returned 403 Authorization_RequestDenied: no. Grant User.Read.All", status=403),
    AuthError("The identity platform was unavailable for the sign-in (auth_method=client_secret) at https://x: HTTP 503"),
])
def test_entra_that_cannot_be_read_mid_run_fails_the_task(capsys, monkeypatch, error):
    code, result = run({"identities": ["alice@lab.test"], "directories": ["entra"]}, capsys, FakeGraph(get_error=error),
                       monkeypatch=monkeypatch)
    assert code == 1 and result["msg"] == str(error)


def test_lost_ad_connection_fails_the_task(capsys, monkeypatch):
    lost = ADError("Searching (...) under None failed: socket closed. The connection to the domain controller may have been lost")
    code, result = run({"identities": ["alice@lab.test"], "directories": ["ad", "entra"], "ad_server": "dc1"}, capsys, FakeGraph(),
                       ad_error=lost, monkeypatch=monkeypatch)
    assert code == 1 and result["msg"] == str(lost)


def test_a_user_missing_on_one_side_is_still_reported_not_failed(capsys, monkeypatch):
    missing = GraphError("Graph GET users/bob@lab.test returned 404 Request_ResourceNotFound", status=404)
    code, result = run({"identities": ["bob@lab.test"], "directories": ["ad", "entra"], "ad_server": "dc1"}, capsys,
                       FakeGraph(get_error=missing), monkeypatch=monkeypatch)
    assert code == 0 and result["users"][0]["entra"] is None
    assert "No Entra ID user 'bob@lab.test'" in result["users"][0]["entra_error"]
    assert "No AD user matches" in result["users"][0]["ad_error"]

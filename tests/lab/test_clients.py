"""The shared clients (module_utils) against the lab: every sign-in method, paging, CA bundles, AD reads."""

import uuid

import certifi
import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.entraid.dirsync.plugins.module_utils import _ad, _graph, _identity
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import AuthError, IdentityNotFound


def _validated(spec, params):
    result = ArgumentSpecValidator(spec).validate(params)
    assert not result.error_messages, result.error_messages
    return result.validated_parameters


def graph_params(lab, **options):
    base = {"tenant_id": lab["tenant_id"], "cloud": "custom", "authority_host": lab["authority_host"],
            "graph_endpoint": lab["graph_endpoint"], "ca_bundle": lab["ca_file"]}
    base.update(options)
    return _validated(_graph.graph_argument_spec(), base)


def ad_params(lab):
    ldap = lab["ldap"]
    return _validated(_ad.ad_argument_spec(), {"ad_server": ldap["server"], "ad_ca_cert": lab["ca_file"],
                                               "ad_username": ldap["username"], "ad_password": ldap["password"]})


@pytest.fixture
def foreign_ca_bundle(monkeypatch):
    """REQUESTS_CA_BUNDLE naming public CAs that did not sign the lab: only ca_bundle can make calls work."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())


def _sign_ins(lab):
    apps, users = lab["apps"], lab["users"]
    return {
        "client_secret": dict(client_id=apps["automation"]["client_id"], client_secret=apps["automation"]["client_secret"]),
        "client_certificate": dict(client_id=apps["automation"]["client_id"], client_certificate_path=apps["automation"]["certificate_path"]),
        "password": dict(client_id=apps["interactive"]["client_id"], username=users["admin"]["username"], password=users["admin"]["password"]),
    }


@pytest.mark.parametrize("method", ["client_secret", "client_certificate", "password"])
def test_each_sign_in_reads_every_page_of_synced_users(lab, control, method, foreign_ca_bundle):
    client = _graph.GraphClient.from_params(graph_params(lab, **_sign_ins(lab)[method]))
    users = list(client.iter_items("users", params={"$filter": "onPremisesSyncEnabled eq true", "$top": "50",
                                                    "$select": "id,onPremisesImmutableId"}))
    expected = {u["id"] for u in control.get("/state")["tenants"][0]["users"] if u.get("onPremisesSyncEnabled")}
    assert len(expected) > 150, "the default lab has a few hundred synced users"
    assert {u["id"] for u in users} == expected and len(users) == len(expected)
    assert client.is_delegated == (method == "password")
    assert client.tenant_id == lab["tenant_id"]


def test_mfa_account_gets_a_message_that_names_device_code(lab):
    mfa = lab["users"]["mfa_admin"]
    client = _graph.GraphClient.from_params(graph_params(lab, client_id=lab["apps"]["interactive"]["client_id"],
                                                         username=mfa["username"], password=mfa["password"]))
    with pytest.raises(AuthError) as info:
        client.get("organization")
    assert "device" in str(info.value).lower() and mfa["password"] not in str(info.value)


def test_ad_client_pages_past_the_page_size_and_resolves_every_identity_kind(lab):
    with _ad.ADClient(ad_params(lab)) as ad:
        assert ad.base_dn == lab["ldap"]["base_dn"]
        entries = list(ad.paged_search(lab["ldap"]["sync_scope"][0], _ad.USER_FILTER,
                                       ["objectGUID", "objectSid", "userPrincipalName", "sAMAccountName"], page_size=25))
        assert len(entries) > 100 and len({e["dn"] for e in entries}) == len(entries)
        user = entries[0]
        guid = _identity.guid_bytes_to_string(user["objectguid"][0])
        sid = _identity.sid_bytes_to_string(user["objectsid"][0])
        identities = [user["userprincipalname"][0], user["samaccountname"][0], lab["ldap"]["netbios"] + "\\" + user["samaccountname"][0],
                      user["dn"], guid, "{%s}" % guid, sid]
        for identity in identities:
            assert ad.resolve_user(identity, ["mobile"])["dn"] == user["dn"], identity
        with pytest.raises(IdentityNotFound):
            ad.resolve_user(str(uuid.uuid4()), ["mobile"])

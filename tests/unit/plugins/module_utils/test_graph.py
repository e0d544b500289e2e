"""Unit tests of the Graph connection: sign-in choices, retries, refresh, paging, errors, TLS, token cache."""

import base64
import datetime
import email.utils
import errno
import itertools
import json
import os
import re
import stat
import time

import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.entraid.dirsync.plugins.module_utils import _files, _graph, _graph_settings, _sign_in
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import AuthError, GraphError, InvalidInput
from ansible_collections.entraid.dirsync.tests.unit.plugins.module_utils.graph_fakes import identity_platform, make_jwt

SECRET = "s3cr3t-Value~xyz"


class FakeProvider(_sign_in.TokenProvider):
    auth_method = "fake"

    def __init__(self, tokens=("token-1", "token-2", "token-3")):
        super().__init__({"tenant_id": "contoso-tenant"})
        self.tokens = list(tokens)
        self.calls = []

    def get_token(self, force_refresh=False):
        self.calls.append(force_refresh)
        return self.tokens.pop(0)


def graph_error(status, code, message, request_id="req-1", headers=None):
    body = {"error": {"code": code, "message": message, "innerError": {"date": "2026-11-28T10:00:00", "request-id": request_id}}}
    return status, dict(headers or {}), body


OK = (200, {}, {"value": [{"id": "1"}]})


@pytest.fixture
def client(https_server, pki):
    sleeps = []
    provider = FakeProvider()
    session = _graph_settings.build_session({"ca_bundle": pki["ca"], "timeout": 10})
    graph = _graph.GraphClient(provider, https_server.url, session, max_retries=3, sleep=sleeps.append)
    graph.sleeps = sleeps
    graph.provider = provider
    return graph


# --- retries ---------------------------------------------------------------------------------

@pytest.mark.parametrize("header, low, high", [("3", 3, 3), ("2.128", 2.128, 2.128)])
def test_429_waits_for_retry_after_seconds(client, https_server, header, low, high):
    https_server.respond([graph_error(429, "TooManyRequests", "Too many requests", headers={"Retry-After": header}), OK])
    assert client.get("users") == {"value": [{"id": "1"}]}
    assert len(client.sleeps) == 1 and low <= client.sleeps[0] <= high


def test_429_waits_for_retry_after_http_date(client, https_server):
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    https_server.respond([graph_error(429, "TooManyRequests", "Too many requests", headers={"Retry-After": when}), OK])
    client.get("users")
    assert 25 <= client.sleeps[0] <= 30


def test_absurd_retry_after_is_clamped(https_server, pki):
    sleeps = []
    session = _graph_settings.build_session({"ca_bundle": pki["ca"], "timeout": 10})
    client = _graph.GraphClient(FakeProvider(), https_server.url, session, sleep=sleeps.append, deadline=3600)
    https_server.respond([graph_error(429, "TooManyRequests", "slow down", headers={"Retry-After": "86400"}), OK])
    client.get("users")
    assert sleeps == [_graph_settings.MAX_RETRY_AFTER]


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried_then_succeed(client, https_server, status):
    https_server.respond([(status, {}, b"bad gateway"), (status, {}, b""), OK])
    assert client.get("users")["value"] == [{"id": "1"}]
    assert len(https_server.requests) == 3 and len(client.sleeps) == 2


def test_connection_errors_are_retried_then_succeed(client, https_server):
    real = client._session.request
    failures = [requests.ConnectionError("connection reset"), requests.Timeout("read timed out")]

    def flaky(method, url, **kwargs):
        if failures:
            raise failures.pop(0)
        return real(method, url, **kwargs)

    client._session.request = flaky
    https_server.respond([OK])
    assert client.get("users")["value"] == [{"id": "1"}]
    assert len(client.sleeps) == 2


def test_gives_up_after_max_retries_with_clear_error(client, https_server):
    https_server.respond([graph_error(503, "serviceNotAvailable", "Service unavailable", request_id="r-503")] * 4)
    with pytest.raises(GraphError) as caught:
        client.get("users")
    assert len(https_server.requests) == 4 and len(client.sleeps) == 3
    message = str(caught.value)
    assert "Graph GET users returned 503 serviceNotAvailable" in message
    assert "unavailable" in message and "after 3 retries" in message and "max_retries" in message
    assert caught.value.status == 503 and caught.value.request_id == "r-503"


def test_throttling_give_up_says_throttled(client, https_server):
    https_server.respond([graph_error(429, "TooManyRequests", "Too many", headers={"Retry-After": "1"})] * 4)
    with pytest.raises(GraphError, match="throttling"):
        client.get("users")


def test_unreachable_graph_gives_up_with_network_hint(pki):
    session = _graph_settings.build_session({"ca_bundle": pki["ca"], "timeout": 2})
    sleeps = []
    # Port 9 on 127.0.0.1 has no listener: every attempt is refused.
    graph = _graph.GraphClient(FakeProvider(), "https://127.0.0.1:9", session, max_retries=2, sleep=sleeps.append)
    with pytest.raises(GraphError, match="could not be reached after 3 attempts.*network"):
        graph.get("users")
    assert len(sleeps) == 2


def test_backoff_is_exponential_capped_and_jittered():
    assert list(itertools.islice(_graph_settings.BackoffIterator(1, 2, 5, jitter=False), 6)) == [1, 2, 4, 5, 5, 5]
    jittered = list(itertools.islice(_graph_settings.BackoffIterator(1, 2, 5, jitter=True), 200))
    caps = [min(2 ** index, 5) for index in range(200)]
    assert all(0 <= delay <= cap for delay, cap in zip(jittered, caps))
    assert len(set(jittered)) > 1


def test_backoff_sleeps_without_retry_after_stay_under_caps(client, https_server):
    https_server.respond([(503, {}, b"")] * 3 + [OK])
    client.get("users")
    assert len(client.sleeps) == 3
    assert all(0 <= delay <= cap for delay, cap in zip(client.sleeps, (1, 2, 4)))


# --- token refresh on 401 --------------------------------------------------------------------

def _auth(request):
    return request.headers.get("authorization")


def test_expired_token_is_refreshed_once_and_request_resumes(client, https_server):
    def handler(request):
        if _auth(request) == "Bearer token-1":
            return graph_error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
        return OK
    https_server.handler = handler
    assert client.get("users")["value"] == [{"id": "1"}]
    assert client.provider.calls == [False, True]
    assert [_auth(r) for r in https_server.requests] == ["Bearer token-1", "Bearer token-2"]


def test_refresh_mid_paging_resumes_at_the_failed_page(client, https_server):
    next_link = https_server.url + "/v1.0/users?$skiptoken=abc"
    https_server.respond([
        (200, {}, {"value": [1, 2], "@odata.nextLink": next_link}),
        graph_error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."),
        (200, {}, {"value": [3]}),
    ])
    assert list(client.iter_items("users")) == [1, 2, 3]
    assert https_server.requests[2].query == {"$skiptoken": "abc"}
    assert _auth(https_server.requests[2]) == "Bearer token-2"


def test_second_401_after_refresh_is_an_error(client, https_server):
    https_server.respond([graph_error(401, "InvalidAuthenticationToken", "Access token validation failure.", request_id="r-401")] * 2)
    with pytest.raises(GraphError) as caught:
        client.get("users")
    assert caught.value.status == 401 and client.provider.calls == [False, True]
    assert "rejected even after a refresh" in str(caught.value) and "r-401" in str(caught.value)


def test_401_of_another_kind_is_not_refreshed(client, https_server):
    https_server.respond([graph_error(401, "Unauthorized", "Unauthorized")])
    with pytest.raises(GraphError):
        client.get("users")
    assert client.provider.calls == [False]


# --- paging ----------------------------------------------------------------------------------

def test_paging_follows_next_link_to_the_end_and_resends_consistency_level(client, https_server):
    def handler(request):
        if request.headers.get("consistencylevel") != "eventual":
            return graph_error(400, "Request_UnsupportedQuery", "Unsupported query.")
        page = int(request.query.get("page", "0"))
        body = {"value": [page * 10 + i for i in range(2)]}
        if page < 2:
            body["@odata.nextLink"] = https_server.url + "/v1.0/users?$count=true&page=%d" % (page + 1)
        return 200, {}, body
    https_server.handler = handler
    pages = list(client.iter_pages("/users", params={"$count": "true", "$filter": "mobilePhone ne null"}, headers={"ConsistencyLevel": "eventual"}))
    assert pages == [[0, 1], [10, 11], [20, 21]]
    assert [r.path for r in https_server.requests] == ["/v1.0/users"] * 3
    assert https_server.requests[0].query == {"$count": "true", "$filter": "mobilePhone ne null"}
    assert all(r.headers["consistencylevel"] == "eventual" for r in https_server.requests)


def test_next_link_to_another_host_never_gets_the_token(client, https_server):
    https_server.respond([(200, {}, {"value": [1], "@odata.nextLink": "https://evil.example/v1.0/users?$skiptoken=x"})])
    with pytest.raises(GraphError, match="Refusing to send the Graph token to https://evil.example"):
        list(client.iter_items("users"))
    assert len(https_server.requests) == 1


def test_204_returns_none_and_body_is_sent(client, https_server):
    https_server.respond([(204, {}, b"")])
    assert client.patch("directory/onPremisesSynchronization/t1", {"features": {"bypassDirSyncOverridesEnabled": True}}) is None
    request = https_server.requests[0]
    assert request.method == "PATCH" and request.path == "/v1.0/directory/onPremisesSynchronization/t1"
    assert b'"bypassDirSyncOverridesEnabled": true' in request.body


# --- error mapping ---------------------------------------------------------------------------

def test_403_names_status_code_message_request_id_and_permission(client, https_server):
    https_server.respond([graph_error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.", request_id="abc-123")])
    with pytest.raises(GraphError) as caught:
        client.get("users", params={"$select": "id,mobilePhone"})
    error = caught.value
    assert (error.status, error.code, error.request_id) == (403, "Authorization_RequestDenied", "abc-123")
    assert error.graph_message == "Insufficient privileges to complete the operation."
    assert str(error).startswith("Graph GET users returned 403 Authorization_RequestDenied: Insufficient privileges to complete the operation")
    assert "(request-id abc-123)" in str(error) and "User.Read.All" in str(error)
    assert error.details["status"] == 403 and error.details["request_id"] == "abc-123"


@pytest.mark.parametrize("method, path, expected", [
    ("GET", "directory/onPremisesSynchronization", "OnPremDirectorySynchronization.Read.All"),
    ("PATCH", "directory/onPremisesSynchronization/t1", "OnPremDirectorySynchronization.ReadWrite.All"),
    ("PATCH", "users/u1", "User-Phone.ReadWrite.All"),
    ("POST", "servicePrincipals/sp/synchronization/jobs/j/restart", "Synchronization.ReadWrite.All"),
])
def test_403_hint_names_the_permission_for_the_call(client, https_server, method, path, expected):
    https_server.respond([graph_error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")])
    with pytest.raises(GraphError, match=expected.replace(".", r"\.")):
        client.request(method, path, json={} if method != "GET" else None)


def test_404_400_and_synced_user_hints(client, https_server):
    https_server.respond([
        graph_error(404, "Request_ResourceNotFound", "Resource 'nobody@contoso.com' does not exist."),
        graph_error(400, "Request_UnsupportedQuery", "Unsupported Query."),
        graph_error(400, "Request_BadRequest", "Unable to update the specified properties for on-premises mastered Directory Sync objects."),
    ])
    with pytest.raises(GraphError, match="404 Request_ResourceNotFound.*check the id or userPrincipalName"):
        client.get("users/nobody@contoso.com")
    with pytest.raises(GraphError, match="ConsistencyLevel: eventual"):
        client.get("users", params={"$filter": "mobilePhone ne null"})
    with pytest.raises(GraphError, match="change the value in AD"):
        client.patch("users/u1", {"mobilePhone": "+1 425 555 0100"})


def test_error_without_graph_body_uses_text_and_header_request_id(client, https_server):
    https_server.respond([(500, {"request-id": "hdr-1"}, b"<html>oops</html>")])
    with pytest.raises(GraphError) as caught:
        client.get("organization")
    assert caught.value.request_id == "hdr-1" and "<html>oops</html>" in str(caught.value) and "later" in str(caught.value)


# --- TLS: ca_bundle and validate_certs really apply -----------------------------------------

def test_ca_bundle_wins_over_requests_ca_bundle_env(client, https_server, pki, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki["other_ca"])
    monkeypatch.setenv("CURL_CA_BUNDLE", pki["other_ca"])
    https_server.respond([OK])
    assert client.get("users")["value"] == [{"id": "1"}]


def test_without_ca_bundle_the_untrusted_server_fails_with_ca_hint(https_server, pki, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki["other_ca"])
    session = _graph_settings.build_session({"timeout": 5})
    graph = _graph.GraphClient(FakeProvider(), https_server.url, session, sleep=lambda s: None)
    with pytest.raises(GraphError, match="could not be verified.*ca_bundle"):
        graph.get("users")
    assert https_server.requests == []


def test_validate_certs_false_skips_verification_even_with_env_bundle(https_server, pki, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki["other_ca"])
    session = _graph_settings.build_session({"validate_certs": False, "ca_bundle": pki["other_ca"]})
    https_server.respond([OK])
    with pytest.warns(Warning):  # urllib3 warns about the unverified request
        assert _graph.GraphClient(FakeProvider(), https_server.url, session).get("users") == OK[2]


def test_missing_ca_bundle_file_is_reported():
    with pytest.raises(InvalidInput, match="ca_bundle /nonexistent/ca.pem does not exist"):
        _graph_settings.build_session({"ca_bundle": "/nonexistent/ca.pem"})


# --- real msal against a local identity platform ---------------------------------------------

def lab_params(server, pki, **extra):
    params = dict(cloud="custom", authority_host=server.url, graph_endpoint=server.url, ca_bundle=pki["ca"],
                  tenant_id="contoso-tenant", client_id="app-1", validate_certs=True, timeout=10, max_retries=2)
    params.update(extra)
    return params


def test_client_secret_sign_in_uses_ca_bundle_and_refreshes_on_401(https_server, pki, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki["other_ca"])
    app_token = make_jwt({"tid": "contoso-tenant", "roles": ["User.Read.All"]})
    fresh_token = make_jwt({"tid": "contoso-tenant", "roles": ["User.Read.All"], "n": 2})

    def graph(request):
        if request.headers["authorization"] == "Bearer " + app_token:
            return graph_error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
        return OK

    identity_platform(https_server, tokens=[app_token, fresh_token], graph=graph)
    client = _graph.GraphClient.from_params(lab_params(https_server, pki, client_secret=SECRET), sleep=lambda s: None)
    assert client.get("users")["value"] == [{"id": "1"}]
    token_requests = [r for r in https_server.requests if r.path.endswith("/oauth2/v2.0/token")]
    assert len(token_requests) == 2
    assert token_requests[0].form()["scope"] == "%s/.default" % https_server.url
    assert client.is_delegated is False and client.auth_method == "client_secret" and client.tenant_id == "contoso-tenant"


def test_bad_client_secret_says_what_to_do_without_the_secret(https_server, pki):
    error = {"error": "invalid_client", "error_codes": [7000215],
             "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent is %s.\r\nTrace ID: x" % SECRET}
    identity_platform(https_server, error=error)
    with pytest.raises(AuthError) as caught:
        _graph.GraphClient.from_params(lab_params(https_server, pki, client_secret=SECRET)).get("users")
    message = str(caught.value)
    assert "invalid_client" in message and "Value (not its Secret ID)" in message
    assert SECRET not in message and "Trace ID" not in message


def test_device_code_without_cached_sign_in_asks_for_the_sign_in_action(https_server, pki, tmp_path):
    identity_platform(https_server)
    params = lab_params(https_server, pki, auth_method="device_code", token_cache_path=str(tmp_path / "cache.json"))
    with pytest.raises(AuthError, match="entraid.dirsync.sign_in"):
        _graph.GraphClient.from_params(params).get("users")


def test_unreachable_authority_is_an_auth_error_with_hint(pki):
    params = dict(cloud="custom", authority_host="https://127.0.0.1:9", graph_endpoint="https://127.0.0.1:9", ca_bundle=pki["ca"],
                  tenant_id="t", client_id="c", client_secret=SECRET, timeout=2)
    sleeps = []
    with pytest.raises(AuthError, match="Could not reach the identity platform at https://127.0.0.1:9/t") as caught:
        _sign_in.build_token_provider(params, retry=_graph_settings.RetryPolicy(max_retries=2, sleep=sleeps.append))
    assert SECRET not in str(caught.value)
    assert "failed on every attempt, after 2 retries (max_retries)" in str(caught.value) and len(sleeps) == 2


# --- msal error mapping ----------------------------------------------------------------------

@pytest.mark.parametrize("code, expected", [
    (50076, "auth_method=device_code"),
    (50126, "username or password is wrong"),
    (700016, "check client_id, tenant_id and cloud"),
    (7000215, "secret's Value"),
])
def test_aadsts_codes_map_to_advice(code, expected):
    error = _sign_in.auth_error_from_result({"error": "invalid_grant", "error_codes": [code], "error_description": "AADSTS%d: text" % code}, "password")
    assert expected in str(error) and "AADSTS%d" % code in str(error)


def test_password_is_scrubbed_from_auth_errors():
    error = _sign_in.auth_error_from_result({"error": "invalid_grant", "error_description": "bad %s" % SECRET}, "password", {"password": SECRET})
    assert SECRET not in str(error) and "********" in str(error)


# --- access tokens and providers -------------------------------------------------------------

def test_ready_access_token_knows_delegation_and_tenant_and_cannot_refresh(https_server, pki):
    token = make_jwt({"tid": "tenant-from-token", "scp": "OnPremDirectorySynchronization.ReadWrite.All"})
    https_server.respond([graph_error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")])
    client = _graph.GraphClient.from_params(lab_params(https_server, pki, tenant_id=None, client_id=None, access_token=token))
    assert client.is_delegated is True and client.tenant_id == "tenant-from-token"
    with pytest.raises(AuthError, match="cannot be refreshed") as caught:
        client.get("users")
    assert token not in str(caught.value)


def test_app_only_access_token_is_not_delegated():
    provider = _sign_in.AccessTokenProvider({"access_token": make_jwt({"tid": "t", "roles": ["User.Read.All"]})})
    assert provider.is_delegated is False


# --- options: clouds, auth method inference --------------------------------------------------

@pytest.mark.parametrize("cloud, authority, graph", [
    ("global", "https://login.microsoftonline.com", "https://graph.microsoft.com"),
    ("usgov", "https://login.microsoftonline.us", "https://graph.microsoft.us"),
    ("usgov_dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    ("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
])
def test_cloud_endpoints(cloud, authority, graph):
    assert _graph_settings.resolve_endpoints({"cloud": cloud}) == (authority, graph)
    assert _sign_in.graph_scopes({"cloud": cloud}) == [graph + "/.default"]


def test_custom_cloud_needs_both_endpoints_and_strips_slash():
    assert _graph_settings.resolve_endpoints({"cloud": "custom", "authority_host": "https://localhost/", "graph_endpoint": "https://localhost"}) == \
        ("https://localhost", "https://localhost")
    with pytest.raises(InvalidInput, match="cloud=custom needs graph_endpoint"):
        _graph_settings.resolve_endpoints({"cloud": "custom", "authority_host": "https://localhost"})
    with pytest.raises(InvalidInput, match="must be an https:// URL"):
        _graph_settings.resolve_endpoints({"cloud": "custom", "authority_host": "http://localhost", "graph_endpoint": "https://localhost"})


def test_authority_host_conflicting_with_cloud_is_refused_matching_one_is_fine():
    endpoints = _graph_settings.resolve_endpoints({"cloud": "global", "authority_host": "https://login.microsoftonline.com/"})
    assert endpoints[0] == "https://login.microsoftonline.com"
    with pytest.raises(InvalidInput, match="set cloud=custom"):
        _graph_settings.resolve_endpoints({"cloud": "global", "graph_endpoint": "https://localhost"})


@pytest.mark.parametrize("given, method", [
    (dict(access_token="t", client_secret="s"), "access_token"),
    (dict(tenant_id="t", client_id="c", client_secret="s", username="u", password="p"), "client_secret"),
    (dict(tenant_id="t", client_id="c", client_certificate_path="/x.pem"), "client_certificate"),
    (dict(tenant_id="t", client_id="c", username="u", password="p"), "password"),
    (dict(tenant_id="t", client_id="c", token_cache_path="/c.json", username="u"), "device_code"),
    (dict(managed_identity_client_id="mi"), "managed_identity"),
    (dict(auth_method="managed_identity"), "managed_identity"),
])
def test_auth_method_inference(given, method):
    assert _sign_in.infer_auth_method(dict(given, auth_method=given.get("auth_method", "auto"))) == method


def test_missing_credentials_are_named():
    with pytest.raises(InvalidInput, match="No Graph credentials were given"):
        _sign_in.infer_auth_method({"auth_method": "auto", "tenant_id": "t"})
    with pytest.raises(InvalidInput, match="auth_method=client_secret needs tenant_id, client_secret"):
        _sign_in.infer_auth_method({"auth_method": "client_secret", "client_id": "c"})
    with pytest.raises(InvalidInput, match="auth_method=device_code needs token_cache_path; set it"):
        _sign_in.infer_auth_method({"auth_method": "device_code", "client_id": "c", "tenant_id": "t"})


def test_argument_spec_reads_environment_and_marks_secrets(monkeypatch):
    spec = _graph.graph_argument_spec()
    for name in ("client_secret", "client_certificate_password", "password", "access_token"):
        assert spec[name]["no_log"] is True
    for name in ("tenant_id", "client_id", "managed_identity_client_id", "token_cache_path"):
        assert spec[name]["no_log"] is False
    monkeypatch.setenv("AZURE_CLIENT_SECRET", SECRET)
    monkeypatch.setenv("AZURE_TENANT_ID", "tenant-env")
    monkeypatch.setenv("ENTRAID_VALIDATE_CERTS", "false")
    monkeypatch.setenv("ENTRAID_CLOUD", "usgov")
    with patch_module_args({"client_id": "c"}):
        module = AnsibleModule(argument_spec=spec)
    assert module.params["client_secret"] == SECRET and module.params["tenant_id"] == "tenant-env"
    assert module.params["validate_certs"] is False and module.params["cloud"] == "usgov"
    assert _sign_in.infer_auth_method(module.params) == "client_secret"


def test_from_module_warns_when_certificates_are_not_validated(https_server, pki):
    warnings = []

    class Module:
        params = lab_params(https_server, pki, validate_certs=False, access_token="t")
        warn = warnings.append

        @staticmethod
        def debug(message):
            pass

    client = _graph.graph_client_from_module(Module())
    assert client.auth_method == "access_token"
    assert len(warnings) == 1 and "validate_certs=false" in warnings[0]


# --- client certificate ----------------------------------------------------------------------

def _write_cert_pem(path, password=None):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "app")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    encryption = serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
                     + cert.public_bytes(serialization.Encoding.PEM))
    return cert


def test_certificate_credential_has_sha1_thumbprint_and_key(tmp_path):
    cert = _write_cert_pem(tmp_path / "app.pem", password=SECRET)
    credential = _sign_in.load_certificate_credential(str(tmp_path / "app.pem"), SECRET)
    assert credential["thumbprint"] == cert.fingerprint(hashes.SHA1()).hex().upper()
    assert "BEGIN PRIVATE KEY" in credential["private_key"]


def test_certificate_errors_are_clear_and_hide_the_password(tmp_path):
    _write_cert_pem(tmp_path / "app.pem", password=SECRET)
    with pytest.raises(AuthError, match="is encrypted: set client_certificate_password"):
        _sign_in.load_certificate_credential(str(tmp_path / "app.pem"))
    with pytest.raises(AuthError, match="client_certificate_password is wrong") as caught:
        _sign_in.load_certificate_credential(str(tmp_path / "app.pem"), "wrong-" + SECRET)
    assert SECRET not in str(caught.value)
    (tmp_path / "key-only.pem").write_text("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n")
    with pytest.raises(AuthError, match="holds no PEM certificate"):
        _sign_in.load_certificate_credential(str(tmp_path / "key-only.pem"))


# --- token cache -----------------------------------------------------------------------------

def _cache_with_token():
    cache = msal.SerializableTokenCache()
    cache.add({"client_id": "app-1", "scope": ["https://graph.microsoft.com/.default"],
               "token_endpoint": "https://login.microsoftonline.com/t/oauth2/v2.0/token",
               "response": {"access_token": "at", "token_type": "Bearer", "expires_in": 3600}})
    return cache


def test_token_cache_is_written_0600_atomically_only_when_changed(tmp_path):
    old = os.umask(0)  # even a permissive umask must not make the cache readable by others
    try:
        path = tmp_path / "sub" / "cache.json"
        cache = _cache_with_token()
        assert _sign_in.save_token_cache(cache, str(path)) is True
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert _sign_in.save_token_cache(cache, str(path)) is False
        assert [p.name for p in path.parent.iterdir()] == ["cache.json"]
    finally:
        os.umask(old)
    loaded = _sign_in.load_token_cache(str(path))
    assert list(loaded.search(msal.TokenCache.CredentialType.ACCESS_TOKEN))[0]["secret"] == "at"
    assert loaded.has_state_changed is False


def _read_only_file_system(*_args, **_kwargs):
    # What a read-only directory gives: the tests run as root, whom file permissions do not stop.
    raise OSError(errno.EROFS, "Read-only file system")


def test_token_cache_that_cannot_be_saved_is_an_auth_error_naming_token_cache_path(tmp_path, monkeypatch):
    path = tmp_path / "cache.json"
    monkeypatch.setattr(_files.tempfile, "mkstemp", _read_only_file_system)
    with pytest.raises(AuthError, match=r"Cannot save the token cache \(token_cache_path\) %s: Read-only file system\. Make its "
                                        r"directory writable" % re.escape(str(path))) as caught:
        _sign_in.save_token_cache(_cache_with_token(), str(path))
    assert caught.value.details == {"token_cache_path": str(path)}
    assert os.listdir(tmp_path) == []


def test_token_cache_directory_that_is_a_file_or_not_writable_is_refused_before_any_sign_in(tmp_path, monkeypatch):
    (tmp_path / "cache").write_text("not a directory")
    with pytest.raises(AuthError, match=r"token_cache_path\) .*tokens\.json: .*cache is a file, not a directory\. Make its directory writable"):
        _sign_in.check_token_cache_writable(str(tmp_path / "cache" / "tokens.json"))
    monkeypatch.setattr(_sign_in.os, "access", lambda path, mode: False)
    with pytest.raises(AuthError, match=r"the directory .*new is not writable\. Make its directory writable"):
        _sign_in.check_token_cache_writable(str(tmp_path / "new" / "tokens.json"))


def test_refreshed_sign_in_that_cannot_be_saved_fails_with_auth_error(https_server, pki, tmp_path, monkeypatch):
    # A device code sign-in cached earlier whose access token expired: the module refreshes it and must save the cache.
    identity_platform(https_server, tokens=[make_jwt({"tid": "contoso-tenant", "scp": "User.Read", "n": 2})], graph=lambda request: OK)
    cache = msal.SerializableTokenCache()
    client_info = base64.urlsafe_b64encode(json.dumps({"uid": "u1", "utid": "contoso-tenant"}).encode()).decode().rstrip("=")
    cache.add({"client_id": "app-1", "scope": ["%s/.default" % https_server.url],
               "token_endpoint": "%s/contoso-tenant/oauth2/v2.0/token" % https_server.url,
               "response": {"access_token": "expired", "token_type": "Bearer", "expires_in": -10, "refresh_token": "rt-" + SECRET,
                            "client_info": client_info,
                            "id_token": make_jwt({"tid": "contoso-tenant", "oid": "u1", "preferred_username": "admin@contoso.example",
                                                  "iss": "%s/contoso-tenant/v2.0" % https_server.url, "sub": "s", "aud": "app-1"})}})
    path = tmp_path / "cache.json"
    path.write_text(cache.serialize())
    client = _graph.GraphClient.from_params(lab_params(https_server, pki, auth_method="device_code", token_cache_path=str(path)))
    monkeypatch.setattr(_files.tempfile, "mkstemp", _read_only_file_system)
    with pytest.raises(AuthError, match=r"Cannot save the token cache \(token_cache_path\) %s: Read-only" % re.escape(str(path))) as caught:
        client.get("users")
    assert SECRET not in str(caught.value)
    assert [r.form()["grant_type"] for r in https_server.requests if r.path.endswith("/token")] == ["refresh_token"]


def test_missing_cache_is_empty_and_corrupt_cache_is_reported(tmp_path):
    assert list(_sign_in.load_token_cache(str(tmp_path / "none.json")).search(msal.TokenCache.CredentialType.ACCESS_TOKEN)) == []
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AuthError, match="Delete it and run the entraid.dirsync.sign_in action"):
        _sign_in.load_token_cache(str(tmp_path / "bad.json"))


def test_managed_identity_gets_graph_token_and_refreshes_on_401(https_server, pki, monkeypatch):
    # msal's App Service flavour of managed identity: a local token endpoint named by environment variables.
    monkeypatch.setenv("IDENTITY_ENDPOINT", https_server.url + "/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "header-value")
    tokens = [make_jwt({"tid": "mi-tenant", "roles": ["User.Read.All"], "n": n}) for n in (1, 2)]

    def handler(request):
        if request.path == "/msi/token":
            return 200, {}, {"access_token": tokens.pop(0), "expires_on": str(int(time.time()) + 3600), "resource": request.query["resource"]}
        if request.headers["authorization"].endswith(make_jwt({"tid": "mi-tenant", "roles": ["User.Read.All"], "n": 1})):
            return graph_error(401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.")
        return OK

    https_server.handler = handler
    params = lab_params(https_server, pki, tenant_id=None, client_id=None, auth_method="managed_identity", managed_identity_client_id="mi-client")
    client = _graph.GraphClient.from_params(params)
    assert client.get("users") == OK[2]
    token_requests = [r for r in https_server.requests if r.path == "/msi/token"]
    assert [(r.query["resource"], r.query["client_id"], r.headers["x-identity-header"]) for r in token_requests] == \
        [(https_server.url, "mi-client", "header-value")] * 2
    assert client.is_delegated is False and client.tenant_id == "mi-tenant"


class _Accounts:
    """A stand-in msal app whose token cache holds the given accounts."""

    def __init__(self, *usernames):
        self.accounts = [{"username": name, "home_account_id": str(index)} for index, name in enumerate(usernames)]

    def get_accounts(self, username=None):
        return [a for a in self.accounts if username is None or a["username"].lower() == username.lower()]


def test_cached_account_picks_the_one_sign_in_or_says_what_to_do():
    assert _sign_in.cached_account(_Accounts("a@x.test"), None, "/c.json")["username"] == "a@x.test"
    assert _sign_in.cached_account(_Accounts(), "a@x.test", "/c.json") is None
    with pytest.raises(AuthError, match="set username to choose one"):
        _sign_in.cached_account(_Accounts("a@x.test", "b@x.test"), None, "/c.json")
    # Two accounts with one name: a re-created user. Setting username cannot help; the cache is stale.
    with pytest.raises(AuthError, match="stale. Delete the file"):
        _sign_in.cached_account(_Accounts("a@x.test", "a@x.test"), "a@x.test", "/c.json")

"""The emulator over real HTTPS: the identity platform with the real msal library, Graph, the
control API and faults. Each test starts its own emulator in-process on free ports."""

import base64
import datetime
import ipaddress
import json
import threading
import time
import uuid

import jwt
import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from dirsync_lab.emulator.server import build_server

TENANT = "6e1c8d3a-5b1f-4c2e-9a7d-0f3b2c1d4e5f"
OTHER_TENANT = "0a0b0c0d-1111-2222-3333-444455556666"
DAEMON = "a1a1a1a1-0000-4000-8000-000000000001"
READER = "a1a1a1a1-0000-4000-8000-000000000002"
CLI = "a1a1a1a1-0000-4000-8000-000000000003"
SECRET = "lab-secret-value"  # nosec - a throwaway test credential
PASSWORD = "Lab-Passw0rd!"  # nosec - a throwaway test credential
SP_ID = "5f5f5f5f-0000-4000-8000-00000000aaaa"
JOB_ID = "AD2AADProvisioning.0123456789abcdef0123456789abcdef"
GRAPH_SCOPE = ["https://localhost/.default"]
GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
PRIVILEGED_APP = "a1a1a1a1-0000-4000-8000-000000000004"
UNSET = "0001-01-01T00:00:00Z"


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


def _cert(subject_key, subject, issuer_key, issuer, ca=False, sans=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])).public_key(subject_key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    ca_key, server_key, app_key = _key(), _key(), _key()
    ca_pem = _cert(ca_key, "Lab CA", ca_key, "Lab CA", ca=True)
    server_pem = _cert(server_key, "localhost", ca_key, "Lab CA",
                       sans=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    files = {"ca": ca_pem, "cert": server_pem, "key": _pem(server_key)}
    paths = {}
    for name, text in files.items():
        paths[name] = str(directory / (name + ".pem"))
        with open(paths[name], "w", encoding="utf-8") as handle:
            handle.write(text)
    paths["signing_key"] = str(directory / "signing.key")  # created by the emulator on first start
    paths["app_key"] = _pem(app_key)
    paths["app_cert"] = _cert(app_key, "lab app", app_key, "lab app")
    return paths


def make_config(pki, port=0, cycle_seconds=0.0):
    return {
        "listen": {"host": "127.0.0.1", "port": port}, "control": {"host": "127.0.0.1", "port": 0}, "public_host": "localhost",
        "tls": {"cert": pki["cert"], "key": pki["key"]}, "signing_key": pki["signing_key"],
        "graph_audiences": ["https://localhost", "00000003-0000-0000-c000-000000000000"],
        "token_lifetime": 3600, "sync_cycle_seconds": cycle_seconds,
        "tenants": [
            {"id": TENANT, "display_name": "Lab", "verified_domains": ["lab.test", "contoso.example"], "directory_sync": True,
             "ldap": {"url": "ldaps://unused"},
             "apps": [
                 {"client_id": DAEMON, "display_name": "daemon", "client_secret": SECRET, "certificate_pem": pki["app_cert"],
                  "application_permissions": ["User.ReadWrite.All", "Synchronization.ReadWrite.All", "Organization.Read.All",
                                              "OnPremDirectorySynchronization.ReadWrite.All", "AuditLog.Read.All"]},
                 {"client_id": PRIVILEGED_APP, "display_name": "privileged", "client_secret": SECRET,
                  "application_permissions": ["User.ReadWrite.All"], "directory_roles": ["Privileged Authentication Administrator"]},
                 {"client_id": READER, "display_name": "reader", "client_secret": SECRET, "application_permissions": ["User.Read.All"]},
                 {"client_id": CLI, "display_name": "cli", "public_client": True,
                  "delegated_permissions": ["OnPremDirectorySynchronization.ReadWrite.All", "User.ReadWrite.All"]}],
             "users": [
                 {"userPrincipalName": "admin@lab.test", "displayName": "Admin", "password": PASSWORD, "roles": ["Global Administrator"]},
                 {"userPrincipalName": "helpdesk@lab.test", "displayName": "Helpdesk", "password": PASSWORD, "roles": ["Helpdesk Administrator"]},
                 {"userPrincipalName": "mfa@lab.test", "displayName": "MFA", "password": PASSWORD, "roles": ["Global Administrator"],
                  "mfa_required": True}],
             "cloud_sync": {"service_principal_id": SP_ID, "job_id": JOB_ID}},
            {"id": OTHER_TENANT, "display_name": "No sync", "verified_domains": ["nosync.test"], "directory_sync": False,
             "apps": [{"client_id": CLI, "display_name": "cli", "public_client": True,
                       "delegated_permissions": ["OnPremDirectorySynchronization.ReadWrite.All"]}],
             "users": [{"userPrincipalName": "admin@nosync.test", "password": PASSWORD, "roles": ["Global Administrator"]}]},
        ],
    }


class FakeAD:
    """Sync source whose reads wait until ``release`` is set, so a test can watch a cycle in progress."""

    def __init__(self):
        self.entries = []
        self.release = threading.Event()
        self.release.set()

    def read(self, since_usn=None):
        self.release.wait(30)
        return 1, iter([entry for entry in self.entries if since_usn is None or entry["uSNChanged"] > since_usn])


class Lab:
    """A running emulator and helpers to talk to it."""

    def __init__(self, pki, port=0, cycle_seconds=0.0):
        self.ca = pki["ca"]
        self.pki = pki
        self.ad = FakeAD()
        self.emulator = build_server(make_config(pki, port, cycle_seconds), source_factory=lambda _config: self.ad).start()
        self.base = self.emulator.base_url()
        self.control_url = self.emulator.control_url
        self.authority = "%s/%s" % (self.base, TENANT)

    def control(self, method, path, body=None):
        response = requests.request(method, self.control_url + path, json=body, timeout=60)
        assert response.status_code < 300, response.text
        return response.json()

    def get(self, path, token=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = "Bearer " + token
        url = path if path.startswith("https://") else self.base + path
        return requests.get(url, headers=headers, verify=self.ca, timeout=60, **kwargs)

    def patch(self, path, body, token):
        return requests.patch(self.base + path, json=body, headers={"Authorization": "Bearer " + token}, verify=self.ca, timeout=60)

    def post(self, path, body, token):
        return requests.post(self.base + path, json=body, headers={"Authorization": "Bearer " + token}, verify=self.ca, timeout=60)

    def app_token(self, client_id=DAEMON):
        response = requests.post("%s/oauth2/v2.0/token" % self.authority, verify=self.ca, timeout=60, data={
            "grant_type": "client_credentials", "client_id": client_id, "client_secret": SECRET, "scope": GRAPH_SCOPE[0]})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def user_token(self, upn, tenant=TENANT):
        """A delegated token through the device code flow, approved through the control API."""
        token_url = "%s/%s/oauth2/v2.0/" % (self.base, tenant)
        flow = requests.post(token_url + "devicecode", data={"client_id": CLI, "scope": GRAPH_SCOPE[0] + " offline_access"},
                             verify=self.ca, timeout=60).json()
        self.control("POST", "/device/approve", {"user_code": flow["user_code"], "userPrincipalName": upn})
        response = requests.post(token_url + "token", verify=self.ca, timeout=60, data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": CLI, "device_code": flow["device_code"]})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def msal_app(self, credential=None, public=False):
        if public:
            return msal.PublicClientApplication(CLI, authority=self.authority, instance_discovery=False, verify=self.ca)
        return msal.ConfidentialClientApplication(DAEMON, client_credential=credential, authority=self.authority,
                                                  instance_discovery=False, verify=self.ca)

    def seed(self, users):
        return self.control("POST", "/seed/users", {"users": users})

    def stop(self):
        self.ad.release.set()
        self.emulator.stop()


@pytest.fixture(autouse=True)
def _no_ca_override(monkeypatch):
    # requests lets these override the verify= MSAL is given; the lab CA must win.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


@pytest.fixture
def lab(pki):
    running = Lab(pki)
    yield running
    running.stop()


def claims_of(token):
    return jwt.decode(token, options={"verify_signature": False})


def graph_error(response):
    body = response.json()["error"]
    assert body["innerError"]["request-id"] == response.headers["request-id"]
    return body["code"], body["message"]


def synced(index, **props):
    user = {"userPrincipalName": "user%05d@lab.test" % index, "displayName": "User %d" % index, "onPremisesSyncEnabled": True,
            "onPremisesImmutableId": base64.b64encode(uuid.UUID(int=index).bytes_le).decode(), "mobilePhone": "+1 555 %04d" % index}
    user.update(props)
    return user


# Identity platform


def test_discovery_by_tenant_id_domain_and_organizations(lab):
    for segment in (TENANT, "contoso.example", "organizations"):
        config = lab.get("/%s/v2.0/.well-known/openid-configuration" % segment).json()
        assert config["token_endpoint"].startswith(lab.base)
        assert config["device_authorization_endpoint"].endswith("/oauth2/v2.0/devicecode")
    assert lab.get("/lab.test/v2.0/.well-known/openid-configuration").json()["issuer"] == "%s/%s/v2.0" % (lab.base, TENANT)
    missing = lab.get("/nowhere.example/v2.0/.well-known/openid-configuration")
    assert missing.status_code == 400 and missing.json()["error_description"].startswith("AADSTS90002:")
    keys = lab.get("/%s/discovery/v2.0/keys" % TENANT).json()["keys"]
    assert keys[0]["kty"] == "RSA" and keys[0]["kid"]


def test_msal_client_secret_token_works_on_graph(lab):
    result = lab.msal_app(SECRET).acquire_token_for_client(GRAPH_SCOPE)
    assert "access_token" in result, result
    claims = claims_of(result["access_token"])
    assert claims["iss"] == "https://sts.windows.net/%s/" % TENANT and claims["tid"] == TENANT and claims["appid"] == DAEMON
    assert claims["aud"] == "https://localhost" and "User.ReadWrite.All" in claims["roles"]
    # The token verifies against the published key set.
    jwk = lab.get("/%s/discovery/v2.0/keys" % TENANT).json()["keys"][0]
    assert jwt.get_unverified_header(result["access_token"])["kid"] == jwk["kid"]
    jwt.decode(result["access_token"], jwt.PyJWK(jwk).key, algorithms=["RS256"], audience="https://localhost")
    response = lab.get("/v1.0/organization", result["access_token"])
    assert response.status_code == 200 and response.headers["request-id"]
    assert response.json()["value"][0]["id"] == TENANT


@pytest.mark.parametrize("style", ["public_certificate", "thumbprint"])
def test_msal_certificate_credential(lab, style):
    cert = x509.load_pem_x509_certificate(lab.pki["app_cert"].encode())
    if style == "thumbprint":  # MSAL signs RS256 with x5t
        credential = {"private_key": lab.pki["app_key"], "thumbprint": cert.fingerprint(hashes.SHA1()).hex()}
    else:  # MSAL signs PS256 with x5t#S256
        credential = {"private_key": lab.pki["app_key"], "public_certificate": lab.pki["app_cert"]}
    result = lab.msal_app(credential).acquire_token_for_client(GRAPH_SCOPE)
    assert "access_token" in result, result


def test_certificate_not_registered_is_refused(lab):
    other_key = _key()
    credential = {"private_key": _pem(other_key), "public_certificate": _cert(other_key, "rogue", other_key, "rogue")}
    result = lab.msal_app(credential).acquire_token_for_client(GRAPH_SCOPE)
    assert result["error"] == "invalid_client" and 700027 in result["error_codes"]


def test_identity_errors_in_platform_format(lab):
    bad_secret = lab.msal_app("wrong").acquire_token_for_client(GRAPH_SCOPE)
    assert bad_secret["error"] == "invalid_client" and bad_secret["error_description"].startswith("AADSTS7000215:")
    assert bad_secret["trace_id"] and bad_secret["correlation_id"] and bad_secret["timestamp"]
    unknown = requests.post("%s/oauth2/v2.0/token" % lab.authority, verify=lab.ca, timeout=60, data={
        "grant_type": "client_credentials", "client_id": str(uuid.uuid4()), "client_secret": SECRET, "scope": GRAPH_SCOPE[0]}).json()
    assert unknown["error_codes"] == [700016]
    wrong_resource = lab.msal_app(SECRET).acquire_token_for_client(["https://vault.example/.default"])
    assert wrong_resource["error"] == "invalid_resource" and wrong_resource["error_description"].startswith("AADSTS500011:")


def test_msal_device_code_then_silent_refresh(lab):
    app = lab.msal_app(public=True)
    flow = app.initiate_device_flow(scopes=GRAPH_SCOPE)
    assert flow["verification_uri"] == lab.base + "/devicelogin" and flow["interval"] == 1
    pending = lab.control("GET", "/device")["pending"]
    assert [item["user_code"] for item in pending] == [flow["user_code"]]
    lab.control("POST", "/device/approve", {"user_code": flow["user_code"], "userPrincipalName": "admin@lab.test"})
    result = app.acquire_token_by_device_flow(flow)
    assert "access_token" in result, result
    claims = claims_of(result["access_token"])
    assert claims["upn"] == "admin@lab.test" and GLOBAL_ADMIN in claims["wids"]
    assert "OnPremDirectorySynchronization.ReadWrite.All" in claims["scp"].split()
    accounts = app.get_accounts()
    assert [account["username"] for account in accounts] == ["admin@lab.test"]
    refreshed = app.acquire_token_silent(GRAPH_SCOPE, account=accounts[0], force_refresh=True)
    assert refreshed and refreshed["access_token"] != result["access_token"]
    assert lab.get("/v1.0/directory/onPremisesSynchronization", refreshed["access_token"]).status_code == 200


def test_device_code_denied(lab):
    app = lab.msal_app(public=True)
    flow = app.initiate_device_flow(scopes=GRAPH_SCOPE)
    lab.control("POST", "/device/deny", {"user_code": flow["user_code"]})
    result = app.acquire_token_by_device_flow(flow)
    assert result["error"] == "authorization_declined"


class PortRewritingSession(requests.Session):
    """MSAL asks userrealm on port 443 whatever the authority's port; send that to the test's port."""

    def __init__(self, base, ca):
        super().__init__()
        self.base = base
        self.verify = ca

    def request(self, method, url, *args, **kwargs):  # pylint: disable=arguments-differ
        if url.startswith("https://localhost/"):
            url = self.base + url[len("https://localhost"):]
        return super().request(method, url, *args, **kwargs)


@pytest.mark.filterwarnings("ignore:This API has been deprecated:DeprecationWarning")
def test_msal_username_password(lab):
    app = msal.PublicClientApplication(CLI, authority=lab.authority, instance_discovery=False,
                                       http_client=PortRewritingSession(lab.base, lab.ca))
    result = app.acquire_token_by_username_password("admin@lab.test", PASSWORD, scopes=GRAPH_SCOPE)
    assert "access_token" in result, result
    assert claims_of(result["access_token"])["upn"] == "admin@lab.test"
    wrong = app.acquire_token_by_username_password("helpdesk@lab.test", "nope", scopes=GRAPH_SCOPE)
    assert wrong["error"] == "invalid_grant" and 50126 in wrong["error_codes"]
    mfa = app.acquire_token_by_username_password("mfa@lab.test", PASSWORD, scopes=GRAPH_SCOPE)
    assert mfa["error"] == "invalid_grant" and mfa["error_description"].startswith("AADSTS50076:")


def test_password_grant_at_the_token_endpoint(lab):
    """ROPC on the server side: multi-tenant authority, errors, confidential apps refused."""
    def sign_in(username, password, client_id=CLI):
        return requests.post("%s/organizations/oauth2/v2.0/token" % lab.base, verify=lab.ca, timeout=60, data={
            "grant_type": "password", "client_id": client_id, "username": username, "password": password,
            "scope": GRAPH_SCOPE[0] + " openid profile offline_access", "client_info": "1"})
    success = sign_in("admin@lab.test", PASSWORD).json()
    assert claims_of(success["access_token"])["tid"] == TENANT and success["refresh_token"] and success["client_info"]
    assert claims_of(success["id_token"])["preferred_username"] == "admin@lab.test"
    assert sign_in("admin@lab.test", "nope").json()["error_codes"] == [50126]
    assert sign_in("nobody@lab.test", PASSWORD).json()["error_codes"] == [50126]
    mfa = sign_in("mfa@lab.test", PASSWORD).json()
    assert mfa["error"] == "invalid_grant" and mfa["error_codes"] == [50076]
    confidential = sign_in("admin@lab.test", PASSWORD, client_id=DAEMON)
    assert confidential.status_code == 401 and confidential.json()["error_codes"] == [7000218]


# Graph: tokens and permissions


def test_graph_rejects_missing_bad_and_expired_tokens(lab):
    missing = lab.get("/v1.0/users")
    assert missing.status_code == 401 and graph_error(missing)[0] == "InvalidAuthenticationToken"
    good = claims_of(lab.app_token())
    forged = jwt.encode(good, _key(), algorithm="RS256", headers={"kid": jwt.get_unverified_header(lab.app_token())["kid"]})
    assert lab.get("/v1.0/users", forged).status_code == 401
    wrong_audience = lab.emulator.tokens.sign(dict(good, aud="https://vault.example"))
    assert "audience" in graph_error(lab.get("/v1.0/users", wrong_audience))[1]
    expired = lab.emulator.tokens.sign(dict(good, exp=int(time.time()) - 60))
    response = lab.get("/v1.0/users", expired)
    assert response.status_code == 401 and graph_error(response)[1] == "Lifetime validation failed, the token is expired."


def test_graph_permissions(lab):
    lab.seed([synced(1), {"userPrincipalName": "cloud@lab.test", "mobilePhone": "+1 old"}])
    reader = lab.app_token(READER)
    assert lab.get("/v1.0/users", reader).status_code == 200
    denied = lab.patch("/v1.0/users/cloud@lab.test", {"mobilePhone": "+1 2"}, reader)
    assert denied.status_code == 403
    assert graph_error(denied) == ("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    # Directory synchronization features: delegated Global Administrator only.
    assert lab.get("/v1.0/directory/onPremisesSynchronization", lab.app_token()).status_code == 403
    assert lab.get("/v1.0/directory/onPremisesSynchronization", lab.user_token("helpdesk@lab.test")).status_code == 403
    assert lab.get("/v1.0/directory/onPremisesSynchronization", lab.user_token("admin@lab.test")).status_code == 200
    # A delegated phone change needs an admin role besides the scope.
    assert lab.patch("/v1.0/users/cloud@lab.test", {"mobilePhone": "+1 2"}, lab.user_token("helpdesk@lab.test")).status_code == 403
    assert lab.patch("/v1.0/users/cloud@lab.test", {"mobilePhone": "+1 2"}, lab.user_token("admin@lab.test")).status_code == 204


# Graph: users


def test_paging_2500_users_keeps_query_and_counts(lab):
    lab.seed([synced(index) for index in range(2500)])
    token = lab.app_token()
    url = "/v1.0/users?$select=id,userPrincipalName,mobilePhone&$top=999&$filter=onPremisesSyncEnabled eq true"
    ids, pages = [], 0
    while url:
        response = lab.get(url, token)
        assert response.status_code == 200, response.text
        body = response.json()
        assert all(set(item) == {"id", "userPrincipalName", "mobilePhone"} for item in body["value"])
        ids.extend(item["id"] for item in body["value"])
        url = body.get("@odata.nextLink")
        pages += 1
        if url:
            assert "$skiptoken=" in url and "$select=id,userPrincipalName,mobilePhone" in url and url.startswith(lab.base)
    assert pages == 3 and len(ids) == len(set(ids)) == 2500
    everyone = lab.get("/v1.0/users", token).json()
    assert len(everyone["value"]) == 100 and "mobilePhone" in everyone["value"][0] and "onPremisesSyncEnabled" not in everyone["value"][0]


def test_advanced_query_rules(lab):
    lab.seed([synced(index, mobilePhone="+1 555" if index % 2 else "+1 999") for index in range(10)])
    token = lab.app_token()
    eventual = {"ConsistencyLevel": "eventual"}
    query = "/v1.0/users?$filter=mobilePhone eq '%2B1 555'&$top=2"  # a client must encode "+" in a query string
    plain = lab.get(query, token)
    assert plain.status_code == 400 and graph_error(plain)[0] == "Request_UnsupportedQuery"
    assert lab.get(query, token, headers=dict(eventual)).status_code == 400  # $count=true missing
    first = lab.get(query + "&$count=true", token, headers=dict(eventual))
    assert first.status_code == 200 and first.json()["@odata.count"] == 5 and len(first.json()["value"]) == 2
    next_link = first.json()["@odata.nextLink"]
    assert lab.get(next_link, token).status_code == 400  # ConsistencyLevel is not carried over
    second = lab.get(next_link, token, headers=dict(eventual)).json()
    assert second["@odata.count"] == 5 and len(second["value"]) == 2
    for clause in ("onPremisesSyncEnabled ne false", "not(startswith(userPrincipalName,'user'))"):
        assert lab.get("/v1.0/users?$filter=" + clause, token).status_code == 400
        assert lab.get("/v1.0/users?$count=true&$filter=" + clause, token, headers=dict(eventual)).status_code == 200
    found = lab.get("/v1.0/users?$filter=startswith(userPrincipalName,'USER0000') and userPrincipalName eq 'user00003@LAB.test'", token)
    assert [item["userPrincipalName"] for item in found.json()["value"]] == ["user00003@lab.test"]
    assert lab.get("/v1.0/users?$search=\"displayName:User 7\"", token).status_code == 400
    # $search needs the header, not $count.
    search = lab.get("/v1.0/users?$search=\"displayName:User 7\"", token, headers=dict(eventual)).json()
    assert [item["displayName"] for item in search["value"]] == ["User 7"] and "@odata.count" not in search
    assert graph_error(lab.get("/v1.0/users?$skiptoken=forged", token))[0] == "Request_BadRequest"
    assert lab.get("/v1.0/users?$top=1000", token).status_code == 400
    assert lab.get("/v1.0/users?$filter=nosuch eq 1", token).status_code == 400
    assert lab.get("/v1.0/users?$select=nosuch", token).status_code == 400


def test_patch_mobile_synced_vs_cloud_only(lab):
    lab.seed([synced(1), {"userPrincipalName": "cloud@lab.test", "mobilePhone": "+1 old"}])
    token = lab.app_token()
    refused = lab.patch("/v1.0/users/user00001@lab.test", {"mobilePhone": "+1 new"}, token)
    assert refused.status_code == 400 and graph_error(refused) == (
        "Request_BadRequest",
        "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.")
    assert lab.patch("/v1.0/users/cloud@lab.test", {"mobilePhone": "+1 new"}, token).status_code == 204
    cloud = lab.get("/v1.0/users/CLOUD@lab.test?$select=mobilePhone,onPremisesSyncEnabled", token).json()
    assert cloud["mobilePhone"] == "+1 new" and cloud["onPremisesSyncEnabled"] is None
    assert lab.patch("/v1.0/users/cloud@lab.test", {"mobilePhone": "1" * 65}, token).status_code == 400
    missing = lab.patch("/v1.0/users/nobody@lab.test", {"mobilePhone": "+1"}, token)
    assert missing.status_code == 404 and graph_error(missing) == (
        "Request_ResourceNotFound", "Resource 'nobody@lab.test' does not exist or one of its queried reference-property objects are not present.")


def test_directory_sync_features(lab):
    token = lab.user_token("admin@lab.test")
    listing = lab.get("/v1.0/directory/onPremisesSynchronization", token).json()["value"]
    assert [item["id"] for item in listing] == [TENANT] and listing[0]["features"]["bypassDirSyncOverridesEnabled"] is False
    path = "/v1.0/directory/onPremisesSynchronization/" + TENANT
    features = dict(listing[0]["features"], bypassDirSyncOverridesEnabled=True)
    response = lab.patch(path, {"features": features}, token)
    assert response.status_code == 204 and response.content == b""
    after = lab.get(path, token).json()["features"]
    assert after["bypassDirSyncOverridesEnabled"] is True and after["blockSoftMatchEnabled"] is False
    assert lab.patch(path, {"features": {"noSuchFeatureEnabled": True}}, token).status_code == 400
    refused = lab.patch(path, {"features": {"passwordWritebackEnabled": True}}, token)
    assert refused.status_code == 400 and "passwordWritebackEnabled" in graph_error(refused)[1]
    no_sync = lab.user_token("admin@nosync.test", tenant=OTHER_TENANT)
    assert lab.get("/v1.0/directory/onPremisesSynchronization", no_sync).json()["value"] == []


JOBS = "/v1.0/servicePrincipals/%s/synchronization/jobs" % SP_ID


def job_status(lab, token):
    return lab.get(JOBS + "/" + JOB_ID, token).json()["status"]


def wait_idle(lab):
    tenant = lab.emulator.state.default
    deadline = time.monotonic() + 30
    while lab.emulator.sync.running(tenant) is not None:
        assert time.monotonic() < deadline, "the sync engine stayed busy"
        time.sleep(0.05)


def test_cloud_sync_job_restart_runs_a_full_cycle_and_reports_as_documented(lab):
    lab.seed([synced(1)])  # not in AD any more: a full cycle deletes it
    token = lab.app_token()
    assert [job["id"] for job in lab.get(JOBS, token).json()["value"]] == [JOB_ID]
    before = job_status(lab, token)
    assert before["code"] == "NotRun" and before["lastExecution"] is None and "inProgress" not in before
    assert before["steadyStateFirstAchievedTime"] == UNSET
    lab.ad.release.clear()
    # An empty resetScope is accepted ("can also be empty"); every restart answers 204, even during a cycle.
    assert lab.post(JOBS + "/" + JOB_ID + "/restart", {"criteria": {"resetScope": ""}}, token).status_code == 204
    assert lab.post(JOBS + "/" + JOB_ID + "/restart", {"criteria": {"resetScope": "Full"}}, token).status_code == 204
    assert lab.post(JOBS + "/" + JOB_ID + "/restart", {"criteria": {"resetScope": "Bogus"}}, token).status_code == 400
    running = job_status(lab, token)
    assert running["lastExecution"] is None and "inProgress" not in running  # default option: the previous execution
    lab.ad.release.set()
    deadline = time.monotonic() + 30
    while len(lab.control("GET", "/sync")["runs"]) < 2 or lab.control("GET", "/sync")["running"]:
        assert time.monotonic() < deadline, "the queued full cycle did not run"
        time.sleep(0.05)
    runs = lab.control("GET", "/sync")["runs"]
    assert [run["type"] for run in runs] == ["initial", "initial"] and runs[0]["deleted"] == 1
    status = job_status(lab, token)
    last = status["lastExecution"]
    assert status["code"] == "Active" and last["state"] == "Succeeded" and last["timeEnded"] != UNSET
    assert last["timeBegan"] == runs[-1]["started"] and last["activityIdentifier"] and last["error"] is None
    assert status["lastSuccessfulExecution"] == last and status["countSuccessiveCompleteFailures"] == 0
    assert lab.get("/v1.0/servicePrincipals/%s/synchronization/jobs" % uuid.uuid4(), token).status_code == 404


def test_cloud_sync_running_execution_placeholder_option(lab):
    token = lab.app_token()
    assert lab.control("POST", "/options", {"options": {"running_execution": "placeholder"}})["options"]["running_execution"] == "placeholder"
    lab.ad.release.clear()
    assert lab.post(JOBS + "/" + JOB_ID + "/restart", {"criteria": {"resetScope": "Full"}}, token).status_code == 204
    last = job_status(lab, token)["lastExecution"]
    assert last["timeEnded"] == UNSET and last["state"] is None and last["timeBegan"] != UNSET
    lab.ad.release.set()
    wait_idle(lab)
    assert job_status(lab, token)["lastExecution"]["timeEnded"] != UNSET
    assert requests.post(lab.control_url + "/options", json={"options": {"running_execution": "maybe"}}, timeout=30).status_code == 400


def test_object_errors_end_a_cycle_with_entry_level_errors_and_provisioning_logs(lab):
    lab.seed([{"userPrincipalName": "taken@lab.test"}])
    lab.ad.entries.append(ad_entry("taken", uuid.uuid4()))
    token = lab.app_token()
    lab.control("POST", "/sync", {"type": "initial"})
    status = job_status(lab, token)
    last = status["lastExecution"]
    assert last["state"] == "EntryLevelErrors" and last["countEscrowed"] == 1 and last["error"]["code"] == "EntryLevelErrors"
    assert status["lastSuccessfulExecution"] is None
    logs = lab.get("/v1.0/auditLogs/provisioning?$filter=jobId eq '%s' and activityDateTime ge %s and provisioningStatusInfo/status eq "
                   "'failure'" % (JOB_ID, last["timeBegan"]), token)
    assert logs.status_code == 200, logs.text
    [event] = logs.json()["value"]
    assert event["cycleId"] == last["activityIdentifier"] and event["sourceIdentity"]["details"]["userPrincipalName"] == "taken@lab.test"
    lab.control("POST", "/options", {"options": {"provisioning_cycle_id": "unrelated"}})
    [unrelated] = lab.get("/v1.0/auditLogs/provisioning?$filter=jobId eq '%s'" % JOB_ID, token).json()["value"]
    assert unrelated["cycleId"] != last["activityIdentifier"] and unrelated["changeId"] == unrelated["cycleId"]
    assert event["provisioningStatusInfo"]["errorInformation"]["errorCode"] == "AttributeValueMustBeUnique"
    assert lab.get("/v1.0/auditLogs/provisioning", lab.app_token(READER)).status_code == 403


def test_graph_accepts_what_microsoft_documents(lab):
    lab.seed([synced(index, displayName="User %d" % (9 - index), onPremisesUserPrincipalName="u%d@corp.local" % index,
                     onPremisesDistinguishedName="CN=u%d,DC=corp" % index) for index in range(5)]
             + [{"userPrincipalName": "cloud@lab.test", "displayName": "Cloud"}])
    token = lab.app_token()
    # msgraph-sdk sends @odata.type in every PATCH body.
    body = {"@odata.type": "#microsoft.graph.user", "usageLocation": "US", "otherMails": ["c@example.com"]}
    assert lab.patch("/v1.0/users/cloud@lab.test", body, token).status_code == 204
    cloud = lab.get("/v1.0/users/cloud@lab.test?$select=otherMails,usageLocation,city,proxyAddresses", token).json()
    assert (cloud["otherMails"], cloud["usageLocation"], cloud["city"], cloud["proxyAddresses"]) == (["c@example.com"], "US", None, [])
    # $count=true without ConsistencyLevel is ignored on a basic query.
    counted = lab.get("/v1.0/users?$count=true&$filter=onPremisesSyncEnabled eq true", token)
    assert counted.status_code == 200 and "@odata.count" not in counted.json() and len(counted.json()["value"]) == 5
    names, url = [], "/v1.0/users?$orderby=displayName&$top=3"
    while url:
        page = lab.get(url, token).json()
        names.extend(item["displayName"] for item in page["value"])
        url = page.get("@odata.nextLink")
    assert names == sorted(["Admin", "Helpdesk", "MFA", "Cloud"] + ["User %d" % (9 - i) for i in range(5)])
    assert lab.get("/v1.0/users?$orderby=displayName desc", token).json()["value"][0]["displayName"] == "User 9"
    assert lab.get("/v1.0/users?$orderby=jobTitle", token).status_code == 400  # an advanced query
    by_upn = lab.get("/v1.0/users?$filter=onPremisesUserPrincipalName eq 'u3@corp.local'", token).json()["value"]
    assert [item["userPrincipalName"] for item in by_upn] == ["user00003@lab.test"]
    for name in ("onPremisesDistinguishedName", "onPremisesDomainName"):
        refused = lab.get("/v1.0/users?$filter=%s eq 'x'" % name, token, headers={"ConsistencyLevel": "eventual"})
        assert refused.status_code == 400 and graph_error(refused)[0] == "Request_UnsupportedQuery"
    # azure-identity and msgraph-sdk ask for the resource URL form of Graph.
    response = requests.post("%s/oauth2/v2.0/token" % lab.authority, verify=lab.ca, timeout=60, data={
        "grant_type": "client_credentials", "client_id": DAEMON, "client_secret": SECRET, "scope": "https://graph.microsoft.com/.default"})
    assert response.status_code == 200, response.text
    assert lab.get("/v1.0/organization", response.json()["access_token"]).status_code == 200


def test_app_only_phone_change_of_an_administrator_needs_a_privileged_role(lab):
    lab.seed([{"userPrincipalName": "useradmin@lab.test", "roles": ["User Administrator"], "mobilePhone": "+1 old"}])
    token = lab.app_token()
    refused = lab.patch("/v1.0/users/useradmin@lab.test", {"mobilePhone": "+1 new"}, token)
    assert refused.status_code == 403 and graph_error(refused) == ("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
    assert lab.patch("/v1.0/users/useradmin@lab.test", {"jobTitle": "Admin"}, token).status_code == 204  # not sensitive
    assert lab.patch("/v1.0/users/useradmin@lab.test", {"mobilePhone": "+1 new"}, lab.app_token(PRIVILEGED_APP)).status_code == 204
    assert lab.patch("/v1.0/users/useradmin@lab.test", {"mobilePhone": "+1 ga"}, lab.user_token("admin@lab.test")).status_code == 204


# Control API


def ad_entry(name, guid, mobile="+1 AD", usn=1):
    return {"objectGUID": guid.bytes_le, "mS-DS-ConsistencyGuid": None, "userPrincipalName": "%s@lab.test" % name,
            "displayName": name.title(), "givenName": name.title(), "sn": None, "mail": None, "mobile": mobile, "otherMobile": ["+1 AD2"],
            "userAccountControl": 512, "objectSid": None, "distinguishedName": "CN=%s,OU=Sync,DC=lab,DC=test" % name,
            "sAMAccountName": name, "uSNChanged": usn}


def ann_of(lab):
    return next(user for user in lab.control("GET", "/state")["tenants"][0]["users"] if user["userPrincipalName"] == "ann@lab.test")


def test_override_markers_kept_option_brings_the_override_back_when_the_flag_is_off(lab):
    lab.ad.entries.append(ad_entry("ann", uuid.uuid4()))
    lab.control("POST", "/sync", {"type": "initial"})
    lab.control("POST", "/seed/overrides", {"overrides": [{"userPrincipalName": "ann@lab.test", "mobilePhone": "+1 CLOUD"}]})
    assert lab.control("GET", "/options")["options"] == {"overrides_on_bypass": "cleared", "running_execution": "previous",
                                                         "cloud_sync_bypass": "honoured", "provisioning_cycle_id": "activity",
                                                         "delta_minimal": "honoured", "delta_unselected_changes": "skipped"}
    lab.control("POST", "/options", {"options": {"overrides_on_bypass": "kept"}})
    lab.control("POST", "/features", {"features": {"bypassDirSyncOverridesEnabled": True}})
    full = lab.control("POST", "/sync", {"type": "initial"})
    assert full["overrides_bypassed"] == 1 and full["overrides_cleared"] == 0
    assert ann_of(lab)["mobilePhone"] == "+1 AD" and ann_of(lab)["dirSyncOverrides"] == ["mobilePhone"]
    lab.control("POST", "/features", {"features": {"bypassDirSyncOverridesEnabled": False}})
    lab.ad.entries[-1].update(mobile="+1 AD NEW", uSNChanged=5)
    assert lab.control("POST", "/sync", {"type": "delta"})["overrides_kept"] == 1
    assert ann_of(lab)["mobilePhone"] == "+1 AD"  # the override is in force again: AD's change does not reach the cloud


def test_cloud_sync_bypass_ignored_option_keeps_overrides_in_cloud_sync_cycles_only(lab):
    """Microsoft documents bypassDirSyncOverridesEnabled for Entra Connect; the lab can make Cloud Sync ignore it."""
    lab.ad.entries.append(ad_entry("ann", uuid.uuid4()))
    lab.control("POST", "/sync", {"type": "initial"})
    lab.control("POST", "/seed/overrides", {"overrides": [{"userPrincipalName": "ann@lab.test", "mobilePhone": "+1 CLOUD"}]})
    lab.control("POST", "/options", {"options": {"cloud_sync_bypass": "ignored"}})
    lab.control("POST", "/features", {"features": {"bypassDirSyncOverridesEnabled": True}})
    token = lab.app_token()
    assert lab.post(JOBS + "/" + JOB_ID + "/restart", {"criteria": {"resetScope": "Full"}}, token).status_code == 204
    wait_idle(lab)
    cloud_sync = lab.control("GET", "/sync")["runs"][-1]
    assert cloud_sync["engine"] == "cloud_sync" and cloud_sync["overrides_kept"] == 1 and cloud_sync["overrides_cleared"] == 0
    assert ann_of(lab)["mobilePhone"] == "+1 CLOUD" and ann_of(lab)["dirSyncOverrides"] == ["mobilePhone"]
    connect = lab.control("POST", "/sync", {"type": "initial"})  # an Entra Connect cycle honours the flag
    assert connect["engine"] == "entra_connect" and connect["overrides_cleared"] == 1
    assert ann_of(lab)["mobilePhone"] == "+1 AD" and ann_of(lab)["dirSyncOverrides"] == []


def test_with_the_flag_on_a_cloud_edit_is_replaced_at_the_next_delta_cycle(lab):
    lab.ad.entries.append(ad_entry("ann", uuid.uuid4()))
    lab.control("POST", "/sync", {"type": "initial"})
    lab.control("POST", "/features", {"features": {"bypassDirSyncOverridesEnabled": True}})
    lab.control("POST", "/seed/overrides", {"overrides": [{"userPrincipalName": "ann@lab.test", "mobilePhone": "+1 CLOUD EDIT"}]})
    delta = lab.control("POST", "/sync", {"type": "delta"})
    assert delta["read"] == 0 and delta["overrides_cleared"] == 1  # AD did not change; the engine still puts AD's value back
    assert ann_of(lab)["mobilePhone"] == "+1 AD" and ann_of(lab)["dirSyncOverrides"] == []


def test_control_sync_and_overrides(lab):
    lab.ad.entries.append(ad_entry("ann", uuid.uuid4()))
    assert lab.control("POST", "/sync", {"type": "initial"})["created"] == 1
    override = {"userPrincipalName": "ann@lab.test", "mobilePhone": "+1 CLOUD", "alternateMobilePhones": ["+1 C2"]}
    lab.control("POST", "/seed/overrides", {"overrides": [override]})
    kept = lab.control("POST", "/sync", {"type": "initial"})
    assert kept["overrides_kept"] == 2
    ann = next(user for user in lab.control("GET", "/state")["tenants"][0]["users"] if user["userPrincipalName"] == "ann@lab.test")
    assert ann["mobilePhone"] == "+1 CLOUD" and ann["dirSyncOverrides"] == ["alternateMobilePhones", "mobilePhone"]
    assert PASSWORD not in json.dumps(lab.control("GET", "/state"))
    lab.control("POST", "/features", {"features": {"bypassDirSyncOverridesEnabled": True}})
    assert lab.control("POST", "/sync", {"type": "initial"})["overrides_cleared"] == 2
    state = lab.control("GET", "/state?tenant=lab.test")["tenants"][0]
    ann = next(user for user in state["users"] if user["userPrincipalName"] == "ann@lab.test")
    assert ann["mobilePhone"] == "+1 AD" and ann["alternateMobilePhones"] == ["+1 AD2"] and ann["dirSyncOverrides"] == []
    deleted = lab.control("POST", "/seed/delete", {"ids": ["ann@lab.test", "ghost@lab.test"]})
    assert len(deleted["deleted"]) == 1 and deleted["missing"] == ["ghost@lab.test"]
    busy_free = requests.post(lab.control_url + "/sync", json={"tenant": OTHER_TENANT}, timeout=30)
    assert busy_free.status_code == 400 and "directory synchronization" in busy_free.json()["error"]


# Faults


def test_fault_status_every_nth_with_retry_after(lab):
    token = lab.app_token()
    rule = {"match": {"method": "GET", "path": "^/v1.0/users"}, "action": "status", "status": 429, "retry_after": "2.128", "every": 2, "count": 1}
    lab.control("POST", "/faults", rule)
    codes = [lab.get("/v1.0/users", token) for dummy in range(5)]
    assert [response.status_code for response in codes] == [200, 429, 200, 200, 200]
    assert codes[1].headers["Retry-After"] == "2.128" and graph_error(codes[1])[0] == "TooManyRequests"
    rule = lab.control("GET", "/faults")["rules"][0]
    assert rule["matched"] == 5 and rule["fired"] == 1
    lab.control("DELETE", "/faults")
    assert lab.control("GET", "/faults")["rules"] == []


def test_fault_rate_is_deterministic_by_seed(pki):
    patterns = []
    for dummy in range(2):
        lab = Lab(pki)
        try:
            token = lab.app_token()
            rule = {"match": {"path": "^/v1.0/organization"}, "action": "status", "status": 503, "rate": 0.4, "seed": 7}
            lab.control("POST", "/faults", rule)
            patterns.append([lab.get("/v1.0/organization", token).status_code for dummy in range(20)])
        finally:
            lab.stop()
    assert patterns[0] == patterns[1] and {200, 503} == set(patterns[0])


def test_fault_on_identity_uses_oauth_body(lab):
    lab.control("POST", "/faults", {"match": {"path": "/oauth2/v2.0/token$"}, "action": "status", "status": 503, "retry_after": "1"})
    response = requests.post("%s/oauth2/v2.0/token" % lab.authority, verify=lab.ca, timeout=60, data={
        "grant_type": "client_credentials", "client_id": DAEMON, "client_secret": SECRET, "scope": GRAPH_SCOPE[0]})
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json()["error"] == "temporarily_unavailable" and response.json()["error_description"].startswith("AADSTS")
    with pytest.raises(msal.exceptions.MsalServiceError):  # what MSAL makes of a 5xx from the token endpoint
        lab.msal_app(SECRET).acquire_token_for_client(GRAPH_SCOPE)


def test_fault_drop_and_latency(lab):
    token = lab.app_token()
    lab.control("POST", "/faults", {"match": {"path": "^/v1.0/organization"}, "action": "drop", "count": 1})
    with pytest.raises(requests.exceptions.ConnectionError):
        lab.get("/v1.0/organization", token)
    assert lab.get("/v1.0/organization", token).status_code == 200
    lab.control("DELETE", "/faults")
    lab.control("POST", "/faults", {"match": {"path": "^/v1.0/organization"}, "action": "latency", "seconds": 0.05})
    assert lab.get("/v1.0/organization", token).status_code == 200
    assert lab.control("GET", "/faults")["rules"][0]["fired"] == 1


def test_fault_token_lifetime_expires_tokens_early(lab):
    lab.control("POST", "/faults", {"match": {"path": "/token$"}, "action": "token_lifetime", "seconds": -5})
    result = lab.msal_app(SECRET).acquire_token_for_client(GRAPH_SCOPE)
    assert result["expires_in"] == 3600
    response = lab.get("/v1.0/users", result["access_token"])
    assert response.status_code == 401 and graph_error(response)[1] == "Lifetime validation failed, the token is expired."
    lab.control("DELETE", "/faults")
    assert lab.get("/v1.0/users", lab.app_token()).status_code == 200


# Users delta query (https://learn.microsoft.com/graph/api/user-delta)

DELTA_SELECT = "id,userPrincipalName,mobilePhone,jobTitle,onPremisesSyncEnabled"


def delta_round(lab, token, url, headers=None):
    """Every item of one delta round -> (items, deltaLink); asserts a page has a nextLink or a deltaLink, never both."""
    items = []
    while True:
        response = lab.get(url, token, headers=dict(headers or {}))
        assert response.status_code == 200, response.text
        body = response.json()
        assert ("@odata.nextLink" in body) != ("@odata.deltaLink" in body)
        items.extend(body["value"])
        if "@odata.deltaLink" in body:
            return items, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]
        assert "$skiptoken=" in url and "$select" not in url  # the query travels in the token


def test_delta_initial_round_then_changes_and_removals(lab):
    lab.seed([synced(index) for index in range(250)] + [{"userPrincipalName": "cloud@lab.test", "jobTitle": "Clerk"}])
    token = lab.app_token()
    initial, delta_link = delta_round(lab, token, "/v1.0/users/delta?$select=" + DELTA_SELECT)
    by_upn = {item["userPrincipalName"]: item for item in initial}
    assert len(initial) == len(by_upn) == 254  # the 250, the cloud user and the 3 configured accounts
    assert by_upn["user00007@lab.test"]["mobilePhone"] == "+1 555 0007"
    assert "mobilePhone" not in by_upn["cloud@lab.test"]  # never set: left out
    assert "$deltatoken=" in delta_link
    unchanged, delta_link = delta_round(lab, token, delta_link)
    assert unchanged == []
    ids = {item["userPrincipalName"]: item["id"] for item in initial}
    lab.control("POST", "/seed/overrides", {"overrides": [{"userPrincipalName": "user00003@lab.test", "mobilePhone": "+1 new"}]})
    assert lab.patch("/v1.0/users/cloud@lab.test", {"jobTitle": None}, token).status_code == 204
    lab.control("POST", "/seed/delete", {"ids": [ids["user00004@lab.test"]]})
    lab.control("POST", "/seed/delete", {"ids": [ids["user00005@lab.test"]], "reason": "deleted"})
    lab.seed([synced(900)])
    changes, delta_link = delta_round(lab, token, delta_link)
    by_id = {item["id"]: item for item in changes}
    assert set(by_id) == {ids["user00003@lab.test"], ids["cloud@lab.test"], ids["user00004@lab.test"], ids["user00005@lab.test"],
                          lab.get("/v1.0/users/user00900@lab.test", token).json()["id"]}
    # Without Prefer: return=minimal, an updated user carries every selected property it has; a cleared one as null.
    assert by_id[ids["user00003@lab.test"]]["mobilePhone"] == "+1 new"
    assert by_id[ids["user00003@lab.test"]]["userPrincipalName"] == "user00003@lab.test"
    assert by_id[ids["cloud@lab.test"]]["jobTitle"] is None
    assert by_id[ids["user00004@lab.test"]] == {"id": ids["user00004@lab.test"], "@removed": {"reason": "changed"}}
    assert by_id[ids["user00005@lab.test"]]["@removed"] == {"reason": "deleted"}
    assert delta_round(lab, token, delta_link)[0] == []


@pytest.mark.parametrize("minimal", ["honoured", "ignored"])
def test_delta_prefer_minimal_returns_only_changed_properties_where_honoured(lab, minimal):
    lab.control("POST", "/options", {"options": {"delta_minimal": minimal}})
    lab.seed([synced(1)])
    token = lab.app_token()
    dummy, delta_link = delta_round(lab, token, "/v1.0/users/delta?$select=" + DELTA_SELECT)
    lab.control("POST", "/seed/overrides", {"overrides": [{"userPrincipalName": "user00001@lab.test", "mobilePhone": "+1 new"}]})
    response = lab.get(delta_link, token, headers={"Prefer": "return=minimal"})
    [item] = response.json()["value"]
    if minimal == "honoured":
        assert set(item) == {"id", "mobilePhone"} and response.headers["Preference-Applied"] == "return=minimal"
    else:
        assert item["userPrincipalName"] == "user00001@lab.test" and "Preference-Applied" not in response.headers
    assert item["mobilePhone"] == "+1 new"


@pytest.mark.parametrize("unselected", ["skipped", "returned"])
def test_delta_change_of_an_unselected_property_is_an_option(lab, unselected):
    lab.control("POST", "/options", {"options": {"delta_unselected_changes": unselected}})
    lab.seed([{"userPrincipalName": "cloud@lab.test", "mobilePhone": "+1 1"}])
    token = lab.app_token()
    dummy, delta_link = delta_round(lab, token, "/v1.0/users/delta?$select=id,mobilePhone")
    assert lab.patch("/v1.0/users/cloud@lab.test", {"department": "Sales"}, token).status_code == 204
    items, dummy = delta_round(lab, token, delta_link)
    assert [item.get("mobilePhone") for item in items] == ([] if unselected == "skipped" else ["+1 1"])


def test_delta_latest_token_expiry_and_bad_queries(lab):
    lab.seed([synced(1)])
    token = lab.app_token()
    latest = lab.get("/v1.0/users/delta?$deltatoken=latest&$select=id,mobilePhone", token).json()
    assert latest["value"] == [] and "$deltatoken=" in latest["@odata.deltaLink"]  # "sync from now": no resource data
    lab.control("POST", "/seed/overrides", {"overrides": [{"userPrincipalName": "user00001@lab.test", "mobilePhone": "+1 new"}]})
    items, delta_link = delta_round(lab, token, latest["@odata.deltaLink"])
    assert [set(item) for item in items] == [{"id", "mobilePhone"}]
    assert lab.get("/v1.0/users/microsoft.graph.delta()?$select=id", token).status_code == 200  # the SDKs' spelling
    lab.control("POST", "/delta/expire", {})
    expired = lab.get(delta_link, token)
    assert expired.status_code == 400 and graph_error(expired)[0] == "syncStateNotFound"
    assert graph_error(lab.get("/v1.0/users/delta?$deltatoken=forged", token))[0] == "badRequest"
    for query in ("$top=5", "$filter=onPremisesSyncEnabled eq true", "$orderby=displayName"):
        assert lab.get("/v1.0/users/delta?" + query, token).status_code == 400

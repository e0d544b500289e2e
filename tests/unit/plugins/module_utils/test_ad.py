"""AD client: filter escaping, option handling, paged search, user resolution, modify, connection errors.

Searches run against ldap3's MOCK_SYNC strategy (real filter parsing and paged results);
connection errors against a tiny LDAPS responder on 127.0.0.1 with a throw-away CA.
"""

import datetime
import socket
import ssl
import sys
import threading
import time
import uuid

import ldap3
import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.entraid.dirsync.plugins.module_utils import _ad, _identity, _user_phone
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import (
    ADError, AmbiguousIdentity, IdentityNotFound, InvalidInput,
)
from ansible_collections.entraid.dirsync.tests.unit.plugins.module_utils.ldap_messages import search_result_entry

BASE = "DC=lab,DC=test"
ADMIN = "CN=Administrator,CN=Users," + BASE


# -- filter escaping ------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("alice", "alice"),
    ("a*", "a\\2a"),
    ("x)(uid=*", "x\\29\\28uid=\\2a"),
    ("back\\slash", "back\\5cslash"),
    ("nul\x00", "nul\\00"),
    ("Jürgen", "J\\c3\\bcrgen"),
    (b"\x01\xff", "\\01\\ff"),
])
def test_escape_filter_value(value, expected):
    assert _ad.escape_filter_value(value) == expected


# -- argument spec --------------------------------------------------------------------

def test_argument_spec_reads_environment(monkeypatch):
    monkeypatch.setenv("ENTRAID_AD_SERVER", "dc1.lab.test")
    monkeypatch.setenv("ENTRAID_AD_TLS_MODE", "start_tls")
    monkeypatch.setenv("ENTRAID_AD_PASSWORD", "s3cret")
    result = ArgumentSpecValidator(_ad.ad_argument_spec()).validate({})
    assert not result.error_messages
    params = result.validated_parameters
    assert params["ad_server"] == ["dc1.lab.test"]
    assert params["ad_tls_mode"] == "start_tls"
    assert params["ad_cert_validation"] == "always"
    assert params["ad_allow_plaintext"] is False
    assert "s3cret" in result._no_log_values  # pylint: disable=protected-access
    assert _ad.ADClient(params)._port() == 389  # pylint: disable=protected-access
    assert _ad.ADClient(dict(params, ad_tls_mode="ldaps"))._port() == 636  # pylint: disable=protected-access


def _params(**overrides):
    """Module parameters of the AD connection (every option is prefixed ad_); overrides are given unprefixed."""
    params = dict(server="127.0.0.1", port=None, tls_mode="ldaps", cert_validation="always", ca_cert=None,
                  auth_protocol="simple", username="Administrator@LAB.TEST", password="pw",
                  allow_plaintext=False, connect_timeout=5)
    params.update(overrides)
    return {"ad_" + key: value for key, value in params.items()}


@pytest.mark.parametrize("overrides, words", [
    (dict(server=None), "ENTRAID_AD_SERVER"),
    (dict(password=None), "password"),
    (dict(tls_mode="none"), "allow_plaintext"),
    (dict(auth_protocol="kerberos"), "kinit"),
    (dict(ca_cert="/nonexistent/ca.pem"), "ca_cert"),
    (dict(ca_cert="-----BEGIN CERTIFICATE-----\nnot pem\n-----END CERTIFICATE-----\n"), "ca_cert"),
])
def test_bad_options_are_refused_before_connecting(overrides, words):
    with pytest.raises(InvalidInput) as info:
        _ad.ADClient(_params(**overrides)).connect()
    assert words in str(info.value)


def test_kerberos_without_gssapi_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gssapi", None)  # as on a host without it: importing it fails
    with pytest.raises(ADError) as info:
        _ad.ADClient(_params(auth_protocol="kerberos", password=None)).connect()
    assert "gssapi" in str(info.value)


# -- searches against ldap3's mock ----------------------------------------------------

class MockConnection:
    """ldap3 MOCK_SYNC cannot serve the RootDSE (empty DN); answer that one search here."""

    def __init__(self):
        server = ldap3.Server("mock", get_info=ldap3.NONE)
        self.conn = ldap3.Connection(server, user=ADMIN, password="pw", client_strategy=ldap3.MOCK_SYNC,
                                     raise_exceptions=False, auto_referrals=False, check_names=False)
        self.conn.strategy.add_entry(ADMIN, {"userPassword": "pw", "objectClass": ["top", "person"]})
        self.conn.bind()
        self.response = self.result = None
        self.modify_result = self.search_result = None

    def add_user(self, name, **attributes):
        dn = "CN=%s,CN=Users,%s" % (name, BASE)
        guid = uuid.uuid4()
        values = {"objectClass": ["top", "person", "organizationalPerson", "user"], "objectCategory": "person",
                  "sAMAccountName": name, "userPrincipalName": "%s@lab.test" % name, "objectGUID": guid.bytes_le}
        values.update(attributes)
        self.conn.strategy.add_entry(dn, values)
        return dn, str(guid)

    def search(self, base, ldap_filter, search_scope, attributes, **kwargs):
        if base == "":
            self.response = [{"type": "searchResEntry", "dn": "", "raw_attributes": {"defaultNamingContext": [BASE.encode()]}}]
            self.result = {"result": 0, "description": "success"}
            return True
        ok = self.conn.search(base, ldap_filter, search_scope=search_scope, attributes=attributes, **kwargs)
        self.response, self.result = self.conn.response, self.conn.result
        if self.search_result:
            self.result = self.search_result
            return False
        return ok

    def modify(self, dn, changes):
        if self.modify_result:
            self.result = self.modify_result
            return False
        ok = self.conn.modify(dn, changes)
        self.result = self.conn.result
        return ok

    def unbind(self):
        self.conn.unbind()


@pytest.fixture
def mock():
    return MockConnection()


@pytest.fixture
def client(mock):
    with _ad.ADClient(_params(), connection=mock) as ad:
        yield ad


def test_base_dn_from_rootdse(client):
    assert client.base_dn == BASE


def test_paged_search_returns_every_entry_past_page_limit(mock, client):
    for i in range(2345):
        mock.add_user("user%04d" % i, mobile="+1 425 555 %04d" % i)
    entries = list(client.paged_search(None, "(objectClass=user)", ["sAMAccountName", "Mobile", "otherMobile"], page_size=1000))
    assert len(entries) == 2345
    assert len({entry["dn"] for entry in entries}) == 2345
    sample = next(entry for entry in entries if entry["samaccountname"] == ["user0042"])
    assert sample["mobile"] == ["+1 425 555 0042"]
    assert sample["othermobile"] == []


def test_binary_attributes_stay_bytes(mock, client):
    sid = "S-1-5-21-3623811015-3361044348-30300820-1013"
    dn, guid = mock.add_user("alice", objectSid=_identity.sid_string_to_bytes(sid), mobile="+49 89 1")
    entry = next(client.paged_search(None, "(sAMAccountName=alice)", ["objectGUID", "objectSid", "mobile", "mS-DS-ConsistencyGuid"]))
    assert entry["dn"] == dn
    assert _identity.guid_bytes_to_string(entry["objectguid"][0]) == guid
    assert _identity.sid_bytes_to_string(entry["objectsid"][0]) == sid
    assert entry["mobile"] == ["+49 89 1"]
    assert _identity.source_anchor(entry) == _identity.guid_to_immutable_id(guid)


def test_paged_search_on_missing_base_says_so(client):
    with pytest.raises(ADError) as info:
        list(client.paged_search("OU=Nope," + BASE, "(objectClass=*)", ["cn"]))
    assert "does not exist" in str(info.value)


@pytest.mark.parametrize("identity", ["alice@lab.test", "alice", "LAB\\alice"])
def test_resolve_user_by_name(mock, client, identity):
    dn, _guid = mock.add_user("alice")
    mock.add_user("alice2")
    assert client.resolve_user(identity, ["mobile"])["dn"] == dn


def test_resolve_user_by_guid_sid_and_dn(mock, client):
    sid = "S-1-5-21-1-2-3-1104"
    dn, guid = mock.add_user("bob", objectSid=_identity.sid_string_to_bytes(sid))
    mock.add_user("carol", objectSid=_identity.sid_string_to_bytes("S-1-5-21-1-2-3-1105"))
    assert client.resolve_user(guid, ["mobile"])["dn"] == dn
    assert client.resolve_user("{%s}" % guid.upper(), ["mobile"])["dn"] == dn
    assert client.resolve_user(sid, ["mobile"])["dn"] == dn
    assert client.resolve_user(dn, ["mobile"])["dn"] == dn


def test_resolve_user_dn_of_a_non_user_is_not_found(mock, client):
    group = "CN=Staff,CN=Users," + BASE
    mock.conn.strategy.add_entry(group, {"objectClass": ["top", "group"], "objectCategory": "group"})
    with pytest.raises(IdentityNotFound):
        client.resolve_user(group, ["mobile"])
    with pytest.raises(IdentityNotFound):
        client.resolve_user("CN=Nobody,CN=Users," + BASE, ["mobile"])


def test_resolve_user_none_and_ambiguous(mock, client):
    with pytest.raises(IdentityNotFound) as info:
        client.resolve_user("ghost@lab.test", ["mobile"])
    assert "ghost@lab.test" in str(info.value)
    first = mock.add_user("dup1", userPrincipalName="dup@lab.test")[0]
    second = mock.add_user("dup2", userPrincipalName="dup@lab.test")[0]
    with pytest.raises(AmbiguousIdentity) as info:
        client.resolve_user("dup@lab.test", ["mobile"])
    assert "dup@lab.test" in str(info.value) and first in str(info.value) and second in str(info.value)
    assert info.value.details["matches"] == sorted([first, second])


@pytest.mark.parametrize("identity", ["a*", "*", "x)(sAMAccountName=*", "x)(|(sAMAccountName=*)"])
def test_filter_injection_cannot_match_other_users(mock, client, identity):
    for name in ("ab", "abc", "x"):
        mock.add_user(name)
    with pytest.raises(IdentityNotFound):
        client.resolve_user(identity, ["mobile"])
    literal = mock.add_user("a*")[0]
    assert client.resolve_user("a*", ["mobile"])["dn"] == literal


def test_resolve_users_in_bulk_reports_each_identity(mock, client):
    named = {}
    for i in range(250):
        named["u%03d@lab.test" % i] = mock.add_user("u%03d" % i)
    dn5, guid7 = named["u005@lab.test"][0], named["u007@lab.test"][1]
    mock.add_user("twin1", userPrincipalName="twin@lab.test")
    mock.add_user("twin2", userPrincipalName="twin@lab.test")
    identities = list(named) + [guid7, dn5, "LAB\\u009", "ghost@lab.test", "twin@lab.test", "CN=Gone," + BASE]
    results = client.resolve_users(identities, ["mobile"])
    assert set(results) == set(identities)
    for upn, (dn, _guid) in named.items():
        assert results[upn]["dn"] == dn
        assert results[upn]["mobile"] == []
    assert results[guid7]["dn"] == named["u007@lab.test"][0]
    assert results[dn5]["dn"] == dn5
    assert results["LAB\\u009"]["dn"] == named["u009@lab.test"][0]
    assert isinstance(results["ghost@lab.test"], IdentityNotFound)
    assert isinstance(results["twin@lab.test"], AmbiguousIdentity)
    assert isinstance(results["CN=Gone," + BASE], IdentityNotFound)


# -- modify ---------------------------------------------------------------------------

def test_modify_replace_add_delete(mock, client):
    dn = mock.add_user("erin", mobile="+1", otherMobile=["+2", "+3"])[0]
    client.modify(dn, {"mobile": ("replace", ["+9"]), "otherMobile": [("delete", ["+2"]), ("add", ["+4"])]})
    entry = client.resolve_user(dn, ["mobile", "otherMobile"])
    assert entry["mobile"] == ["+9"]
    assert sorted(entry["othermobile"]) == ["+3", "+4"]
    client.modify(dn, {"mobile": ("replace", [])})
    assert client.resolve_user(dn, ["mobile"])["mobile"] == []


def test_modify_without_rights_names_the_permission(mock, client):
    dn = mock.add_user("frank")[0]
    mock.modify_result = {"result": 50, "description": "insufficientAccessRights", "message": "00002098: SecErr"}
    with pytest.raises(ADError) as info:
        client.modify(dn, {"mobile": ("replace", ["+1"])})
    text = str(info.value)
    assert "Administrator@LAB.TEST" in text and "mobile" in text and "dsacls" in text


def test_modify_without_rights_gives_the_callers_advice(mock, client):
    dn = mock.add_user("hank")[0]
    mock.modify_result = {"result": 50, "description": "insufficientAccessRights", "message": "00002098: SecErr"}
    with pytest.raises(ADError) as info:
        client.modify(dn, {"description": ("replace", ["x"])})
    generic = str(info.value)
    # Generic code names the attribute written, not the phone attributes.
    assert "description" in generic and "Write Property" in generic and "mobile" not in generic
    with pytest.raises(ADError) as info:
        client.modify(dn, {"description": ("replace", ["x"])}, rights_hint="Ask the AD team for the right.")
    assert str(info.value).endswith("(insufficientAccessRights (00002098: SecErr)). Ask the AD team for the right.")


def test_user_phone_writes_pass_the_phone_rights_advice(mock, client):
    dn = mock.add_user("ivan")[0]
    mock.modify_result = {"result": 50, "description": "insufficientAccessRights", "message": "00002098: SecErr"}
    specs = _user_phone.parse_specs([{"identity": dn, "mobile": "+1 206 555 0100"}], "ad")
    error = _user_phone.apply_ad(client, specs)[0]["error"]
    assert "may not write mobile on %s" % dn in error
    assert "WP;mobile;user" in error and "otherMobile" in error


@pytest.mark.parametrize("code, description, words", [
    (19, "constraintViolation", "rangeUpper"),
    (21, "invalidAttributeSyntax", "rangeUpper"),
    (53, "unwillingToPerform", "writable"),
])
def test_modify_refusals_say_what_to_do(mock, client, code, description, words):
    dn = mock.add_user("judy")[0]
    mock.modify_result = {"result": code, "description": description, "message": ""}
    with pytest.raises(ADError) as info:
        client.modify(dn, {"mobile": ("replace", ["+1"])})
    text = str(info.value)
    assert description in text and words in text
    assert "64 characters" not in text  # _phone.validate already refuses longer numbers: not the likely cause


def test_failed_search_says_what_to_do(mock, client):
    mock.search_result = {"result": 1, "description": "operationsError", "message": "000004DC: LdapErr"}
    with pytest.raises(ADError) as info:
        list(client.paged_search(None, "(objectClass=user)", ["cn"]))
    text = str(info.value)
    assert "operationsError" in text and "run the task again" in text


def test_modify_rejects_unknown_operation(mock, client):
    dn = mock.add_user("gina")[0]
    with pytest.raises(InvalidInput):
        client.modify(dn, {"mobile": ("upsert", ["+1"])})


# -- connection errors against a local LDAPS responder --------------------------------

def _certificate(subject, issuer_name, issuer_key, key, names, ca=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Test CA", "Test CA", ca_key, ca_key, None, ca=True)
    files = {"ca": folder / "ca.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for label, names in (("good", ["localhost"]), ("wrong", ["elsewhere.example"])):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(names[0], "Test CA", ca_key, key, names)
        path = folder / ("%s.pem" % label)
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        files[label] = path
    return files


def _tlv(tag, content):
    length = len(content)
    if length < 0x80:
        return bytes([tag, length]) + content
    encoded = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(encoded)]) + encoded + content


def _ldap_result(tag, code, message=b""):
    return _tlv(tag, _tlv(0x0A, bytes([code])) + _tlv(0x04, b"") + _tlv(0x04, message))


def _read_message(sock):
    """One LDAP message -> (message id bytes, operation tag) or None at EOF."""
    head = sock.recv(2)
    if len(head) < 2:
        return None
    length = head[1]
    if length & 0x80:
        length = int.from_bytes(sock.recv(length & 0x7F), "big")
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            return None
        body += chunk
    id_length = body[1]
    return body[2:2 + id_length], body[2 + id_length]


class LoopbackServer:
    """A TCP server on 127.0.0.1 that hands every accepted connection to ``_handle`` in a background thread."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                raw, _addr = self.listener.accept()
            except OSError:
                return
            self._handle(raw)

    def _handle(self, raw):
        raise NotImplementedError

    def close(self):
        self.listener.close()


class FakeLDAPS(LoopbackServer):
    """Answers bind with ``bind_code``/``bind_message`` and the RootDSE search with defaultNamingContext."""

    def __init__(self, certfile, bind_code=0, bind_message=b""):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certfile)
        self.bind_code, self.bind_message = bind_code, bind_message
        super().__init__()

    def _handle(self, raw):
        try:
            with self.context.wrap_socket(raw, server_side=True) as conn:
                self._answer(conn)
        except (OSError, ssl.SSLError):
            pass  # the client rejected our certificate: that is what some tests expect

    def _answer(self, conn):
        while True:
            message = _read_message(conn)
            if message is None:
                return
            message_id, operation = message
            msgid = _tlv(0x02, message_id)
            if operation == 0x60:  # bind
                conn.sendall(_tlv(0x30, msgid + _ldap_result(0x61, self.bind_code, self.bind_message)))
            elif operation == 0x63:  # search: the RootDSE
                attribute = _tlv(0x30, _tlv(0x04, b"defaultNamingContext") + _tlv(0x31, _tlv(0x04, BASE.encode())))
                entry = _tlv(0x64, _tlv(0x04, b"") + _tlv(0x30, attribute))
                conn.sendall(_tlv(0x30, msgid + entry) + _tlv(0x30, msgid + _ldap_result(0x65, 0)))
            else:  # unbind
                return


@pytest.fixture
def ldaps_server(pki):
    servers = []

    def start(label="good", **kwargs):
        server = FakeLDAPS(str(pki[label]), **kwargs)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.close()


def test_connect_binds_and_reads_base_dn(pki, ldaps_server):
    server = ldaps_server()
    with _ad.ADClient(_params(server="localhost", port=server.port, ca_cert=str(pki["ca"]))) as ad:
        assert ad.base_dn == BASE
    # The CA may also be given as PEM text.
    with _ad.ADClient(_params(server="localhost", port=server.port, ca_cert=pki["ca"].read_text())) as ad:
        assert ad.base_dn == BASE


def test_ca_cert_path_expands_home_and_variables(pki, ldaps_server, monkeypatch):
    # ad_ca_cert is a str option (it may be PEM text), so Ansible does not expand it as a path.
    server = ldaps_server()
    monkeypatch.setenv("HOME", str(pki["ca"].parent))
    monkeypatch.setenv("PKI_DIR", str(pki["ca"].parent))
    for value in ("~/ca.pem", "$PKI_DIR/ca.pem", "${PKI_DIR}/ca.pem"):
        with _ad.ADClient(_params(server="localhost", port=server.port, ca_cert=value)) as ad:
            assert ad.base_dn == BASE
    with pytest.raises(InvalidInput) as info:
        _ad.ADClient(_params(server="localhost", port=server.port, ca_cert="~/missing.pem")).connect()
    assert "~/missing.pem (%s)" % (pki["ca"].parent / "missing.pem") in str(info.value)


def test_untrusted_certificate_points_to_ca_cert(ldaps_server):
    server = ldaps_server()
    with pytest.raises(ADError) as info:
        _ad.ADClient(_params(server="localhost", port=server.port)).connect()
    assert "ca_cert" in str(info.value)
    # cert_validation=ignore accepts it.
    with _ad.ADClient(_params(server="localhost", port=server.port, cert_validation="ignore")) as ad:
        assert ad.base_dn == BASE


def test_wrong_host_name_in_certificate(pki, ldaps_server):
    server = ldaps_server("wrong")
    params = _params(server="localhost", port=server.port, ca_cert=str(pki["ca"]))
    with pytest.raises(ADError) as info:
        _ad.ADClient(params).connect()
    assert "ignore_hostname" in str(info.value)
    with _ad.ADClient(dict(params, ad_cert_validation="ignore_hostname")) as ad:
        assert ad.base_dn == BASE


def test_bad_password_names_the_bind_account(pki, ldaps_server):
    message = b"80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563"
    server = ldaps_server(bind_code=49, bind_message=message)
    with pytest.raises(ADError) as info:
        _ad.ADClient(_params(server="localhost", port=server.port, ca_cert=str(pki["ca"]), password="wrong-pw")).connect()
    text = str(info.value)
    assert "Administrator@LAB.TEST" in text and "password" in text and "wrong-pw" not in text


def test_unreachable_server():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    with pytest.raises(ADError) as info:
        _ad.ADClient(_params(server="127.0.0.1", port=port)).connect()
    assert "Cannot reach" in str(info.value) and str(port) in str(info.value)


# -- faults: StartTLS with a bad certificate, a controller that stops answering -------

class FakeStartTLS(LoopbackServer):
    """Plain LDAP that accepts StartTLS, then does a TLS handshake with ``certfile``."""

    def __init__(self, certfile):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certfile)
        super().__init__()

    def _handle(self, raw):
        try:
            message_id, operation = _read_message(raw)
            assert operation == 0x77  # ExtendedRequest: StartTLS
            raw.sendall(_tlv(0x30, _tlv(0x02, message_id) + _ldap_result(0x78, 0)))
            with self.context.wrap_socket(raw, server_side=True):
                pass
        except (OSError, ssl.SSLError, AssertionError, TypeError):
            pass  # the client rejected our certificate, as the test expects
        finally:
            raw.close()


def test_start_tls_with_an_untrusted_certificate_reports_the_certificate_error(pki):
    server = FakeStartTLS(str(pki["good"]))
    try:
        with pytest.raises(ADError) as info:
            _ad.ADClient(_params(server="localhost", port=server.port, tls_mode="start_tls")).connect()
    finally:
        server.close()
    text = str(info.value)
    assert text.startswith("TLS with ldap://localhost:%d failed: [SSL: CERTIFICATE_VERIFY_FAILED]" % server.port)
    assert "ad_ca_cert" in text and "Bad file descriptor" not in text


class SilentServer(LoopbackServer):
    """Accepts connections and never answers: a hung domain controller."""

    def __init__(self):
        self.accepted = []
        super().__init__()

    def _handle(self, raw):
        self.accepted.append(raw)

    def close(self):
        for sock in self.accepted:
            sock.close()
        super().close()


@pytest.mark.parametrize("tls_mode", ["ldaps", "start_tls"])
def test_unresponsive_controller_fails_within_connect_timeout_naming_the_timeout(tls_mode):
    server = SilentServer()
    started = time.monotonic()
    try:
        with pytest.raises(ADError) as info:
            _ad.ADClient(_params(server="localhost", port=server.port, tls_mode=tls_mode, connect_timeout=1)).connect()
    finally:
        server.close()
    elapsed = time.monotonic() - started
    text = str(info.value)
    assert elapsed < 3, "took %.1f s with ad_connect_timeout=1" % elapsed
    assert "did not answer within 1 seconds (ad_connect_timeout)" in text
    assert "certificate" not in text.lower() and "ad_ca_cert" not in text and server.accepted


def test_after_connecting_answers_get_the_longer_receive_timeout(pki, ldaps_server):
    server = ldaps_server()
    with _ad.ADClient(_params(server="localhost", port=server.port, ca_cert=str(pki["ca"]), connect_timeout=2)) as ad:
        assert ad.base_dn == BASE
        assert ad._conn.socket.gettimeout() == 2 * _ad.RECEIVE_TIMEOUT_FACTOR  # pylint: disable=protected-access


# -- every option checked before anything connects ------------------------------------

@pytest.mark.parametrize("overrides, message", [
    (dict(port=99999), "ad_port must be a TCP port from 1 to 65535, got 99999."),
    (dict(port=0), "ad_port must be a TCP port from 1 to 65535, got 0."),
    (dict(port=-1), "ad_port must be a TCP port from 1 to 65535, got -1."),
    (dict(connect_timeout=-1), "ad_connect_timeout must be a number of seconds of at least 1, got -1."),
    (dict(connect_timeout=0), "ad_connect_timeout must be a number of seconds of at least 1, got 0."),
    (dict(server="  "), "No AD server given"),
])
def test_out_of_range_options_are_refused_before_connecting(overrides, message, monkeypatch):
    monkeypatch.setattr(ldap3, "Connection", lambda *a, **k: pytest.fail("connected despite a bad option"))
    with pytest.raises(InvalidInput) as info:
        _ad.ADClient(_params(**overrides)).connect()
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("ldap_filter", [
    "(department=Sales)(=x)", "(department)", "(&(a=b)(c~d))", "((department=Sales))", "(department=Sales)x",
    "(!(a=b)(c=d))", "(cn=back\\slash)", "(cn=\\zz)", "(dep artment=Sales)",
])
def test_malformed_ldap_filter_is_refused_before_anything_is_read(ldap_filter):
    from ansible_collections.entraid.dirsync.plugins.module_utils import _drift  # pylint: disable=import-outside-toplevel
    with pytest.raises(InvalidInput) as info:
        _drift.check_scope({"search_bases": ["OU=Sync," + BASE], "ldap_filter": ldap_filter, "graph_page_size": 999})
    text = str(info.value)
    assert text.startswith("ldap_filter ") and "is not a valid LDAP filter" in text and "connection" not in text


@pytest.mark.parametrize("ldap_filter", [
    "department=Sales", "(&(department=Sales)(!(title=Intern)))", "(mobile=*)", "(cn=a*b*c)", "(cn=\\2a\\28)",
    "(userAccountControl:1.2.840.113556.1.4.803:=2)", "(whenChanged>=20240101000000.0Z)", "(|(l=Paris)(l=Lyon))",
    "(msDS-cloudExtensionAttribute1=x)", "(cn:dn:=Users)", "(2.5.4.3=x)", "(cn;lang-en=x)",
])
def test_valid_ldap_filters_are_accepted(ldap_filter):
    from ansible_collections.entraid.dirsync.plugins.module_utils import _drift  # pylint: disable=import-outside-toplevel
    assert _drift.user_filter(ldap_filter).startswith("(&" + _ad.USER_FILTER)


def test_invalid_filter_reaching_a_search_is_named_not_blamed_on_the_connection(client):
    with pytest.raises(InvalidInput, match=r"The LDAP filter \(a~b\) is not valid .*nothing was searched"):
        list(client.paged_search(BASE, "(a~b)", ["cn"]))


# -- several domain controllers: failover at connect time and mid-run ----------------------------

class LosingConnection:
    """A connection to the first DC that is lost during the next modify or search: ``applied`` says whether the DC had
    applied the modify before the connection broke (the client cannot know)."""

    def __init__(self, mock, applied=True, lose_search=False):
        self.mock, self.applied, self.lose_search, self.modifies = mock, applied, lose_search, []

    def __getattr__(self, name):
        return getattr(self.mock, name)

    def modify(self, dn, changes):
        self.modifies.append(dn)
        if self.applied:
            self.mock.modify(dn, changes)
        raise ldap3.core.exceptions.LDAPSocketReceiveError("error receiving data: [Errno 104] Connection reset by peer")

    def search(self, *args, **kwargs):
        if self.lose_search:
            raise ldap3.core.exceptions.LDAPSessionTerminatedByServerError("session terminated by server")
        return self.mock.search(*args, **kwargs)

    def unbind(self):
        pass


class CountingConnection:
    """The next DC: the same directory (replicated), counting the writes it receives."""

    def __init__(self, mock):
        self.mock, self.modifies = mock, []

    def __getattr__(self, name):
        return getattr(self.mock, name)

    def modify(self, dn, changes):
        self.modifies.append(dn)
        return self.mock.modify(dn, changes)

    def unbind(self):
        pass


def _servers_answering(monkeypatch, answers):
    """Make ADClient._open answer per host: a connection, or an exception to raise. -> the hosts tried, in order."""
    tried = []

    def fake_open(self):
        tried.append(self.host)
        answer = answers[self.host]
        if isinstance(answer, Exception):
            raise answer
        return answer
    monkeypatch.setattr(_ad.ADClient, "_open", fake_open)
    monkeypatch.setattr(_ad.ADClient, "_set_receive_timeout", lambda self: None)
    return tried


def test_ad_server_takes_a_list_a_comma_separated_string_and_ports():
    client = _ad.ADClient(_params(server=["dc1.lab.test", " dc2.lab.test:3269", "[::1]:1636", ""]))
    assert client.servers() == [("dc1.lab.test", None), ("dc2.lab.test", 3269), ("::1", 1636)]
    assert _ad.ADClient(_params(server="dc1, dc2")).servers() == [("dc1", None), ("dc2", None)]
    result = ArgumentSpecValidator(_ad.ad_argument_spec()).validate({"ad_server": "dc1.lab.test,dc2.lab.test"})
    assert result.validated_parameters["ad_server"] == ["dc1.lab.test", "dc2.lab.test"]
    with pytest.raises(InvalidInput, match="the port of dc2:70000 is not a TCP port"):
        _ad.ADClient(_params(server=["dc1", "dc2:70000"])).connect()


def test_an_unreachable_domain_controller_is_skipped(monkeypatch, mock):
    tried = _servers_answering(monkeypatch, {"dc1": _ad.ADUnreachable("Cannot reach the domain controller at dc1"), "dc2": mock})
    with _ad.ADClient(_params(server=["dc1", "dc2"])) as client:
        assert tried == ["dc1", "dc2"] and client.host == "dc2" and client.base_dn == BASE
        assert client._describe() == "ldaps://dc2:636"  # pylint: disable=protected-access


def test_when_no_domain_controller_answers_each_error_is_named(monkeypatch):
    _servers_answering(monkeypatch, {"dc1": _ad.ADUnreachable("refused here"), "dc2": _ad.ADUnreachable("timed out there")})
    with pytest.raises(ADError) as info:
        _ad.ADClient(_params(server=["dc1", "dc2"])).connect()
    text = str(info.value)
    assert text.startswith("None of the 2 domain controllers in ad_server could be reached")
    assert "ldaps://dc1:636: refused here" in text and "ldaps://dc2:636: timed out there" in text


def test_a_refused_bind_is_not_retried_on_the_next_domain_controller(monkeypatch, mock):
    # The same wrong password on every DC would only lock the account out sooner.
    tried = _servers_answering(monkeypatch, {"dc1": ADError("AD refused the bind account x"), "dc2": mock})
    with pytest.raises(ADError, match="AD refused the bind account"):
        _ad.ADClient(_params(server=["dc1", "dc2"])).connect()
    assert tried == ["dc1"]


@pytest.mark.parametrize("applied", [True, False])
def test_a_write_whose_outcome_is_unknown_is_read_again_on_the_next_dc_and_done_once(monkeypatch, mock, applied):
    dn = mock.add_user("kim", mobile="+1 old")[0]
    losing, next_dc = LosingConnection(mock, applied=applied), CountingConnection(mock)
    _servers_answering(monkeypatch, {"dc1": AssertionError("not again"), "dc2": next_dc})
    client = _ad.ADClient(_params(server=["dc1", "dc2"]), connection=losing)
    client.connect()

    client.modify(dn, {"mobile": ("replace", ["+1 new"])})

    assert client.resolve_user(dn, ["mobile"])["mobile"] == ["+1 new"]
    assert losing.modifies == [dn]
    # Applied before the loss: found in AD, not written again. Not applied: written once, on the next DC.
    assert next_dc.modifies == ([] if applied else [dn])
    assert client.recovered == ([dn] if applied else [])
    assert client.reconnections == [{"lost": "ldaps://dc1:636", "connected": "ldaps://dc2:636",
                                     "reason": "error receiving data: [Errno 104] Connection reset by peer"}]


def test_unknown_outcome_compares_added_and_deleted_values(monkeypatch, mock):
    dn = mock.add_user("lee", otherMobile=["+2", "+3"])[0]
    _servers_answering(monkeypatch, {"dc1": AssertionError("not again"), "dc2": CountingConnection(mock)})
    client = _ad.ADClient(_params(server=["dc1", "dc2"]), connection=LosingConnection(mock, applied=True))
    client.connect()
    client.modify(dn, {"otherMobile": [("delete", ["+2"]), ("add", ["+4"])]})
    assert client.recovered == [dn]
    assert sorted(client.resolve_user(dn, ["otherMobile"])["othermobile"]) == ["+3", "+4"]


def test_a_lost_search_is_sent_again_on_the_next_dc(monkeypatch, mock):
    dn = mock.add_user("max", mobile="+5")[0]
    _servers_answering(monkeypatch, {"dc1": AssertionError("not again"), "dc2": CountingConnection(mock)})
    client = _ad.ADClient(_params(server=["dc1", "dc2"]), connection=mock)
    client.connect()
    client._conn = LosingConnection(mock, lose_search=True)  # pylint: disable=protected-access
    assert client.resolve_user("max@lab.test", ["mobile"])["dn"] == dn
    assert client.host == "dc2"


def test_a_domain_controller_that_stays_away_ends_the_run_with_what_to_do(monkeypatch, mock):
    dn = mock.add_user("ned")[0]
    monkeypatch.setattr(_ad, "RECONNECT_PAUSE", 0.01)
    monkeypatch.setattr(_ad, "RECONNECT_FACTOR", 0.05)
    tried = _servers_answering(monkeypatch, {"dc1": _ad.ADUnreachable("refused")})
    client = _ad.ADClient(_params(server="dc1", connect_timeout=1), connection=LosingConnection(mock, applied=False))
    client.connect()
    with pytest.raises(ADError) as info:
        client.modify(dn, {"mobile": ("replace", ["+1"])})
    assert "was lost (error receiving data" in str(info.value)
    assert "no domain controller of ad_server could be reached again within" in str(info.value)
    # One DC: it is tried again until the window ends (a restarting DC comes back).
    assert len(tried) > 1 and set(tried) == {"dc1"}


def test_a_domain_controller_of_another_domain_is_refused_mid_run(monkeypatch, mock):
    dn = mock.add_user("ola")[0]
    other = CountingConnection(mock)
    _servers_answering(monkeypatch, {"dc1": AssertionError("not again"), "dc2": other})
    client = _ad.ADClient(_params(server=["dc1", "dc2"]), connection=LosingConnection(mock))
    client.connect()
    client.base_dn = "DC=other,DC=test"
    with pytest.raises(ADError, match="ad_server lists domain controllers of different domains"):
        client.modify(dn, {"mobile": ("replace", ["+1"])})
    assert other.modifies == []


def _search_result_entry(dn, attributes):
    """A searchResEntry as a domain controller sends it, decoded by ldap3's own fast decoder."""
    from ldap3.utils.asn1 import decode_message_fast  # pylint: disable=import-outside-toplevel
    return decode_message_fast(search_result_entry(dn, attributes))


def test_search_entries_are_decoded_once_into_raw_values_that_the_entry_keeps_exactly():
    conn = ldap3.Connection(ldap3.Server("dc1.lab.test", get_info=ldap3.NONE), client_strategy=ldap3.SYNC)
    _ad._decode_search_entries_raw_only(conn)  # pylint: disable=protected-access
    guid = uuid.uuid4().bytes_le
    decoded = conn.strategy.decode_response_fast(_search_result_entry(
        "CN=Ann,OU=Sync,DC=lab,DC=test", {"mobile": [b"+1 206 555 0166 "], "objectGUID": [guid], "otherMobile": [b"+1\t2", b" "]}))
    assert decoded["type"] == "searchResEntry" and decoded["dn"] == "CN=Ann,OU=Sync,DC=lab,DC=test"
    assert decoded["attributes"] == {}  # no formatted copy
    entry = _ad._to_entry(decoded["dn"], decoded["raw_attributes"], ["mobile", "objectguid", "othermobile", "sn"])  # pylint: disable=protected-access
    assert entry == {"dn": "CN=Ann,OU=Sync,DC=lab,DC=test", "mobile": ["+1 206 555 0166 "], "objectguid": [guid],
                     "othermobile": ["+1\t2", " "], "sn": []}
    del decoded["attributes"]["member;range=0-1499"]  # ldap3's range handling deletes keys it never set: harmless

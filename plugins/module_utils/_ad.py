# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Active Directory over LDAP: connection options, bind, paged search, user resolution, modify.

Entries are plain dicts ``{"dn": str, "<attribute lower-case>": [values]}``: binary attributes
(objectGUID, objectSid, mS-DS-ConsistencyGuid, ...) keep bytes, text is decoded. Every
requested attribute is present as a key (``[]`` when the entry has no value).
"""

from __future__ import annotations

import ipaddress
import os
import queue
import re
import socket
import ssl
import struct
import threading
import time
import traceback

from ansible.module_utils.basic import env_fallback

from ansible_collections.entraid.dirsync.plugins.module_utils._errors import (
    ADError,
    AmbiguousIdentity,
    IdentityNotFound,
    InvalidInput,
)
from ansible_collections.entraid.dirsync.plugins.module_utils import _identity, _ldap_entries

try:
    import ldap3
    from ldap3.core import exceptions as ldap3_exceptions
    from ldap3.operation.search import parse_filter as _ldap3_parse_filter, raw_attributes_to_dict_fast
    from ldap3.utils.conv import to_unicode as _ldap3_to_unicode
except ImportError:
    HAS_LDAP3 = False
    LDAP3_IMPORT_ERROR = traceback.format_exc()
else:
    HAS_LDAP3 = True
    LDAP3_IMPORT_ERROR = None

TLS_MODES = ("ldaps", "start_tls", "none")
CERT_VALIDATION = ("always", "ignore_hostname", "ignore")
AUTH_PROTOCOLS = ("simple", "kerberos")

# Attributes whose values are binary in AD; all others are decoded as UTF-8 text.
BINARY_ATTRIBUTES = frozenset((
    "objectguid", "objectsid", "ms-ds-consistencyguid", "sidhistory", "tokengroups",
    "thumbnailphoto", "jpegphoto", "usercertificate", "msexchmailboxguid", "msds-generationid",
    "schemaidguid", "attributesecurityguid", "invocationid",
))

USER_FILTER = "(&(objectCategory=person)(objectClass=user))"
# Attributes read to map bulk results back to the identities that asked for them.
_MATCH_ATTRIBUTES = ("userPrincipalName", "sAMAccountName", "objectGUID", "objectSid")
_BATCH_SIZE = 100
_PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"

# "data <code>" in AD's invalidCredentials message (Samba and Windows use the same codes).
_BIND_DATA_CODES = {
    "525": "the account does not exist",
    "52e": "the password is wrong",
    "530": "the account may not sign in at this time",
    "531": "the account may not sign in from this computer",
    "532": "the password has expired",
    "533": "the account is disabled",
    "701": "the account has expired",
    "773": "the password must be changed before the account can sign in",
    "775": "the account is locked out",
}

REPLACE = "replace"
ADD = "add"
DELETE = "delete"

# Answers to searches may take longer than setting up the connection: each is awaited this many times ad_connect_timeout.
RECEIVE_TIMEOUT_FACTOR = 6
# A connection lost mid-run is re-established within this many times ad_connect_timeout (a DC that restarts, or the next
# one of ad_server), trying again every RECONNECT_PAUSE seconds.
RECONNECT_FACTOR = 6
RECONNECT_PAUSE = 1.0
_SERVER_PORT = re.compile(r"^\[(?P<v6>[^\]]+)\]:(?P<v6port>[0-9]+)$|^(?P<host>[^:\[\]]+):(?P<port>[0-9]+)$")

# One simple item of a filter: attribute (or extensible match), operator, value (RFC 4515).
_FILTER_ITEM = re.compile(r"\(([^()&|!][^()]*)\)")
_ITEM_PARTS = re.compile(r"^(?P<attr>[^=~<>]*?)(?P<op>~=|>=|<=|=)(?P<value>.*)$", re.S)
_ATTRIBUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*$")
_EXTENSIBLE = re.compile(r"^(?:(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*)?(?::dn)?(?::(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+))?:$")
_BAD_ESCAPE = re.compile(r"\\(?![0-9A-Fa-f]{2})")


def check_ldap_filter(ldap_filter, option="ldap_filter"):
    """Refuse a malformed LDAP filter before anything connects (ldap3 would fail mid-search with a misleading error).

    ``ldap_filter`` must be complete, with its outer parentheses.
    """
    def bad(reason):
        return InvalidInput("%s %r is not a valid LDAP filter: %s. Give an LDAP filter such as (department=Sales) or "
                            "(&(department=Sales)(!(title=Intern))); in values, write * ( ) \\ as \\2a \\28 \\29 \\5c."
                            % (option, ldap_filter, reason))
    for match in _FILTER_ITEM.finditer(ldap_filter):
        parts = _ITEM_PARTS.match(match.group(1))
        if not parts:
            raise bad("%s has no comparison (attribute=value)" % match.group(0))
        attribute = parts.group("attr")
        if parts.group("op") == "=" and attribute.endswith(":"):
            valid = _EXTENSIBLE.match(attribute) and attribute != ":"
        else:
            valid = _ATTRIBUTE.match(attribute)
        if not valid:
            raise bad("%s does not start with an attribute name" % match.group(0) if not attribute
                      else "%r in %s is not an attribute name" % (attribute, match.group(0)))
        if _BAD_ESCAPE.search(parts.group("value")):
            raise bad("%s has a backslash not followed by two hexadecimal digits" % match.group(0))
    if HAS_LDAP3:
        try:
            _ldap3_parse_filter(ldap_filter, None, auto_escape=False, auto_encode=False, validator=None, check_names=False)
        except ldap3_exceptions.LDAPException as exc:
            raise bad(str(exc)) from None
    return ldap_filter


def ad_argument_spec():
    """Options shared by every module that talks to AD: the connection (names mirror microsoft.ad) and ``ad_sources``,
    several AD sources of one tenant (``_ad_sources``), each item taking the connection options without their defaults or
    environment fallbacks (a missing one is the module's own), a ``name`` and its ``search_bases``."""
    connection = _connection_argument_spec()
    source = {name: {key: value for key, value in spec.items() if key not in ("default", "fallback")} for name, spec in connection.items()}
    source.update(name=dict(type="str", required=True), search_bases=dict(type="list", elements="str"))
    connection["ad_sources"] = dict(type="list", elements="dict", options=source)
    return connection


def _connection_argument_spec():
    return dict(
        # A list, tried in order; one name (the usual case) is a list of one, "dc1,dc2" a list of two.
        ad_server=dict(type="list", elements="str", fallback=(env_fallback, ["ENTRAID_AD_SERVER"])),
        ad_port=dict(type="int", fallback=(env_fallback, ["ENTRAID_AD_PORT"])),
        ad_tls_mode=dict(type="str", choices=list(TLS_MODES), default="ldaps", fallback=(env_fallback, ["ENTRAID_AD_TLS_MODE"])),
        ad_cert_validation=dict(type="str", choices=list(CERT_VALIDATION), default="always",
                                fallback=(env_fallback, ["ENTRAID_AD_CERT_VALIDATION"])),
        ad_ca_cert=dict(type="str", no_log=False, fallback=(env_fallback, ["ENTRAID_AD_CA_CERT"])),
        ad_auth_protocol=dict(type="str", choices=list(AUTH_PROTOCOLS), default="simple",
                              fallback=(env_fallback, ["ENTRAID_AD_AUTH_PROTOCOL"])),
        ad_username=dict(type="str", fallback=(env_fallback, ["ENTRAID_AD_USERNAME"])),
        ad_password=dict(type="str", no_log=True, fallback=(env_fallback, ["ENTRAID_AD_PASSWORD"])),
        ad_allow_plaintext=dict(type="bool", default=False),
        ad_connect_timeout=dict(type="int", default=10),
    )


def escape_filter_value(value):
    """Escape a value for an LDAP filter (RFC 4515).

    ``*``, ``(``, ``)``, ``\\`` and NUL are escaped, and so is every non-ASCII byte (after UTF-8
    encoding), so no value can change the filter's structure. Bytes (GUIDs, SIDs) are
    escaped entirely.
    """
    if isinstance(value, (bytes, bytearray)):
        return "".join("\\%02x" % byte for byte in value)
    out = []
    for byte in str(value).encode("utf-8"):
        if byte in b"*()\\\x00" or byte > 0x7E or byte < 0x20:
            out.append("\\%02x" % byte)
        else:
            out.append(chr(byte))
    return "".join(out)


def _is_ip_address(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _text(value):
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def _to_entry(dn, raw_attributes, requested):
    entry = {"dn": dn}
    for name, values in raw_attributes.items():
        key, values = name.lower(), values or ()  # ldap3 gives None for an attribute sent without values
        entry[key] = list(values) if key in BINARY_ATTRIBUTES else [_text(value) for value in values]
    for key in requested:
        entry.setdefault(key, [])
    return entry


class _NoFormattedCopy(dict):
    """Stands in for ldap3's formatted copy of an entry's attributes, which ADClient never reads (it converts the raw
    values itself, in _to_entry). ldap3's range and empty-attribute handling may still set or delete keys in it."""

    def __delitem__(self, key):
        self.pop(key, None)


_DECODER_LOCK = threading.Lock()


def _use_lean_entry_decoder():
    """Let ldap3's synchronous strategy read plain search entries with ``_ldap_entries`` (every other message, and every
    connection not set up by ``_decode_search_entries_raw_only``, is decoded by ldap3 as before)."""
    from ldap3.strategy import sync  # pylint: disable=import-outside-toplevel
    with _DECODER_LOCK:
        if not hasattr(sync.decode_message_fast, "ldap3_decode"):
            sync.decode_message_fast = _ldap_entries.message_decoder(sync.decode_message_fast)


def _decode_search_entries_raw_only(conn):
    """Make ``conn`` decode search entries into their raw values only.

    ldap3 decodes every attribute value twice, raw and as a formatted copy; at 100,000 users the copy was about 15% of
    a drift read's time (issue 16's profile). Entries come from ``_ldap_entries``' decoder where it read them (a plain
    dict of raw values), else from ldap3's. Other responses are decoded as ldap3 does.
    """
    strategy = conn.strategy
    if not getattr(conn, "fast_decoder", False) or not hasattr(strategy, "decode_response_fast"):
        return
    _use_lean_entry_decoder()
    decode = strategy.decode_response_fast

    def decode_response(message):
        if message["protocolOp"] != 4:  # searchResEntry
            return decode(message)
        payload = message["payload"]
        if isinstance(payload, _ldap_entries.Entry):
            raw_dn, raw_attributes = payload.dn, payload.attributes
        else:
            raw_dn, raw_attributes = payload[0][3], raw_attributes_to_dict_fast(payload[1][3])
        result = {"raw_dn": raw_dn, "dn": _ldap3_to_unicode(raw_dn, from_server=True), "raw_attributes": raw_attributes,
                  "attributes": _NoFormattedCopy(), "type": "searchResEntry"}
        if message["controls"]:
            result["controls"] = dict(strategy.decode_control_fast(control[3]) for control in message["controls"])
        return result

    strategy.decode_response_fast = decode_response


def _requested_keys(attributes):
    return [name.lower() for name in attributes if name not in ("*", "+", "1.1")]


def _result_text(result):
    text = result.get("description") or "error"
    if result.get("message"):
        text += " (%s)" % result["message"].strip().rstrip("\x00")
    return text


class ADUnreachable(ADError):
    """The domain controller could not be reached or did not answer: the next one of ad_server may be tried."""


def _lost(exc):
    """Whether an ldap3 exception means the connection is gone (or hung), so the outcome of the request is unknown."""
    return isinstance(exc, (ldap3_exceptions.LDAPCommunicationError, ldap3_exceptions.LDAPResponseTimeoutError, socket.error)) \
        or "timed out" in str(exc).lower() or "socket" in str(exc).lower()


def _target(changes):
    """What ``{attribute: [(ldap op, values)]}`` leaves in each attribute -> {attribute: (exact set or None, must have, must lack)}."""
    wanted = {}
    for attribute, operations in changes.items():
        exact, present, absent = None, set(), set()
        for operation, values in operations:
            values = {str(value) for value in values}
            if operation == ldap3.MODIFY_REPLACE or (operation == ldap3.MODIFY_DELETE and not values):
                exact, present, absent = values, set(), set()
            elif operation == ldap3.MODIFY_ADD:
                exact, present = (exact | values, present) if exact is not None else (None, present | values)
                absent -= values
            else:
                exact, absent = (exact - values, absent) if exact is not None else (None, absent | values)
                present -= values
        wanted[attribute] = (exact, present, absent)
    return wanted


def _applied(entry, changes):
    """Whether ``entry`` (as read again) already holds what ``changes`` would write."""
    for attribute, (exact, present, absent) in _target(changes).items():
        have = {str(_text(value) if isinstance(value, bytes) else value) for value in entry.get(attribute.lower(), [])}
        if (exact is not None and have != exact) or not present <= have or have & absent:
            return False
    return True


class ADClient:
    """One bound LDAP connection to a domain controller; use as a context manager.

    ``params`` are the module parameters from ``ad_argument_spec()``. ``connection`` lets a
    caller pass an already bound ldap3 connection (tests use ldap3's mock strategy).
    """

    def __init__(self, params, connection=None):
        self.params = params
        self._conn = connection
        self.base_dn = None
        self._index = 0
        # Each time a lost connection was re-established: {"lost": server, "connected": server, "reason": text}.
        self.reconnections = []
        # DNs whose modify outcome was unknown and that, read again, already held the new values (not written twice).
        self.recovered = []

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc_info):
        self.close()

    # -- connecting -------------------------------------------------------------------

    def servers(self):
        """ad_server as [(host, port)], in the order they are tried; an item may be host:port ([v6 address]:port)."""
        value = self.params.get("ad_server")
        items = value if isinstance(value, (list, tuple)) else ([] if value is None else str(value).split(","))
        servers = []
        for item in items:
            item = str(item or "").strip()
            if not item:
                continue
            match = _SERVER_PORT.match(item)
            if match:
                host, port = match.group("v6") or match.group("host"), int(match.group("v6port") or match.group("port"))
            else:
                host, port = item, None
            servers.append((host, port))
        return servers

    @property
    def host(self):
        """The host name of the domain controller in use (or to be tried next)."""
        servers = self.servers()
        return servers[self._index][0] if servers else None

    def _describe(self):
        return "%s://%s:%s" % ("ldaps" if self.params.get("ad_tls_mode", "ldaps") == "ldaps" else "ldap", self.host, self._port())

    def _port(self):
        servers = self.servers()
        if servers and servers[self._index][1] is not None:
            return servers[self._index][1]
        if self.params.get("ad_port") is not None:
            return self.params["ad_port"]
        return 636 if self.params.get("ad_tls_mode", "ldaps") == "ldaps" else 389

    def _connect_timeout(self):
        value = self.params.get("ad_connect_timeout")
        return 10 if value is None else value

    def _check_params(self):
        params = self.params
        if not self.servers():
            raise InvalidInput("No AD server given: set ad_server (or ENTRAID_AD_SERVER) to a domain controller's host name.")
        port = params.get("ad_port")
        if port is not None and not 1 <= port <= 65535:
            raise InvalidInput("ad_port must be a TCP port from 1 to 65535, got %d. Leave it out for the default (636 for LDAPS, "
                               "389 for StartTLS)." % port)
        for host, port in self.servers():
            if port is not None and not 1 <= port <= 65535:
                raise InvalidInput("ad_server: the port of %s:%d is not a TCP port from 1 to 65535." % (host, port))
        if self._connect_timeout() < 1:
            raise InvalidInput("ad_connect_timeout must be a number of seconds of at least 1, got %d." % self._connect_timeout())
        if params.get("ad_auth_protocol", "simple") == "kerberos":
            if params.get("ad_password"):
                raise InvalidInput(
                    "ad_auth_protocol=kerberos uses the Kerberos ticket of the controller's user (from kinit or a keytab "
                    "named by KRB5_CLIENT_KTNAME), not a password: remove ad_password (and ENTRAID_AD_PASSWORD).")
            return
        if not params.get("ad_username") or not params.get("ad_password"):
            # AD treats a simple bind with an empty password as anonymous and still "succeeds".
            raise InvalidInput(
                "ad_auth_protocol=simple needs both ad_username (UPN or DN of the bind account) and ad_password "
                "(options or ENTRAID_AD_USERNAME / ENTRAID_AD_PASSWORD).")
        if params.get("ad_tls_mode", "ldaps") == "none" and not params.get("ad_allow_plaintext"):
            raise InvalidInput(
                "ad_tls_mode=none would send the password of %s to %s unencrypted. Use ad_tls_mode=ldaps or ad_tls_mode=start_tls, "
                "or set ad_allow_plaintext=true if you accept that." % (params["ad_username"], ", ".join(h for h, _p in self.servers())))

    def _tls(self):
        params = self.params
        validation = params.get("ad_cert_validation", "always")
        ad_ca_cert = params.get("ad_ca_cert")
        ca_file = ca_data = None
        if ad_ca_cert:
            # The option is a str (it may hold PEM text), so Ansible does not expand a path as it does for type=path.
            path = None if "-----BEGIN" in ad_ca_cert else os.path.expanduser(os.path.expandvars(ad_ca_cert))
            if path is None:
                ca_data = ad_ca_cert
            elif os.path.isfile(path):
                ca_file = path
            else:
                raise InvalidInput("ad_ca_cert: %s is neither an existing file nor PEM text. Give the path of the CA "
                                   "certificate (PEM) or the PEM text itself."
                                   % (path if path == ad_ca_cert else "%s (%s)" % (ad_ca_cert, path)))
            try:
                ssl.create_default_context(cafile=ca_file, cadata=ca_data)
            except (ssl.SSLError, OSError, ValueError) as exc:
                raise InvalidInput("ad_ca_cert: %s does not hold a usable PEM CA certificate (%s)."
                                   % (ca_file or "the PEM text", exc)) from exc
        host = self.host
        return ldap3.Tls(
            validate=ssl.CERT_NONE if validation == "ignore" else ssl.CERT_REQUIRED,
            ca_certs_file=ca_file,
            ca_certs_data=ca_data,
            # ldap3 checks the host name itself after the handshake; "*" accepts any name.
            valid_names=["*"] if validation == "ignore_hostname" else None,
            sni=None if _is_ip_address(host) else host,
        )

    def _connection_error(self, exc):
        text = str(exc)
        lowered = text.lower()
        if "timed out" in lowered or isinstance(exc, socket.timeout):
            # Checked first: a handshake that times out mentions ssl, but the certificate is not the cause.
            return ADUnreachable(
                "The domain controller at %s did not answer within %d seconds (ad_connect_timeout): %s. It accepted the connection "
                "but stopped answering (overloaded, hung, or not an LDAP service on that port). Check ad_server and ad_port, or "
                "raise ad_connect_timeout for a slow network." % (self._describe(), self._connect_timeout(), text))
        if any(sign in lowered for sign in ("unexpected_eof", "eof occurred", "connection reset", "connection refused")):
            # Closed before TLS or LDAP could start (a service going down, or nothing behind a relay): not the certificate.
            return ADUnreachable(
                "Cannot reach the domain controller at %s: %s. Check ad_server, ad_port and ad_tls_mode (LDAPS is port 636, "
                "LDAP/StartTLS 389) and that a firewall allows it." % (self._describe(), text))
        if isinstance(exc, ldap3_exceptions.LDAPCertificateError) or "doesn't match" in lowered:
            names = re.findall(r"'DNS', '([^']+)'", text) or re.findall(r"'commonName', '([^']+)'", text)
            return ADError(
                "The certificate of %s does not name the host %s (it names: %s). Use a name from the certificate as ad_server, "
                "or set ad_cert_validation=ignore_hostname." % (self._describe(), self.host, ", ".join(names) or "no DNS names"))
        if "ssl" in lowered or "certificate" in lowered or "tls" in lowered:
            # ldap3 nests the ssl error in tuples of reprs; the "[SSL: ...] ..." part is what matters.
            found = re.search(r"\[SSL: [A-Z_]+\][^'\"]*", text)
            return ADError(
                "TLS with %s failed: %s. If the domain controller's certificate is issued by your own CA, give it with "
                "ad_ca_cert (path or PEM); ad_cert_validation=ignore disables the check (not for production)."
                % (self._describe(), found.group(0).strip() if found else text))
        return ADUnreachable(
            "Cannot reach the domain controller at %s: %s. Check ad_server, ad_port and ad_tls_mode (LDAPS is port 636, "
            "LDAP/StartTLS 389) and that a firewall allows it." % (self._describe(), text))

    def _bind_error(self, result):
        username = self.params.get("ad_username")
        code = result.get("result")
        message = (result.get("message") or "").lower()
        if code == 49:
            reason = "the user name or password is wrong"
            for data_code, text in _BIND_DATA_CODES.items():
                if "data %s" % data_code in message:
                    reason = text
                    break
            return ADError(
                "AD refused the bind account %s: %s. Check the bind account's username (UPN or DN) and its password "
                "(ad_password / ENTRAID_AD_PASSWORD), and that the account may sign in." % (username, reason), ldap_result=_result_text(result))
        kerberos = self.params.get("ad_auth_protocol", "simple") == "kerberos"
        if code in (8, 13) and kerberos:
            return ADError(
                "%s refused the Kerberos bind without SASL signing or sealing (%s). The collection binds with Kerberos over TLS, "
                "which protects the session as signing would: use ad_tls_mode=ldaps or ad_tls_mode=start_tls. A Samba DC must "
                "also allow it: ldap server require strong auth = allow_sasl_over_tls." % (self._describe(), _result_text(result)))
        if code in (8, 13):
            return ADError(
                "%s requires an encrypted connection for this bind (%s). Use ad_tls_mode=ldaps or ad_tls_mode=start_tls."
                % (self._describe(), _result_text(result)))
        if code == 49 and kerberos:
            return ADError(
                "%s refused the Kerberos ticket (%s). Check that the ticket's user may sign in (klist shows it) and that the "
                "controller's clock is within 5 minutes of this host's." % (self._describe(), _result_text(result)),
                ldap_result=_result_text(result))
        return ADError("Binding to %s as %s failed: %s." % (self._describe(), username or "(Kerberos ticket)", _result_text(result)))

    def _kerberos_error(self, exc):
        """A GSSAPI failure of the client side (no ticket, unknown service principal, no KDC) as what to do."""
        text = " ".join(str(exc).split())
        lowered = text.lower()
        if "no kerberos credentials" in lowered or "credentials were unavailable" in lowered or "expired" in lowered:
            return ADError(
                "ad_auth_protocol=kerberos found no valid Kerberos ticket on the host that runs the module (%s). Get one as the "
                "user that runs the module: kinit <account>@<REALM> (or kinit -k -t <keytab> <account>, or set KRB5_CLIENT_KTNAME "
                "to a keytab); if the ticket cache is not the default one, point KRB5CCNAME at it." % text)
        if "server not found in kerberos database" in lowered:
            return ADError(
                "The Kerberos KDC does not know the service principal ldap/%s (%s). With ad_auth_protocol=kerberos, ad_server must "
                "be the domain controller's fully qualified host name as AD registers it (ldap/<dc FQDN>), not an IP address, "
                "alias or localhost." % (self.host, text))
        if "cannot find kdc" in lowered or "cannot contact any kdc" in lowered or "cannot resolve" in lowered:
            return ADError(
                "No Kerberos KDC could be found or reached for the realm (%s). Name the realm's KDCs (the domain controllers) in "
                "krb5.conf ([realms] <REALM> = { kdc = dc1.example.com }) or allow dns_lookup_kdc; KRB5_CONFIG names another "
                "krb5.conf." % text)
        return ADError(
            "The Kerberos bind to %s failed: %s. Check the ticket (klist), that the clocks of this host and the controller are "
            "within 5 minutes, and krb5.conf (KRB5_CONFIG)." % (self._describe(), text))

    def connect(self):
        """Open, secure and bind the connection, then read defaultNamingContext into ``base_dn``."""
        if not HAS_LDAP3:
            raise ADError("The Python library ldap3 is required to talk to Active Directory: install it on the host "
                          "that runs the module (pip install ldap3).", exception=LDAP3_IMPORT_ERROR)
        opened = self._conn is None
        if opened:
            self._check_params()
            self._conn = self._open_any(0)
        if self.base_dn is None:
            self.base_dn = self._read_naming_context()
        if opened:
            self._set_receive_timeout()
        return self

    def another_connection(self):
        """A new ``ADClient`` bound like this one, to the domain controller in use (then the others of ad_server, in order):
        for reads that run side by side. The caller closes it."""
        other = ADClient(self.params)
        other._conn = other._open_any(self._index)  # pylint: disable=protected-access
        base_dn = other._read_naming_context()  # pylint: disable=protected-access
        if base_dn.lower() != (self.base_dn or base_dn).lower():
            other.close()
            raise ADError("ad_server lists domain controllers of different domains: %s serves %s, the run began on %s. List "
                          "only domain controllers of one domain." % (other._describe(), base_dn, self.base_dn))  # pylint: disable=protected-access
        other.base_dn = base_dn
        other._set_receive_timeout()  # pylint: disable=protected-access
        return other

    def _open_any(self, start):
        """Connect to the first domain controller of ad_server, from ``start`` on (wrapping around), that can be reached."""
        servers = self.servers()
        failures = []
        for offset in range(len(servers)):
            self._index = (start + offset) % len(servers)
            try:
                return self._open()
            except ADUnreachable as error:
                failures.append((self._describe(), error))
        if len(failures) == 1:
            raise failures[0][1]
        raise ADUnreachable(
            "None of the %d domain controllers in ad_server could be reached: %s. Check ad_server (tried in order), ad_port "
            "and ad_tls_mode, and that a firewall allows them." % (
                len(failures), "; ".join("%s: %s" % (where, error) for where, error in failures)))

    def _reconnect(self, exc):
        """The connection was lost (``exc``): connect again, to the next domain controller of ad_server first, within
        RECONNECT_FACTOR times ad_connect_timeout."""
        lost = self._describe()
        self._discard(self._conn)
        self._conn = None
        deadline = time.monotonic() + self._connect_timeout() * RECONNECT_FACTOR
        start = (self._index + 1) % len(self.servers())
        while True:
            try:
                conn = self._open_any(start)
                break
            except ADUnreachable as error:
                if time.monotonic() >= deadline:
                    raise ADError(
                        "The connection to the domain controller at %s was lost (%s) and no domain controller of ad_server "
                        "could be reached again within %d seconds: %s Run the task again when one is back; add more domain "
                        "controllers to ad_server to survive the loss of one."
                        % (lost, exc, self._connect_timeout() * RECONNECT_FACTOR, error)) from exc
                time.sleep(RECONNECT_PAUSE)
        self._conn = conn
        base_dn = self._read_naming_context()
        if base_dn.lower() != (self.base_dn or base_dn).lower():
            raise ADError("ad_server lists domain controllers of different domains: %s serves %s, the run began on %s. List "
                          "only domain controllers of one domain." % (self._describe(), base_dn, self.base_dn))
        self._set_receive_timeout()
        self.reconnections.append({"lost": lost, "connected": self._describe(), "reason": str(exc)})

    def _open(self):
        params = self.params
        tls_mode = params.get("ad_tls_mode", "ldaps")
        kerberos = params.get("ad_auth_protocol", "simple") == "kerberos"
        if kerberos:
            try:
                import gssapi  # noqa: F401 pylint: disable=unused-import,import-outside-toplevel
            except ImportError as exc:
                raise ADError("ad_auth_protocol=kerberos needs the Python package gssapi (and the system Kerberos "
                              "libraries) on the host that runs the module: pip install gssapi.") from exc
        timeout = self._connect_timeout()
        server = ldap3.Server(
            self.host, port=self._port(), use_ssl=tls_mode == "ldaps",
            tls=self._tls() if tls_mode != "none" else None,
            get_info=ldap3.NONE, connect_timeout=timeout)
        options = dict(
            # SYNC: the pooled/restartable strategies add seconds per operation.
            client_strategy=ldap3.SYNC, auto_bind=ldap3.AUTO_BIND_NONE, raise_exceptions=False,
            # AD returns references to DNS partitions and Configuration; chasing them is slow and needless.
            auto_referrals=False, check_names=False, read_only=False,
            # _to_entry gives every requested attribute a value list itself; ldap3's own pass over each entry (a
            # case-insensitive lookup per requested attribute) was 8% of a 100,000-user read's client time.
            return_empty_attributes=False,
            # Until the connection is set up (TLS handshake, StartTLS, bind, RootDSE), each answer gets ad_connect_timeout.
            receive_timeout=timeout,
        )
        if kerberos:
            options.update(authentication=ldap3.SASL, sasl_mechanism=ldap3.KERBEROS)
        else:
            options.update(user=params["ad_username"], password=params["ad_password"], authentication=ldap3.SIMPLE)
        conn = ldap3.Connection(server, **options)
        _decode_search_entries_raw_only(conn)
        try:
            conn.open()
            if tls_mode == "start_tls" and not conn.start_tls():
                raise ldap3_exceptions.LDAPStartTLSError("the domain controller refused StartTLS: %s" % _result_text(conn.result or {}))
            try:
                bound = conn.bind()
            except ldap3_exceptions.LDAPCommunicationError as exc:
                if kerberos and "security layer" in str(exc):
                    # ldap3 refuses itself when the server offers no GSSAPI session without signing or sealing.
                    self._discard(conn)
                    raise self._bind_error({"result": 8, "description": "strongerAuthRequired", "message": str(exc)}) from exc
                raise
            except Exception as exc:  # pylint: disable=broad-exception-caught
                if kerberos and type(exc).__module__.startswith("gssapi"):
                    self._discard(conn)
                    raise self._kerberos_error(exc) from exc
                raise
        except ldap3_exceptions.LDAPException as exc:
            error = self._connection_error(exc)
            # The socket may be half-closed by the failed handshake: an error from unbind must not hide the real cause.
            self._discard(conn)
            raise error from exc
        if not bound:
            error = self._bind_error(conn.result)
            self._discard(conn)
            raise error
        return conn

    @staticmethod
    def _discard(conn):
        try:
            conn.unbind()
        except (ldap3_exceptions.LDAPException, OSError):
            pass  # the connection failed already; its error is the one to report

    def _set_receive_timeout(self):
        """Once connected, answers (large search pages) may take longer: RECEIVE_TIMEOUT_FACTOR times ad_connect_timeout."""
        seconds = self._connect_timeout() * RECEIVE_TIMEOUT_FACTOR
        self._conn.receive_timeout = seconds
        sock = getattr(self._conn, "socket", None)
        if sock is None:
            return
        try:
            sock.settimeout(seconds)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", seconds, 0))
        except (OSError, ValueError, struct.error):
            pass  # the connection-time timeout stays, which is only stricter

    def _read_naming_context(self):
        result, entries = self._search("", "(objectClass=*)", ldap3.BASE, ["defaultNamingContext"])
        self._check(result, "reading the RootDSE")
        values = entries[0].get("defaultnamingcontext") if entries else None
        if not values:
            raise ADError("%s did not return defaultNamingContext in its RootDSE: is it an Active Directory domain "
                          "controller?" % self._describe())
        return values[0]

    def close(self):
        if self._conn is not None:
            try:
                self._conn.unbind()
            except ldap3_exceptions.LDAPException:
                pass  # the connection is going away anyway
            self._conn = None

    # -- reading ----------------------------------------------------------------------

    def _search(self, base, ldap_filter, scope, attributes, **kwargs):
        """One search request -> (result dict, entries as dicts).

        A search that is not the continuation of a paged one is sent again on a new connection when the connection was
        lost (the next page of a paged search exists only on the domain controller that gave the cookie)."""
        try:
            self._conn.search(base, ldap_filter, search_scope=scope, attributes=list(attributes), **kwargs)
        except ldap3_exceptions.LDAPInvalidFilterError as exc:
            # Nothing was sent: the filter itself is wrong (options are checked earlier with check_ldap_filter).
            raise InvalidInput("The LDAP filter %s is not valid (%s): nothing was searched. Correct the filter." % (ldap_filter, exc)) from exc
        except ldap3_exceptions.LDAPException as exc:
            if _lost(exc) and not kwargs.get("paged_cookie") and self.servers():
                self._reconnect(exc)
                return self._search_again(base, ldap_filter, scope, attributes, **kwargs)
            if "timed out" in str(exc).lower():
                raise ADError("Searching %s under %r failed: the domain controller did not answer within %d seconds (%d times "
                              "ad_connect_timeout). Run the task again; raise ad_connect_timeout if the controller is slow."
                              % (ldap_filter, base, self._connect_timeout() * RECEIVE_TIMEOUT_FACTOR, RECEIVE_TIMEOUT_FACTOR)) from exc
            raise ADError("Searching %s under %r failed: %s. The connection to the domain controller may have been "
                          "lost; run the task again." % (ldap_filter, base, exc)) from exc
        return self._entries(attributes)

    def _search_again(self, base, ldap_filter, scope, attributes, **kwargs):
        try:
            self._conn.search(base, ldap_filter, search_scope=scope, attributes=list(attributes), **kwargs)
        except ldap3_exceptions.LDAPException as exc:
            raise ADError("Searching %s under %r failed again after reconnecting to %s: %s. Run the task again."
                          % (ldap_filter, base, self._describe(), exc)) from exc
        return self._entries(attributes)

    def _entries(self, attributes):
        requested = _requested_keys(attributes)
        entries = [_to_entry(item["dn"], item["raw_attributes"], requested)
                   for item in self._conn.response or () if item.get("type") == "searchResEntry"]
        return self._conn.result, entries

    def _check(self, result, doing):
        if result.get("result") not in (0, None):
            raise ADError("AD failed %s: %s. Correct what AD's result names (for example, let the bind account read there); "
                          "if the domain controller was busy or unavailable, run the task again." % (doing, _result_text(result)),
                          ldap_result=_result_text(result))

    def paged_search(self, base, ldap_filter, attributes, scope="subtree", page_size=1000, controls=None):
        """Yield every matching entry, paging past AD's 1,000-entry limit. ``controls``: more LDAP controls, as ldap3 takes them."""
        ldap_scope = {"subtree": ldap3.SUBTREE, "level": ldap3.LEVEL, "base": ldap3.BASE}[scope]
        cookie = None
        while True:
            result, entries = self._search(base or self.base_dn, ldap_filter, ldap_scope, attributes,
                                           paged_size=page_size, paged_cookie=cookie, controls=list(controls or ()) or None)
            if result.get("result") == 32:
                raise ADError("The search base %r does not exist in AD. Check the DN (search_base)." % (base or self.base_dn))
            self._check(result, "searching %s under %r" % (ldap_filter, base or self.base_dn))
            cookie = result.get("controls", {}).get(_PAGED_RESULTS_OID, {}).get("value", {}).get("cookie")
            # The page is fully converted before yielding, so callers may search again meanwhile.
            yield from entries
            if not cookie:
                return

    def read(self, dn, attributes, ldap_filter="(objectClass=*)"):
        """The entry at ``dn`` (base-scope search, so the DN never enters a filter), or None."""
        result, entries = self._search(dn, ldap_filter, ldap3.BASE, attributes)
        if result.get("result") in (32, 34):  # noSuchObject, invalidDNSyntax
            return None
        self._check(result, "reading %r" % dn)
        return entries[0] if entries else None

    # -- resolving users --------------------------------------------------------------

    @staticmethod
    def _identity_filter(kind, identity):
        if kind == "upn":
            return "(userPrincipalName=%s)" % escape_filter_value(identity.strip())
        if kind == "sam":
            return "(sAMAccountName=%s)" % escape_filter_value(_identity.sam_account_name(identity))
        if kind == "guid":
            return "(objectGUID=%s)" % escape_filter_value(_identity.guid_string_to_bytes(identity))
        return "(objectSid=%s)" % escape_filter_value(_identity.sid_string_to_bytes(identity))

    @staticmethod
    def _identity_key(kind, identity):
        """What an entry's attribute must equal for it to be this identity (AD compares names case-insensitively)."""
        if kind == "upn":
            return ("userprincipalname", identity.strip().lower())
        if kind == "sam":
            return ("samaccountname", _identity.sam_account_name(identity).lower())
        if kind == "guid":
            return ("objectguid", _identity.guid_string_to_bytes(identity))
        return ("objectsid", _identity.sid_string_to_bytes(identity))

    @staticmethod
    def _pick(identity, matches):
        if not matches:
            raise IdentityNotFound(
                "No AD user matches %r. Give the UPN, sAMAccountName (optionally DOMAIN\\name), distinguished name, "
                "objectGUID or SID of an existing user account." % identity, identity=identity)
        if len(matches) > 1:
            dns = sorted(entry["dn"] for entry in matches)
            raise AmbiguousIdentity(
                "%r matches %d AD users (%s). Name the user unambiguously, e.g. by distinguished name or objectGUID."
                % (identity, len(dns), "; ".join(dns)), identity=identity, matches=dns)
        return matches[0]

    def _resolve_dn(self, identity, attributes):
        entry = self.read(identity.strip(), attributes, ldap_filter=USER_FILTER)
        return self._pick(identity, [entry] if entry else [])

    def resolve_user(self, identity, attributes, search_base=None):
        """The one user entry ``identity`` names; IdentityNotFound / AmbiguousIdentity otherwise."""
        kind = _identity.identity_kind(identity)
        if kind == "dn":
            return self._resolve_dn(identity, attributes)
        ldap_filter = "(&%s%s)" % (USER_FILTER, self._identity_filter(kind, identity))
        # Two results are enough to know it is ambiguous, but naming all DNs helps the user.
        return self._pick(identity, list(self.paged_search(search_base, ldap_filter, attributes)))

    def resolve_users(self, identities, attributes, search_base=None):
        """Resolve many identities with few round trips.

        Returns ``{identity: entry or DirsyncError}``: a missing or ambiguous identity gets its
        IdentityNotFound / AmbiguousIdentity (or InvalidInput) without stopping the others.
        Distinguished names are read one by one (base-scope searches).
        """
        results = {}
        pending = []
        for identity in dict.fromkeys(identities):
            try:
                kind = _identity.identity_kind(identity)
                if kind == "dn":
                    results[identity] = self._resolve_dn(identity, attributes)
                else:
                    pending.append((identity, kind, self._identity_filter(kind, identity), self._identity_key(kind, identity)))
            except (IdentityNotFound, AmbiguousIdentity, InvalidInput) as error:
                results[identity] = error

        wanted = list(attributes) + [name for name in _MATCH_ATTRIBUTES if name.lower() not in _requested_keys(attributes)]
        for start in range(0, len(pending), _BATCH_SIZE):
            batch = pending[start:start + _BATCH_SIZE]
            ldap_filter = "(&%s(|%s))" % (USER_FILTER, "".join(item[2] for item in batch))
            found = {}
            for entry in self.paged_search(search_base, ldap_filter, wanted):
                for attribute in ("userprincipalname", "samaccountname"):
                    for value in entry.get(attribute, ()):
                        found.setdefault((attribute, value.lower()), []).append(entry)
                for attribute in ("objectguid", "objectsid"):
                    for value in entry.get(attribute, ()):
                        found.setdefault((attribute, bytes(value)), []).append(entry)
            for identity, _kind, _filter, key in batch:
                try:
                    results[identity] = self._pick(identity, found.get(key, []))
                except (IdentityNotFound, AmbiguousIdentity) as error:
                    results[identity] = error
        return results

    # -- writing ----------------------------------------------------------------------

    def modify(self, dn, changes, rights_hint=None):
        """Apply ``{attribute: (operation, [values])}`` (operation: "replace", "add" or "delete").

        A list of such tuples per attribute is accepted too. ``("replace", [])`` removes all
        values; ``("delete", [])`` deletes the attribute. ``rights_hint`` is what to do when the
        bind account may not write (the caller knows which rights its task needs); without it
        the error gives generic advice.
        """
        operations = {REPLACE: ldap3.MODIFY_REPLACE, ADD: ldap3.MODIFY_ADD, DELETE: ldap3.MODIFY_DELETE}
        ldap_changes = {}
        for attribute, change in changes.items():
            for operation, values in (change if isinstance(change, list) else [change]):
                if operation not in operations:
                    raise InvalidInput("Unknown LDAP modify operation %r for %s: use replace, add or delete." % (operation, attribute))
                ldap_changes.setdefault(attribute, []).append((operations[operation], list(values)))
        for attempt in range(len(self.servers()) + 1):
            try:
                ok = self._conn.modify(dn, ldap_changes)
                break
            except ldap3_exceptions.LDAPException as exc:
                if not _lost(exc) or attempt == len(self.servers()):
                    raise ADError("Modifying %s failed: %s. The connection to the domain controller may have been lost; "
                                  "run the task again to see what was applied." % (dn, exc)) from exc
                # The request may or may not have been applied: read the user again (on the next domain controller
                # when there is one) and write only if the new values are not there yet.
                self._reconnect(exc)
                current = self.read(dn, list(changes))
                if current is not None and _applied(current, ldap_changes):
                    self.recovered.append(dn)
                    return
        if ok:
            return
        result = self._conn.result
        code = result.get("result")
        names = ", ".join(sorted(changes))
        if code == 50:
            raise ADError(
                "The bind account %s may not write %s on %s (%s). %s" % (
                    self.params.get("ad_username") or "(Kerberos ticket)", names, dn, _result_text(result),
                    rights_hint or "Grant it Write Property on %s for this object, usually delegated on its OU with dsacls "
                                   "(see docs/ad-connection.md)." % names),
                dn=dn, ldap_result=_result_text(result))
        if code == 32:
            raise ADError("%s no longer exists in AD (it was moved or deleted); resolve the user again." % dn, dn=dn)
        if code in (19, 21):  # constraintViolation (Windows), invalidAttributeSyntax (Samba)
            raise ADError("AD rejected the new value of %s on %s (%s). Give a value that the attribute's syntax and size "
                          "limit (rangeUpper in the AD schema) allow." % (names, dn, _result_text(result)),
                          dn=dn, ldap_result=_result_text(result))
        raise ADError("AD refused to modify %s on %s: %s. Correct what AD's result names; if it is unwillingToPerform "
                      "from a read-only domain controller, set ad_server to a writable one." % (names, dn, _result_text(result)),
                      dn=dn, ldap_result=_result_text(result))


# -- reading a large scope over several connections ------------------------------------------

MAX_READ_CONNECTIONS = 8


def partition_filters(count):
    """``count`` LDAP filters that split any set of users into disjoint parts whose union is the whole set.

    The parts are ranges of sAMAccountName (indexed in AD, present on every user): ``(sAMAccountName<=b1)``,
    ``(&(!(sAMAccountName<=b1))(sAMAccountName<=b2))``, ... ``(!(sAMAccountName<=bN))``. Each filter is the complement of the
    ones before it, so a user the ordering cannot place (no sAMAccountName) lands in the last part, never in none.
    """
    if count <= 1:
        return [None]
    bounds = [chr(ord("a") + round(26 * index / count)) for index in range(1, count)]
    filters, below = [], None
    for bound in bounds:
        upto = "(sAMAccountName<=%s)" % bound
        filters.append(upto if below is None else "(&(!%s)%s)" % (below, upto))
        below = upto
    filters.append("(!%s)" % below)
    return filters


def parallel_paged_search(ad, searches, attributes, connections=1, page_size=1000, servers_used=None):
    """Yield every entry of ``searches`` (``(base, filter)`` pairs), reading them over up to ``connections`` connections.

    ``ad`` is a connected ``ADClient``; the others are opened with ``ADClient.another_connection`` and closed at the end.
    Each connection runs one search at a time, so a domain controller sees at most ``connections`` searches from a run.
    Entries come in no fixed order, a page at a time; the first failure stops the others and is raised. Closing the
    generator early stops the reads. ``servers_used``, a list, gets ``(host, reconnections)`` of every connection that read.
    """
    searches = list(searches)
    used = servers_used if servers_used is not None else []

    def record(client):
        used.append((getattr(client, "host", None), len(getattr(client, "reconnections", ()))))
    if connections <= 1 or len(searches) <= 1:
        for base, ldap_filter in searches:
            yield from ad.paged_search(base, ldap_filter, attributes, page_size=page_size)
        record(ad)
        return
    todo = queue.Queue()
    for search in searches:
        todo.put(search)
    pages = queue.Queue(maxsize=2 * connections)  # bounded: readers wait while the consumer is behind
    stop = threading.Event()
    done = object()

    def put(item):
        while not stop.is_set():
            try:
                pages.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def reader(client, own):
        try:
            while not stop.is_set():
                try:
                    base, ldap_filter = todo.get_nowait()
                except queue.Empty:
                    break
                page = []
                for entry in client.paged_search(base, ldap_filter, attributes, page_size=page_size):
                    page.append(entry)
                    if len(page) >= page_size:
                        put(page)
                        page = []
                    if stop.is_set():
                        return
                if page:
                    put(page)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            put(exc)  # raised by the consumer, which stops the others
        finally:
            record(client)
            if own:
                client.close()
            put(done)

    clients = [(ad, False)]
    try:
        for _index in range(min(connections, len(searches)) - 1):
            clients.append((ad.another_connection(), True))
    except Exception:
        for client, own in clients:
            if own:
                client.close()
        raise
    threads = [threading.Thread(target=reader, args=client, name="ad-read-%d" % index, daemon=True)
               for index, client in enumerate(clients)]
    for thread in threads:
        thread.start()
    try:
        running = len(threads)
        while running:
            item = pages.get()
            if item is done:
                running -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield from item
    finally:
        stop.set()
        for thread in threads:
            thread.join()

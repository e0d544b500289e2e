# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Identity conversions between Active Directory and Entra ID, and identity kind detection.

AD stores objectGUID and mS-DS-ConsistencyGuid as 16 bytes in .NET (little-endian) GUID
order; Entra ID's onPremisesImmutableId is the base64 of exactly those bytes.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
import uuid

from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput

_SID_RE = re.compile(r"^S-1-(\d+|0x[0-9A-Fa-f]{12})(-\d+){0,15}$", re.IGNORECASE)
_GUID_RE = re.compile(r"^\{?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}?$")
# An attribute type (name or OID) followed by "=": sAMAccountName and UPNs cannot look like this.
_DN_RE = re.compile(r"^\s*(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)\s*=.*")
# sAMAccountName may be given as DOMAIN\name (NetBIOS domain prefix).
_DOMAIN_PREFIX_RE = re.compile(r"^[^\\]+\\(?=[^\\]+$)")


def _first(value):
    """An entry attribute may be a list of values (as _ad.paged_search returns) or one value."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def guid_bytes_to_string(raw):
    """objectGUID bytes (AD order) -> "xxxxxxxx-xxxx-..." as AD tools display it."""
    raw = bytes(raw)
    if len(raw) != 16:
        raise InvalidInput("A GUID must be 16 bytes, got %d. Pass the raw objectGUID or mS-DS-ConsistencyGuid value." % len(raw))
    return str(uuid.UUID(bytes_le=raw))


def guid_string_to_bytes(text):
    """GUID string (with or without braces) -> the bytes AD stores (little-endian order)."""
    if not isinstance(text, str) or not _GUID_RE.match(text.strip()):
        raise InvalidInput(
            "%r is not a GUID. Use the form 01234567-89ab-cdef-0123-456789abcdef (braces are optional)." % (text,))
    return uuid.UUID(text.strip().strip("{}")).bytes_le


def immutable_id_from_bytes(raw):
    """Source anchor bytes -> onPremisesImmutableId (base64 text)."""
    return base64.b64encode(bytes(raw)).decode("ascii")


def immutable_id_to_bytes(immutable_id):
    """onPremisesImmutableId -> the source anchor bytes."""
    try:
        return base64.b64decode(immutable_id, validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise InvalidInput(
            "%r is not a valid onPremisesImmutableId (base64 of the source anchor): %s. "
            "Copy the value from Entra ID unchanged." % (immutable_id, exc)) from exc


def immutable_id_to_guid(immutable_id):
    """onPremisesImmutableId -> GUID string, when the anchor is a GUID (objectGUID / mS-DS-ConsistencyGuid)."""
    raw = immutable_id_to_bytes(immutable_id)
    if len(raw) != 16:
        raise InvalidInput(
            "The onPremisesImmutableId %r decodes to %d bytes, not 16: the source anchor is not a GUID, "
            "so it cannot be matched to objectGUID or mS-DS-ConsistencyGuid." % (immutable_id, len(raw)))
    return guid_bytes_to_string(raw)


def guid_to_immutable_id(guid):
    """GUID string -> onPremisesImmutableId."""
    return immutable_id_from_bytes(guid_string_to_bytes(guid))


def source_anchor(entry):
    """The onPremisesImmutableId Entra Connect derives for an AD entry, or None.

    ``entry`` has lower-case attribute keys (as ``ADClient.paged_search`` returns):
    mS-DS-ConsistencyGuid when set, else objectGUID.
    """
    for attribute in ("ms-ds-consistencyguid", "objectguid"):
        raw = _first(entry.get(attribute))
        if raw:
            return immutable_id_from_bytes(raw)
    return None


def sid_bytes_to_string(raw):
    """objectSid bytes -> "S-1-5-21-..."."""
    raw = bytes(raw)
    if len(raw) < 8 or raw[0] != 1 or len(raw) != 8 + 4 * raw[1]:
        raise InvalidInput("%d bytes are not a valid SID. Pass the raw objectSid value." % len(raw))
    authority = int.from_bytes(raw[2:8], "big")
    # MS-DTYP 2.4.2.1: authorities of 2**32 and above are written in hexadecimal.
    text_authority = str(authority) if authority < 2 ** 32 else "0x%012X" % authority
    sub_authorities = struct.unpack("<%dI" % raw[1], raw[8:])
    return "-".join(["S", str(raw[0]), text_authority] + [str(sub) for sub in sub_authorities])


def sid_string_to_bytes(text):
    """"S-1-5-21-..." -> objectSid bytes."""
    if not isinstance(text, str) or not _SID_RE.match(text.strip()):
        raise InvalidInput("%r is not a SID. Use the form S-1-5-21-<domain>-<RID>." % (text,))
    parts = text.strip().split("-")
    authority = int(parts[2], 16) if parts[2].lower().startswith("0x") else int(parts[2])
    sub_authorities = [int(part) for part in parts[3:]]
    if authority >= 2 ** 48 or any(sub >= 2 ** 32 for sub in sub_authorities):
        raise InvalidInput("%r is not a SID: a part is out of range. Check the value." % (text,))
    return bytes([1, len(sub_authorities)]) + authority.to_bytes(6, "big") + struct.pack("<%dI" % len(sub_authorities), *sub_authorities)


def identity_kind(identity):
    """Classify how a user was named: "sid", "guid", "dn", "upn" or "sam" (sAMAccountName).

    A UPN contains "@"; a DN starts with "attribute="; both are checked before sAMAccountName,
    which may carry a DOMAIN\\ prefix (see ``sam_account_name``).
    """
    if not isinstance(identity, str) or not identity.strip():
        raise InvalidInput(
            "A user identity must be a non-empty string (UPN, sAMAccountName, DN, objectGUID or SID), got %r." % (identity,))
    identity = identity.strip()
    if _SID_RE.match(identity):
        return "sid"
    if _GUID_RE.match(identity):
        return "guid"
    if _DN_RE.match(identity):
        return "dn"
    if "@" in identity:
        return "upn"
    return "sam"


def sam_account_name(identity):
    """sAMAccountName from "name" or "DOMAIN\\name"."""
    return _DOMAIN_PREFIX_RE.sub("", identity.strip())


# -- distinguished names ------------------------------------------------------------

def normalise_dn(dn):
    """Lower case without blanks around separators, for suffix tests."""
    parts = []
    for rdn in (dn or "").split(","):
        name, _sep, value = rdn.partition("=")
        parts.append("%s=%s" % (name.strip().lower(), value.strip().lower()))
    return ",".join(parts)


def in_container(dn, container):
    """True when ``dn`` is below (or is) ``container``."""
    dn, container = normalise_dn(dn), normalise_dn(container)
    return dn == container or dn.endswith("," + container)


def under_any(dn, containers):
    return any(in_container(dn, container) for container in containers)


def domain_name(base_dn):
    """DC=lab,DC=test -> lab.test (the name of an AD source that was given none)."""
    parts = [rdn.partition("=")[2].strip() for rdn in (base_dn or "").split(",") if rdn.strip().lower().startswith("dc=")]
    return ".".join(parts).lower() or base_dn

"""Identity conversions and identity kind detection."""

import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils import _identity
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput

GUID = "00112233-4455-6677-8899-aabbccddeeff"
# AD stores the first three groups little-endian: 33221100-5544-7766-...
GUID_BYTES = bytes.fromhex("33221100554477668899aabbccddeeff")
IMMUTABLE_ID = "MyIRAFVEd2aImaq7zN3u/w=="
SID = "S-1-5-21-3623811015-3361044348-30300820-1013"
SID_BYTES = bytes.fromhex("010500000000000515000000c7f7fed77c7755c8945ace01f5030000")


def test_guid_bytes_string_and_immutable_id_round_trip():
    assert _identity.guid_bytes_to_string(GUID_BYTES) == GUID
    assert _identity.guid_string_to_bytes(GUID) == GUID_BYTES
    assert _identity.guid_string_to_bytes("{%s}" % GUID.upper()) == GUID_BYTES
    assert _identity.immutable_id_from_bytes(GUID_BYTES) == IMMUTABLE_ID
    assert _identity.immutable_id_to_bytes(IMMUTABLE_ID) == GUID_BYTES
    assert _identity.immutable_id_to_guid(IMMUTABLE_ID) == GUID
    assert _identity.guid_to_immutable_id(GUID) == IMMUTABLE_ID


def test_sid_round_trip():
    assert _identity.sid_bytes_to_string(SID_BYTES) == SID
    assert _identity.sid_string_to_bytes(SID) == SID_BYTES
    # Well-known SIDs with few sub-authorities.
    assert _identity.sid_bytes_to_string(_identity.sid_string_to_bytes("S-1-5-32-544")) == "S-1-5-32-544"
    assert _identity.sid_bytes_to_string(_identity.sid_string_to_bytes("S-1-1-0")) == "S-1-1-0"


@pytest.mark.parametrize("func, value", [
    (_identity.guid_string_to_bytes, "not-a-guid"),
    (_identity.guid_bytes_to_string, b"short"),
    (_identity.immutable_id_to_bytes, "***"),
    (_identity.immutable_id_to_guid, "YWJj"),  # base64 of 3 bytes: not a GUID anchor
    (_identity.sid_string_to_bytes, "S-1-5-21-99999999999"),
    (_identity.sid_string_to_bytes, "S-2-5"),
    (_identity.sid_bytes_to_string, b"\x01\x05\x00"),
])
def test_invalid_values_raise_invalid_input(func, value):
    with pytest.raises(InvalidInput):
        func(value)


def test_source_anchor_prefers_consistency_guid():
    other = bytes(range(16))
    assert _identity.source_anchor({"objectguid": [GUID_BYTES]}) == IMMUTABLE_ID
    assert _identity.source_anchor({"objectguid": [GUID_BYTES], "ms-ds-consistencyguid": []}) == IMMUTABLE_ID
    assert _identity.source_anchor({"objectguid": [GUID_BYTES], "ms-ds-consistencyguid": [other]}) == \
        _identity.immutable_id_from_bytes(other)
    assert _identity.source_anchor({"dn": "CN=x"}) is None


@pytest.mark.parametrize("identity, kind", [
    ("alice@lab.test", "upn"),
    ("alice", "sam"),
    ("LAB\\alice", "sam"),
    ("CN=Alice Smith,OU=Users,DC=lab,DC=test", "dn"),
    ("cn=a@b,dc=lab", "dn"),
    (GUID, "guid"),
    ("{%s}" % GUID, "guid"),
    (SID, "sid"),
    ("x)(uid=*", "sam"),
    ("a*", "sam"),
])
def test_identity_kind(identity, kind):
    assert _identity.identity_kind(identity) == kind


def test_identity_kind_rejects_blank():
    with pytest.raises(InvalidInput):
        _identity.identity_kind("  ")


def test_sam_account_name_strips_domain_prefix():
    assert _identity.sam_account_name("LAB\\alice") == "alice"
    assert _identity.sam_account_name("alice") == "alice"

"""The lean searchResEntry decoder: what it reads equals what ldap3's own decoder reads from the same bytes; anything
else is left to ldap3, whose answer comes back unchanged."""

import uuid

import ldap3
import pytest
from ldap3.operation.search import raw_attributes_to_dict_fast
from ldap3.strategy import sync
from ldap3.utils.asn1 import decode_message_fast

from ansible_collections.entraid.dirsync.plugins.module_utils import _ad, _ldap_entries
from ansible_collections.entraid.dirsync.tests.unit.plugins.module_utils.ldap_messages import search_result_done, search_result_entry

GUID = uuid.UUID("0b1e5a3c-7d2f-4e8a-9c61-2f4b8d0e6a17").bytes_le

ENTRIES = {
    "a user as the drift read asks for it": ("CN=Ann Lee,OU=Sync,DC=lab,DC=test", {
        "objectGUID": [GUID], "mS-DS-ConsistencyGuid": [GUID], "objectSid": [bytes(range(28))],
        "userPrincipalName": [b"ann@lab.test"], "mobile": [b"+1 206 555 0166"], "otherMobile": [b"+1 2", b" ", b"+44 20"],
        "userAccountControl": [b"512"]}),
    "no attributes": ("CN=Bo,DC=lab,DC=test", {}),
    "an attribute with no values": ("CN=Cy,DC=lab,DC=test", {"mobile": []}),
    "every byte value": ("CN=Di,DC=lab,DC=test", {"objectGUID": [bytes(range(256))], "mobile": [b""]}),
    "a value longer than 127 bytes": ("CN=Ed,DC=lab,DC=test", {"description": [b"x" * 200]}),
    "a value longer than 65,535 bytes": ("CN=Flo,DC=lab,DC=test", {"thumbnailPhoto": [bytes(range(256)) * 300]}),
    "a DN and value in UTF-8": ("CN=Jürgen Weiß,OU=Zürich,DC=lab,DC=test", {"displayName": ["Jürgen Weiß".encode("utf-8")]}),
    "many attributes": ("CN=Gus,DC=lab,DC=test", {"extensionAttribute%d" % index: [b"%d" % index] for index in range(1, 16)}),
}


def _ldap3_reading(message):
    decoded = decode_message_fast(message)
    attributes = raw_attributes_to_dict_fast(decoded["payload"][1][3])
    # ldap3 gives None for an attribute sent without values; the lean decoder an empty list, which _to_entry reads alike.
    return decoded["messageID"], decoded["payload"][0][3], {name: values or [] for name, values in attributes.items()}


@pytest.mark.parametrize("message_id", [1, 300, 2 ** 31 - 1])
@pytest.mark.parametrize("name", sorted(ENTRIES))
def test_a_plain_entry_reads_as_ldap3_reads_it(name, message_id):
    dn, attributes = ENTRIES[name]
    message = search_result_entry(dn, attributes, message_id=message_id)
    parsed = _ldap_entries.parse_search_entry(message)
    assert parsed == _ldap3_reading(message)
    assert parsed[1] == dn.encode("utf-8") and parsed[2] == attributes


def _same_as_ldap3(message):
    """message_decoder's answer for ``message`` is exactly ldap3's (the same dict, or the same exception)."""
    decode = _ldap_entries.message_decoder(decode_message_fast)
    try:
        expected = decode_message_fast(message)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        with pytest.raises(type(exc)):
            decode(message)
        return
    assert decode(message) == expected


def test_entries_with_controls_and_other_operations_are_left_to_ldap3():
    with_control = search_result_entry("CN=Ann,DC=lab,DC=test", {"mobile": [b"+1"]}, controls=[("1.2.840.113556.1.4.319", b"\x30\x00")])
    assert _ldap_entries.parse_search_entry(with_control) is None
    assert decode_message_fast(with_control)["controls"]  # ldap3 sees the control: it was really in the message
    _same_as_ldap3(with_control)
    done = search_result_done(message_id=7, code=32)
    assert _ldap_entries.parse_search_entry(done) is None
    _same_as_ldap3(done)


def _damaged():
    message = search_result_entry("CN=Ann,DC=lab,DC=test", {"mobile": [b"+1 206 555 0166"], "objectGUID": [GUID]})
    longer_value = bytearray(message)
    longer_value[message.index(b"+1 206") - 1] += 3  # a value's length runs past its set
    wrong_tag = bytearray(message)
    wrong_tag[message.index(b"+1 206") - 2] = 0x05
    return {"truncated": message[:-1], "a byte too many": message + b"\x00", "a value running past its set": bytes(longer_value),
            "a value that is not an OCTET STRING": bytes(wrong_tag), "indefinite length": b"\x30\x80" + message[2:]}


@pytest.mark.parametrize("name", sorted(_damaged()))
def test_a_damaged_entry_is_never_read_short_it_goes_to_ldap3(name):
    message = _damaged()[name]
    assert _ldap_entries.parse_search_entry(message) is None
    _same_as_ldap3(message)


def test_an_entry_read_the_way_ldap3_reads_its_payload_gives_ldap3s_payload():
    dn, attributes = ENTRIES["a user as the drift read asks for it"]
    message = search_result_entry(dn, attributes)
    decoded = _ldap_entries.message_decoder(decode_message_fast)(message)
    assert isinstance(decoded["payload"], _ldap_entries.Entry)
    expected = decode_message_fast(message)["payload"]
    assert decoded["payload"][0] == expected[0] and decoded["payload"][1] == expected[1]
    assert len(decoded["payload"]) == len(expected) and list(decoded["payload"]) == list(expected)


def _connection():
    return ldap3.Connection(ldap3.Server("dc1.lab.test", get_info=ldap3.NONE), client_strategy=ldap3.SYNC)


def test_connections_set_up_by_the_ad_client_read_the_lean_entries_and_others_get_ldap3s_answer():
    ours, theirs = _connection(), _connection()
    _ad._decode_search_entries_raw_only(ours)  # pylint: disable=protected-access
    # What ldap3's synchronous strategy calls for every message it receives.
    assert getattr(sync.decode_message_fast, "ldap3_decode", None) is decode_message_fast
    _ad._decode_search_entries_raw_only(_connection())  # pylint: disable=protected-access
    assert sync.decode_message_fast.ldap3_decode is decode_message_fast  # installed once, not wrapped again
    dn, attributes = ENTRIES["a DN and value in UTF-8"]
    message = search_result_entry(dn, attributes)
    read = ours.strategy.decode_response_fast(sync.decode_message_fast(message))
    assert read["dn"] == dn and read["raw_attributes"] == attributes and read["type"] == "searchResEntry"
    assert theirs.strategy.decode_response_fast(sync.decode_message_fast(message)) == \
        theirs.strategy.decode_response_fast(decode_message_fast(message))

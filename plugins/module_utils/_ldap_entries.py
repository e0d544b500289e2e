# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A lean decoder of LDAP search result entries, the bulk of a drift read.

ldap3 decodes every message with a generic BER walk (a function call and a tuple per element, then a dict built from
the tuples); at 100,000 users that walk was about a fifth of the module's CPU (issue 16's profile). A searchResEntry
(RFC 4511, 4.5.2) has one fixed shape, so ``parse_search_entry`` reads it in one loop::

    LDAPMessage ::= SEQUENCE { messageID INTEGER, protocolOp [APPLICATION 4] SEQUENCE {
        objectName OCTET STRING, attributes SEQUENCE OF SEQUENCE { type OCTET STRING, vals SET OF OCTET STRING } } }

Anything else (other operations, an entry with controls, a length form or layout it does not expect) is left to ldap3's
own decoder, byte for byte as before: ``decode_message`` falls back to it, and an ``Entry`` read the way ldap3 reads its
own payload decodes itself with ldap3 first.
"""

from __future__ import annotations

_SEQUENCE, _SET, _INTEGER, _OCTET_STRING, _SEARCH_RESULT_ENTRY = 0x30, 0x31, 0x02, 0x04, 0x64


class _NotPlain(Exception):
    """The message is not a searchResEntry of the plain shape: ldap3's decoder takes it."""


def _element(data, offset, tag, limit):
    """(start, stop) of the value of the element with ``tag`` at ``offset``, which must end by ``limit``."""
    if data[offset] != tag:
        raise _NotPlain()
    length = data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4:  # indefinite or absurd lengths are not LDAP's (RFC 4511, 5.1)
            raise _NotPlain()
        length = int.from_bytes(data[offset:offset + count], "big")
        offset += count
    stop = offset + length
    if stop > limit:
        raise _NotPlain()
    return offset, stop


def parse_search_entry(message):
    """``(message_id, dn bytes, {attribute name: [value bytes]})`` of a whole LDAPMessage that is a searchResEntry without
    controls; None for any other message."""
    try:
        end = len(message)
        start, stop = _element(message, 0, _SEQUENCE, end)
        if stop != end:
            return None
        start, stop = _element(message, start, _INTEGER, end)
        message_id = int.from_bytes(message[start:stop], "big", signed=True)
        start, stop = _element(message, stop, _SEARCH_RESULT_ENTRY, end)
        if stop != end:  # controls follow the operation
            return None
        start, stop = _element(message, start, _OCTET_STRING, end)
        dn = message[start:stop]
        start, stop = _element(message, stop, _SEQUENCE, end)
        if stop != end:
            return None
        attributes = {}
        while start < end:
            start, attribute_end = _element(message, start, _SEQUENCE, end)
            start, stop = _element(message, start, _OCTET_STRING, attribute_end)
            name = message[start:stop].decode("utf-8")
            start, values_end = _element(message, stop, _SET, attribute_end)
            values = []
            while start < values_end:
                start, stop = _element(message, start, _OCTET_STRING, values_end)
                values.append(message[start:stop])
                start = stop
            if values_end != attribute_end:
                return None
            attributes[name] = values
            start = attribute_end
    except (_NotPlain, IndexError, UnicodeDecodeError):
        return None
    return message_id, dn, attributes


class Entry:
    """The payload of a searchResEntry decoded by ``parse_search_entry``: ``dn`` (bytes) and ``attributes``.

    Indexed as ldap3 indexes its own payload (``payload[0][3]`` the DN, ...), it answers what ldap3's decoder gives, so a
    connection that was not set up to read ``Entry`` objects still works."""

    __slots__ = ("dn", "attributes", "_message", "_decode", "_ldap3")

    def __init__(self, dn, attributes, message, decode):
        self.dn, self.attributes, self._message, self._decode, self._ldap3 = dn, attributes, message, decode, None

    def _payload(self):
        if self._ldap3 is None:
            self._ldap3 = self._decode(self._message)["payload"]
        return self._ldap3

    def __getitem__(self, index):
        return self._payload()[index]

    def __len__(self):
        return len(self._payload())

    def __iter__(self):
        return iter(self._payload())


def message_decoder(ldap3_decode):
    """A drop-in for ldap3's ``decode_message_fast`` (``ldap3_decode``) that reads plain search entries itself."""

    def decode_message(message):
        parsed = parse_search_entry(message)
        if parsed is None:
            return ldap3_decode(message)
        message_id, dn, attributes = parsed
        return {"messageID": message_id, "protocolOp": 4, "payload": Entry(dn, attributes, message, ldap3_decode), "controls": None}

    decode_message.ldap3_decode = ldap3_decode
    return decode_message

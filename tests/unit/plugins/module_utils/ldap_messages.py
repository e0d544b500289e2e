"""Helpers for the AD tests: LDAP messages as a domain controller sends them (BER), encoded by ldap3's own ASN.1 types."""

from ldap3.protocol import rfc4511
from pyasn1.codec.ber import encoder


def search_result_entry(dn, attributes, message_id=3, controls=()):
    """The bytes of a searchResEntry LDAPMessage; ``attributes`` {name: [value bytes]}, ``controls`` [(oid, value bytes)]."""
    entry = rfc4511.SearchResultEntry()
    entry["object"] = rfc4511.LDAPDN(dn)
    listed = rfc4511.PartialAttributeList()
    for name, values in attributes.items():
        attribute = rfc4511.PartialAttribute()
        attribute["type"] = rfc4511.AttributeDescription(name)
        vals = rfc4511.Vals()
        for value in values:
            vals.append(rfc4511.AttributeValue(value))
        attribute["vals"] = vals
        listed.append(attribute)
    entry["attributes"] = listed
    message = rfc4511.LDAPMessage()
    message["messageID"] = rfc4511.MessageID(message_id)
    operation = rfc4511.ProtocolOp()
    operation["searchResEntry"] = entry
    message["protocolOp"] = operation
    if controls:
        listed_controls = rfc4511.Controls()
        for oid, value in controls:
            control = rfc4511.Control()
            control["controlType"] = rfc4511.LDAPOID(oid)
            control["controlValue"] = rfc4511.ControlValue(value)
            listed_controls.append(control)
        message["controls"] = listed_controls
    return encoder.encode(message)


def search_result_done(message_id=3, code=0):
    """The bytes of a searchResDone LDAPMessage with result ``code``."""
    done = rfc4511.SearchResultDone()
    done["resultCode"] = rfc4511.ResultCode(code)
    done["matchedDN"] = rfc4511.LDAPDN("")
    done["diagnosticMessage"] = rfc4511.LDAPString("")
    message = rfc4511.LDAPMessage()
    message["messageID"] = rfc4511.MessageID(message_id)
    operation = rfc4511.ProtocolOp()
    operation["searchResDone"] = done
    message["protocolOp"] = operation
    return encoder.encode(message)

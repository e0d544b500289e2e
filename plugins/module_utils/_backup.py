# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Phone number backups: the snapshot taken before the procedure changes anything, and its verification.

A backup is one JSON object::

    {"format": "entraid.dirsync.phone-backup", "version": 2,
     "tenant_id": "...", "ad_domain": "DC=contoso,DC=com", "created_at": "2026-11-28T16:29:51Z",
     "search_bases": [...], "ldap_filter": null,
     "counts": {...},
     "ad_users": [{"dn", "object_guid", "user_principal_name", "sam_account_name", "immutable_id", "mobile", "other_mobile"}],
     "entra_users": [{"id", "user_principal_name", "mobile", "immutable_id"}],
     "checksum": "sha256:<hex>"}

Version 2 keeps every phone value exactly as the directory held it (spaces, control characters and all), so a
restore is exact; version 1 backups (trimmed values) are still read.

``checksum`` is the SHA-256 of the canonical JSON (sorted keys, no whitespace, UTF-8) of every other key. It has no
key: it detects corruption and accidental edits, not a deliberate forgery (anyone who can edit the file can recompute
it). What keeps a backup trustworthy is who can write it: ``load`` refuses a file another user owns or that group or
others may write, and a restore touches only users under the backup's own search bases.

- ``build(...)`` makes the document from ``_drift`` records; ``write(directory, document)`` stores it in a new
  timestamped file (atomically, mode 0600, the directory created with mode 0700; an existing file is never replaced).
- ``load(path, tenant_id=None, ad_domain=None)`` reads and verifies it: refuses a file that is not a backup,
  an unknown format version, a checksum mismatch (corrupted or edited) and another tenant or AD domain.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os

from ansible_collections.entraid.dirsync.plugins.module_utils import _files, _phone
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, InvalidInput

FORMAT = "entraid.dirsync.phone-backup"
VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
FILE_PREFIX = "phone-backup"

AD_KEYS = ("dn", "object_guid", "user_principal_name", "sam_account_name", "immutable_id", "mobile", "other_mobile")
ENTRA_KEYS = ("id", "user_principal_name", "mobile", "immutable_id")
HEADER_KEYS = ("format", "version", "tenant_id", "ad_domain", "created_at", "search_bases", "ldap_filter", "counts")


class BackupRefused(InvalidInput):
    """The file is not a usable backup for this run (details: path, reason)."""


def ad_record(user):
    """The backup record of an ``_drift.ADUser``."""
    return {"dn": user.dn, "object_guid": user.guid, "user_principal_name": user.upn, "sam_account_name": user.sam,
            "immutable_id": user.anchor, "mobile": user.mobile, "other_mobile": list(user.other_mobile)}


def entra_record(user):
    """The backup record of an ``_drift.EntraUser``."""
    return {"id": user.id, "user_principal_name": user.upn, "mobile": user.mobile, "immutable_id": user.immutable_id}


def counts_of(ad_users, entra_users):
    return {
        "ad_users": len(ad_users),
        "ad_with_mobile": sum(1 for user in ad_users if _phone.clean(user["mobile"])),
        "ad_with_other_mobile": sum(1 for user in ad_users if any(_phone.clean(value) for value in user["other_mobile"])),
        "entra_users": len(entra_users),
        "entra_with_mobile": sum(1 for user in entra_users if _phone.clean(user["mobile"])),
    }


def _timestamp(now):
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def build(tenant_id, ad_domain, search_bases, ldap_filter, ad_users, entra_users, now=None):
    """The backup document (with its checksum) of ``ADUser`` / ``EntraUser`` records."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    # In a fixed order (the reads come in no fixed order), so two backups of the same directory compare line by line.
    ad_records = sorted((ad_record(user) for user in ad_users), key=lambda record: (record["dn"].lower(), record["dn"]))
    entra_records = [entra_record(user) for user in entra_users]
    document = {
        "format": FORMAT,
        "version": VERSION,
        "tenant_id": tenant_id,
        "ad_domain": ad_domain,
        "created_at": _timestamp(now),
        "search_bases": list(search_bases),
        "ldap_filter": ldap_filter,
        "counts": counts_of(ad_records, entra_records),
        "ad_users": ad_records,
        "entra_users": entra_records,
    }
    document["checksum"] = checksum(document)
    return document


def checksum(document):
    """``sha256:<hex>`` of the canonical JSON of every key but ``checksum``."""
    payload = {key: value for key, value in document.items() if key != "checksum"}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _safe(text):
    return "".join(char if char.isalnum() or char in "-." else "_" for char in str(text or "unknown"))


def candidate_paths(directory, tenant_id, now):
    """The names a backup may take, in order: ``phone-backup_<tenant>_<UTC time>.json``, then ``-2.json``, ``-3.json``..."""
    stem = "%s_%s_%s" % (FILE_PREFIX, _safe(tenant_id), now.strftime("%Y%m%dT%H%M%SZ"))
    yield os.path.join(directory, stem + ".json")
    number = 2
    while True:
        yield os.path.join(directory, "%s-%d.json" % (stem, number))
        number += 1


def write(directory, document):
    """Write ``document`` to a new timestamped file in ``directory`` (created, mode 0700, when missing); return its path."""
    directory = os.path.abspath(os.path.expanduser(directory))
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise DirsyncError("Cannot create the backup directory %s: %s. Choose a directory the user running the module can write."
                           % (directory, exc.strerror or exc)) from None
    created = datetime.datetime.strptime(document["created_at"], "%Y-%m-%dT%H:%M:%SZ")

    def dump(handle):
        # One user per line: readable, and diffable between two backups.
        handle.write("{\n")
        for key in HEADER_KEYS:
            handle.write(" %s: %s,\n" % (json.dumps(key), json.dumps(document[key], ensure_ascii=False, sort_keys=True)))
        for key in ("ad_users", "entra_users"):
            handle.write(" %s: [" % json.dumps(key))
            for position, record in enumerate(document[key]):
                handle.write("%s\n  %s" % ("," if position else "", json.dumps(record, ensure_ascii=False, sort_keys=True)))
            handle.write("\n ],\n")
        handle.write(" %s: %s\n}\n" % (json.dumps("checksum"), json.dumps(document["checksum"])))
    for path in candidate_paths(directory, document["tenant_id"], created):
        if os.path.exists(path):
            continue  # skipped without writing; the exclusive write still catches a run that takes the name meanwhile
        try:
            return _files.atomic_write(path, dump, exclusive=True, what="backup")
        except FileExistsError:
            continue  # another run (same tenant, same second) claimed this name first: its backup is kept


def _refuse(path, reason, hint):
    return BackupRefused("%s cannot be used: %s %s Nothing was changed." % (path, reason, hint), backup_path=path, reason=reason)


def _check_structure(path, document):
    bad = "it does not have the structure of an entraid.dirsync phone backup (%s)."
    hint = "Take a new backup with entraid.dirsync.phone_backup."
    for key in HEADER_KEYS + ("ad_users", "entra_users"):
        if key not in document:
            raise _refuse(path, bad % ("no %s" % key), hint)
    for key, fields in (("ad_users", AD_KEYS), ("entra_users", ENTRA_KEYS)):
        records = document[key]
        if not isinstance(records, list) or not all(isinstance(record, dict) and set(fields) <= set(record) for record in records):
            raise _refuse(path, bad % ("%s must be a list of objects with %s" % (key, ", ".join(fields))), hint)
    for record in document["ad_users"]:
        if not isinstance(record["object_guid"], str) or not record["object_guid"] or not isinstance(record["dn"], str):
            raise _refuse(path, bad % ("the AD user %r has no object_guid or dn text" % (record.get("dn"),)), hint)
        if not (record["mobile"] is None or isinstance(record["mobile"], str)) or not isinstance(record["other_mobile"], list) \
                or not all(isinstance(value, str) for value in record["other_mobile"]):
            raise _refuse(path, bad % ("the AD user %s has a mobile that is neither text nor null, or an other_mobile that is "
                                       "not a list of text" % record["dn"]), hint)
    bases = document["search_bases"]
    if not isinstance(bases, list) or not bases or not all(isinstance(base, str) for base in bases):
        raise _refuse(path, bad % "search_bases must be a list of distinguished names", hint)
    outside = [record["dn"] for record in document["ad_users"] if not under_any(record["dn"], bases)]
    if outside:
        raise _refuse(path, "it holds %d AD user(s) outside its own search bases (%s), which phone_backup never writes: %s."
                      % (len(outside), "; ".join(bases), ", ".join(outside[:5]) + (" ..." if len(outside) > 5 else "")),
                      "The file was edited after it was written; use another backup.")


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


def _same_id(a, b):
    return str(a or "").strip().lower() == str(b or "").strip().lower()


def load(path, tenant_id=None, ad_domain=None):
    """Read and verify the backup at ``path``; return the document.

    Raises ``BackupRefused`` (an InvalidInput) for a missing or unreadable file, one that is not a backup, an
    unsupported version, a checksum mismatch, or a backup of another tenant (``tenant_id``) or AD domain (``ad_domain``).
    """
    path = os.path.abspath(os.path.expanduser(path))
    hint = "Choose another backup file, or take a new backup with entraid.dirsync.phone_backup."
    if os.path.lexists(path):
        # Only a file nobody else can have written is trusted: the checksum has no key.
        _files.check_private_file(path, "backup")
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except FileNotFoundError:
        raise _refuse(path, "the file does not exist.", "Give the path of a backup that phone_backup (the backup role) wrote.") from None
    except OSError as exc:
        raise _refuse(path, "it cannot be read (%s)." % (exc.strerror or exc), "Check its permissions.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(path, "it is not valid JSON (%s): the file is truncated or corrupted." % exc, hint) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _refuse(path, "it is not an entraid.dirsync phone backup (format %r, expected %r)."
                      % (document.get("format") if isinstance(document, dict) else type(document).__name__, FORMAT), hint)
    if document.get("version") not in SUPPORTED_VERSIONS:
        raise _refuse(path, "its format version %r is not one this collection reads (%s)."
                      % (document.get("version"), ", ".join(map(str, SUPPORTED_VERSIONS))),
                      "Use the collection version that wrote it, or take a new backup.")
    expected = document.get("checksum")
    actual = checksum(document)
    if expected != actual:
        raise _refuse(path, "its checksum does not match its content (recorded %s, computed %s): the file was corrupted or edited "
                      "after it was written." % (expected, actual), hint)
    _check_structure(path, document)
    if tenant_id and not _same_id(document["tenant_id"], tenant_id):
        raise _refuse(path, "it is a backup of tenant %s, but this run signs in to tenant %s."
                      % (document["tenant_id"], tenant_id), "Use a backup of tenant %s (check the inventory host)." % tenant_id)
    if ad_domain and document["ad_domain"] and not _same_id(document["ad_domain"], ad_domain):
        raise _refuse(path, "it is a backup of the AD domain %s, but this run connects to %s."
                      % (document["ad_domain"], ad_domain), "Use a backup of %s (check ad_server)." % ad_domain)
    return document


def ad_users_by_guid(document):
    """The backup's AD records keyed by lower-case objectGUID."""
    return {record["object_guid"].lower(): record for record in document["ad_users"]}


def summary(document, path):
    """What a module returns about the backup it used."""
    return {"path": os.path.abspath(os.path.expanduser(path)), "tenant_id": document["tenant_id"], "ad_domain": document["ad_domain"],
            "created_at": document["created_at"], "checksum": document["checksum"], "counts": document["counts"]}

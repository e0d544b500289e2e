# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Phone number backups: the snapshot taken before the procedure changes anything, and its verification.

A backup is one JSON object::

    {"format": "entraid.dirsync.phone-backup", "version": 3,
     "tenant_id": "...", "ad_domain": "DC=contoso,DC=com", "created_at": "2026-11-28T16:29:51Z",
     "search_bases": [...], "ldap_filter": null,
     "ad_sources": [{"name": "contoso.com", "domain": "DC=contoso,DC=com", "search_bases": [...]}],
     "counts": {...},
     "ad_users": [{"dn", "object_guid", "user_principal_name", "sam_account_name", "immutable_id", "mobile", "other_mobile",
                   "source"}],
     "entra_users": [{"id", "user_principal_name", "mobile", "immutable_id"}],
     "checksum": "sha256:<hex>"}

Version 2 keeps every phone value exactly as the directory held it (spaces, control characters and all), so a
restore is exact; version 1 backups (trimmed values) are still read. Version 3 names the AD sources (``_ad_sources``)
and each AD user's source; ``ad_domain`` is null when there are several, and ``search_bases`` holds every source's.

``checksum`` is the SHA-256 of the canonical JSON (sorted keys, no whitespace, UTF-8) of every other key. It has no
key: it detects corruption and accidental edits, not a deliberate forgery (anyone who can edit the file can recompute
it). What keeps a backup trustworthy is who can write it: ``load`` refuses a file another user owns or that group or
others may write, and a restore touches only users under the backup's own search bases.

- ``build(...)`` makes the document from ``_drift`` records; ``write(directory, document)`` stores it in a new
  timestamped file (atomically, mode 0600, the directory created with mode 0700; an existing file is never replaced).
- ``load(path, tenant_id=None, ad_domains=None, keep_ad=..., keep_entra=...)`` reads and verifies it: refuses a file
  that is not a backup, an unknown format version, a checksum mismatch (corrupted or edited), another tenant, and AD
  domains the run does not connect to. It reads the file record by record, checking and hashing each one, and keeps only the records the caller's
  ``keep_*`` functions return (all by default), so a module that needs a few users of a 100,000-user backup holds only
  those. A file with the layout ``write`` gives it (every header key before the user lists) is streamed; a valid
  backup that a tool rewrote in another key order is read whole.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re

from ansible_collections.entraid.dirsync.plugins.module_utils import _files, _phone
from ansible_collections.entraid.dirsync.plugins.module_utils._identity import domain_name, under_any
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, InvalidInput

FORMAT = "entraid.dirsync.phone-backup"
VERSION = 3
SUPPORTED_VERSIONS = (1, 2, 3)
FILE_PREFIX = "phone-backup"

AD_KEYS = ("dn", "object_guid", "user_principal_name", "sam_account_name", "immutable_id", "mobile", "other_mobile")
ENTRA_KEYS = ("id", "user_principal_name", "mobile", "immutable_id")
HEADER_KEYS = ("format", "version", "tenant_id", "ad_domain", "created_at", "search_bases", "ldap_filter", "counts")
# What write() puts before the user lists: ad_sources is new in version 3 (older backups have one domain, ad_domain).
WRITTEN_HEADER_KEYS = HEADER_KEYS + ("ad_sources",)
LIST_KEYS = ("ad_users", "entra_users")


class BackupRefused(InvalidInput):
    """The file is not a usable backup for this run (details: path, reason)."""


def ad_record(user):
    """The backup record of an ``_drift.ADUser``."""
    return {"dn": user.dn, "object_guid": user.guid, "user_principal_name": user.upn, "sam_account_name": user.sam,
            "immutable_id": user.anchor, "mobile": user.mobile, "other_mobile": list(user.other_mobile), "source": user.source}


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


class _Records(object):
    """A backup's user list made on demand from the read's records: iterating it again makes the same records again, so
    writing and hashing a 100,000-user backup never holds a second copy of every user."""

    def __init__(self, users, make):
        self._users, self._make = users, make

    def __iter__(self):
        return (self._make(user) for user in self._users)

    def __len__(self):
        return len(self._users)


def _one_source(ad_domain, search_bases):
    """``ad_sources`` of a backup of one domain (what version 3 records; older backups have ``ad_domain`` alone)."""
    return [{"name": domain_name(ad_domain), "domain": ad_domain, "search_bases": list(search_bases)}]


def build(tenant_id, ad_domain, search_bases, ldap_filter, ad_users, entra_users, now=None, ad_sources=None):
    """The backup document (with its checksum) of ``ADUser`` / ``EntraUser`` records.

    ``ad_sources`` (``ADSources.describe()``) defaults to one source: ``ad_domain`` under ``search_bases``.

    Its ``ad_users`` and ``entra_users`` are iterables (made from the given records each time they are iterated), not
    lists: ``write`` and ``checksum`` take them as they are; ``load`` gives lists.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    # In a fixed order (the reads come in no fixed order), so two backups of the same directory compare line by line.
    ad_records = _Records(sorted(ad_users, key=lambda user: (user.dn.lower(), user.dn)), ad_record)
    entra_records = _Records(list(entra_users), entra_record)
    document = {
        "format": FORMAT,
        "version": VERSION,
        "tenant_id": tenant_id,
        "ad_domain": ad_domain,
        "created_at": _timestamp(now),
        "search_bases": list(search_bases),
        "ldap_filter": ldap_filter,
        "ad_sources": ad_sources or _one_source(ad_domain, search_bases),
        "counts": counts_of(ad_records, entra_records),
        "ad_users": ad_records,
        "entra_users": entra_records,
    }
    document["checksum"] = checksum(document)
    return document


def _canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class _Checksum(object):
    """SHA-256 of the canonical JSON (sorted keys, no whitespace, UTF-8) of a backup's keys but ``checksum``, fed key by
    key in sorted order and a list record by record: the same digest as hashing ``json.dumps(payload, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` whole, without building that string."""

    def __init__(self):
        self._sha, self._keys = hashlib.sha256(), 0

    def _feed(self, text):
        self._sha.update(text.encode("utf-8"))

    def key(self, key, value):
        self._feed(("," if self._keys else "{") + _canonical(key) + ":" + _canonical(value))
        self._keys += 1

    def list_start(self, key):
        self._feed(("," if self._keys else "{") + _canonical(key) + ":[")
        self._keys += 1
        self._records = 0

    def record(self, record):
        self._feed(("," if self._records else "") + _canonical(record))
        self._records += 1

    def list_end(self):
        self._feed("]")

    def hexdigest(self):
        self._feed("}" if self._keys else "{}")
        return "sha256:" + self._sha.hexdigest()


def checksum(document):
    """``sha256:<hex>`` of the canonical JSON of every key but ``checksum``."""
    digest = _Checksum()
    for key in sorted(key for key in document if key != "checksum"):
        if key in LIST_KEYS and not isinstance(document[key], (dict, str)):
            digest.list_start(key)
            for record in document[key]:
                digest.record(record)
            digest.list_end()
        else:
            digest.key(key, document[key])
    return digest.hexdigest()


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
        for key in WRITTEN_HEADER_KEYS:
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


_BAD = "it does not have the structure of an entraid.dirsync phone backup (%s)."
_NEW_BACKUP_HINT = "Take a new backup with entraid.dirsync.phone_backup."
_FIELDS = {"ad_users": AD_KEYS, "entra_users": ENTRA_KEYS}


def _header_problem(document):
    """Why the header keys of ``document`` do not make a backup's header, or None."""
    for key in HEADER_KEYS:
        if key not in document:
            return _BAD % ("no %s" % key)
    bases = document["search_bases"]
    if not isinstance(bases, list) or not bases or not all(isinstance(base, str) for base in bases):
        return _BAD % "search_bases must be a list of distinguished names"
    return None


def _record_problem(key, record):
    """Why ``record`` is not a record of the list ``key``, or None."""
    if not isinstance(record, dict) or not set(_FIELDS[key]) <= set(record):
        return _BAD % ("%s must be a list of objects with %s" % (key, ", ".join(_FIELDS[key])))
    if key == "ad_users":
        if not isinstance(record["object_guid"], str) or not record["object_guid"] or not isinstance(record["dn"], str):
            return _BAD % ("the AD user %r has no object_guid or dn text" % (record.get("dn"),))
        if not (record["mobile"] is None or isinstance(record["mobile"], str)) or not isinstance(record["other_mobile"], list) \
                or not all(isinstance(value, str) for value in record["other_mobile"]):
            return _BAD % ("the AD user %s has a mobile that is neither text nor null, or an other_mobile that is not a list "
                           "of text" % record["dn"])
    return None


def _outside_problem(outside, bases):
    return ("it holds %d AD user(s) outside its own search bases (%s), which phone_backup never writes: %s."
            % (len(outside), "; ".join(bases), ", ".join(outside[:5]) + (" ..." if len(outside) > 5 else "")))


class _Verifier(object):
    """What ``load`` checks of every record, whether the file is streamed or read whole: the record's structure, that an
    AD user is under the backup's search bases, and what the caller keeps of it. Problems are collected, not raised: a
    checksum mismatch, found at the end, is the truer message."""

    def __init__(self, header, keep):
        self.bases = header["search_bases"]
        self.keep = keep
        self.kept = {key: [] for key in LIST_KEYS}
        self.problem = None
        self.outside = []

    def record(self, key, record):
        problem = _record_problem(key, record)
        if problem:
            self.problem = self.problem or problem
            return
        if key == "ad_users" and not under_any(record["dn"], self.bases):
            self.outside.append(record["dn"])
            return
        kept = self.keep[key](record)
        if kept is not None:
            self.kept[key].append(kept)

    def refusal(self, path, lists_seen):
        """The BackupRefused for the structure problem found, or None."""
        missing = [key for key in LIST_KEYS if key not in lists_seen]
        if missing:
            return _refuse(path, _BAD % ("no %s" % missing[0]), _NEW_BACKUP_HINT)
        if self.problem:
            return _refuse(path, self.problem, _NEW_BACKUP_HINT)
        if self.outside:
            return _refuse(path, _outside_problem(self.outside, self.bases), "The file was edited after it was written; use another backup.")
        return None


def _same_id(a, b):
    return str(a or "").strip().lower() == str(b or "").strip().lower()


class _OtherLayout(Exception):
    """The file is not laid out as ``write`` writes a backup (or is no backup at all): read it whole instead, which
    accepts any valid JSON and says exactly what is wrong with it."""


class _JSONStream(object):
    """The values of a JSON text, read from a file in chunks: only the value being decoded is in memory."""

    _BLANKS = re.compile(r"[ \t\n\r]*")
    _DECODER = json.JSONDecoder()

    def __init__(self, handle, chunk_size=1 << 16):
        self._handle, self._chunk_size = handle, chunk_size
        self._buffer, self._position, self._eof = "", 0, False

    def _more(self, size):
        if self._eof:
            return False
        data = self._handle.read(size)
        if not data:
            self._eof = True
            return False
        self._buffer = self._buffer[self._position:] + data
        self._position = 0
        return True

    def _skip_blanks(self):
        while True:
            self._position = self._BLANKS.match(self._buffer, self._position).end()
            if self._position < len(self._buffer) or not self._more(self._chunk_size):
                return

    def peek(self):
        """The next non-blank character ('' at the end of the file)."""
        self._skip_blanks()
        return self._buffer[self._position:self._position + 1]

    def char(self):
        """The next non-blank character ('' at the end of the file), consumed."""
        char = self.peek()
        self._position += len(char)
        return char

    def value(self):
        """The next JSON value, decoded."""
        self._skip_blanks()
        size = self._chunk_size
        while True:
            try:
                value, end = self._DECODER.raw_decode(self._buffer, self._position)
            except json.JSONDecodeError:
                if self._more(size):
                    size = min(size * 2, 1 << 24)  # a long value: read it in fewer, larger chunks
                    continue
                raise
            if end == len(self._buffer) and self._more(size):
                continue  # a number may go on in the next chunk
            self._position = end
            return value


def _stream(handle, keep):
    """Read a backup laid out as ``write`` writes it, record by record -> ``(header, verifier, lists seen, checksum)``.

    Raises ``_OtherLayout`` for anything else (another key order, duplicate keys, not a backup's header): the whole-file
    read then handles the file. The checksum is computed as the records go by, in the canonical (sorted) key order.
    """
    stream = _JSONStream(handle)
    if stream.char() != "{" or stream.peek() == "}":
        raise _OtherLayout()
    header, lists_seen, fed = {}, [], set()
    digest, verifier = _Checksum(), None

    def feed_header(before=None):
        for key in sorted(key for key in header if key not in fed and key != "checksum" and (before is None or key < before)):
            digest.key(key, header[key])
            fed.add(key)

    while True:
        key = stream.value()
        if not isinstance(key, str) or stream.char() != ":" or key in header or key in lists_seen:
            raise _OtherLayout()
        if key in LIST_KEYS:
            if verifier is None:
                if header.get("format") != FORMAT or header.get("version") not in SUPPORTED_VERSIONS or _header_problem(header):
                    raise _OtherLayout()
                verifier = _Verifier(header, keep)
            if stream.char() != "[":
                raise _OtherLayout()
            feed_header(before=key)
            digest.list_start(key)
            lists_seen.append(key)
            if stream.peek() == "]":
                stream.char()
            else:
                while True:
                    record = stream.value()
                    digest.record(record)
                    verifier.record(key, record)
                    separator = stream.char()
                    if separator == "]":
                        break
                    if separator != ",":
                        raise _OtherLayout()
            digest.list_end()
        else:
            if key != "checksum" and any(key < seen for seen in lists_seen):
                raise _OtherLayout()  # hashed after a list it sorts before: not the order write() gives
            header[key] = stream.value()
        separator = stream.char()
        if separator == "}":
            break
        if separator != ",":
            raise _OtherLayout()
    if stream.char() != "" or verifier is None:
        raise _OtherLayout()
    feed_header()
    return header, verifier, lists_seen, digest.hexdigest()


def _whole(handle, keep):
    """Read any valid JSON file whole, and check it as ``_stream`` does -> the same four values."""
    document = json.load(handle)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return document, None, (), None
    if document.get("version") not in SUPPORTED_VERSIONS:
        return document, None, (), None
    computed = checksum(document)
    header = {key: value for key, value in document.items() if key not in LIST_KEYS}
    problem = _header_problem(header)
    if problem:
        return header, problem, (), computed
    verifier = _Verifier(header, keep)
    for key in LIST_KEYS:
        if key in document:
            records = document[key]
            for record in records if isinstance(records, list) else [records]:
                verifier.record(key, record)
    return header, verifier, [key for key in LIST_KEYS if key in document], computed


def keep_all(record):
    """For ``load``: keep every record."""
    return record


def keep_none(_record):
    """For ``load``: keep no record (the file is still read and verified whole)."""
    return None


def load(path, tenant_id=None, ad_domains=None, keep_ad=keep_all, keep_entra=keep_all):
    """Read and verify the backup at ``path``; return the document (header keys, ``checksum``, and as ``ad_users`` and
    ``entra_users`` the lists of what ``keep_ad`` / ``keep_entra`` return for each record, None dropping it).

    Every record is checked and hashed whatever is kept; nothing is returned unless the whole file verifies.
    Raises ``BackupRefused`` (an InvalidInput) for a missing or unreadable file, one that is not a backup, an
    unsupported version, a checksum mismatch, or a backup of another tenant (``tenant_id``) or of an AD domain that is not
    among ``ad_domains`` (the naming contexts the run connects to). The document always has ``ad_sources`` (a backup older
    than version 3: its one domain).
    """
    path = os.path.abspath(os.path.expanduser(path))
    hint = "Choose another backup file, or take a new backup with entraid.dirsync.phone_backup."
    if os.path.lexists(path):
        # Only a file nobody else can have written is trusted: the checksum has no key.
        _files.check_private_file(path, "backup")
    keep = {"ad_users": keep_ad, "entra_users": keep_entra}
    try:
        with open(path, encoding="utf-8") as handle:
            try:
                header, verifier, lists_seen, computed = _stream(handle, keep)
            except (_OtherLayout, json.JSONDecodeError):
                handle.seek(0)
                header, verifier, lists_seen, computed = _whole(handle, keep)
    except FileNotFoundError:
        raise _refuse(path, "the file does not exist.", "Give the path of a backup that phone_backup (the backup role) wrote.") from None
    except OSError as exc:
        raise _refuse(path, "it cannot be read (%s)." % (exc.strerror or exc), "Check its permissions.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _refuse(path, "it is not valid JSON (%s): the file is truncated or corrupted." % exc, hint) from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise _refuse(path, "it is not an entraid.dirsync phone backup (format %r, expected %r)."
                      % (header.get("format") if isinstance(header, dict) else type(header).__name__, FORMAT), hint)
    if header.get("version") not in SUPPORTED_VERSIONS:
        raise _refuse(path, "its format version %r is not one this collection reads (%s)."
                      % (header.get("version"), ", ".join(map(str, SUPPORTED_VERSIONS))),
                      "Use the collection version that wrote it, or take a new backup.")
    expected = header.get("checksum")
    if expected != computed:
        raise _refuse(path, "its checksum does not match its content (recorded %s, computed %s): the file was corrupted or edited "
                      "after it was written." % (expected, computed), hint)
    refusal = _refuse(path, verifier, _NEW_BACKUP_HINT) if isinstance(verifier, str) else verifier.refusal(path, lists_seen)
    if refusal:
        raise refusal
    if tenant_id and not _same_id(header["tenant_id"], tenant_id):
        raise _refuse(path, "it is a backup of tenant %s, but this run signs in to tenant %s."
                      % (header["tenant_id"], tenant_id), "Use a backup of tenant %s (check the inventory host)." % tenant_id)
    if not header.get("ad_sources"):
        header["ad_sources"] = _one_source(header["ad_domain"], header["search_bases"])
    missing = [source["domain"] for source in header["ad_sources"]
               if source.get("domain") and ad_domains and not any(_same_id(source["domain"], domain) for domain in ad_domains)]
    if missing:
        raise _refuse(path, "it is a backup of the AD domain(s) %s, but this run connects to %s."
                      % ("; ".join(missing), "; ".join(ad_domains)),
                      "Use a backup of %s, or connect to every domain of the backup (check ad_server and ad_sources)." % "; ".join(ad_domains))
    document = dict(header)
    document.update(verifier.kept)
    return document


def ad_users_by_guid(document):
    """The backup's AD records keyed by lower-case objectGUID."""
    return {record["object_guid"].lower(): record for record in document["ad_users"]}


def summary(document, path):
    """What a module returns about the backup it used."""
    return {"path": os.path.abspath(os.path.expanduser(path)), "tenant_id": document["tenant_id"], "ad_domain": document["ad_domain"],
            "ad_sources": [source["name"] for source in document["ad_sources"]],
            "created_at": document["created_at"], "checksum": document["checksum"], "counts": document["counts"]}

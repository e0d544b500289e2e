# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Incremental drift reads: a repeat run reads only what changed since the last one.

A private state file (mode 0600) keeps, per tenant and scope, each directory's watermark and the users of the last
run, exactly as a full read returned them (``ADUser`` / ``EntraUser``). A repeat run applies the changes to them, so
``pair_and_classify`` sees what a full read would have given and the report is the same.

- AD: ``uSNChanged`` watermarks, as Microsoft's "Polling for changes using USNChanged" describes: the
  ``highestCommittedUSN`` read before the search, kept with the domain controller's ``dsServiceName`` and
  ``invocationId`` (a watermark is only valid on that controller, and not after it was restored from a backup).
  Changed users in the scope are read again; users changed anywhere in the domain, deleted ones included (Show
  Deleted control), that are no longer in the scope are dropped. Renaming or moving an OU changes its users' DNs
  without changing the users, so a changed OU or container in or around the scope means a full AD read; so does a
  filter on a back-link such as ``memberOf`` (joining a group changes the group, not the user).
- Graph: the users delta query. A full read first asks for a ``$deltatoken=latest`` link ("sync from now"), then
  lists the synced users; a repeat run follows that link. Delta links expire after 7 days (``syncStateNotFound``),
  and so does the state: an older one, or one for another tenant or scope, means a full read.

Any doubt means a full read of that directory, never a guess: the result says which directory was read how, and why.
"""

from __future__ import annotations

import datetime
import json
import operator
import os
import re
import threading

from ansible_collections.entraid.dirsync.plugins.module_utils import _ad, _drift, _files, _identity
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import GraphError, InvalidInput

STATE_KIND = "entraid.dirsync phone_compare state"
# 2: the AD side per AD source. 3: JSON lines, the watermarks first, then each side's users a chunk per line, so a
# repeat run asks both directories what changed while it parses the users (the parse holds the GIL a chunk at a time).
# 4: the users are a base and a journal: a repeat run copies the base as it is and writes, per side, the current record
# of every user changed since the base was written (null: gone), instead of encoding every user again.
STATE_VERSION = 4
# Graph's delta links for directory objects live 7 days; a day of margin.
MAX_STATE_AGE = datetime.timedelta(days=6)
SHOW_DELETED = ("1.2.840.113556.1.4.417", True, None)  # LDAP_SERVER_SHOW_DELETED_OID, so deletions are seen
CONTAINER_FILTER = "(|(objectClass=organizationalUnit)(objectClass=container))"
CONTAINER_CLASSES = {"organizationalunit", "container"}
# GUIDs per search: a domain controller unions the index entries of an OR's terms, which costs more per term as the OR
# grows (Samba: a third more time for the same users two hundred at a time than a hundred at a time).
GUID_BATCH = 100
SAVE_CHUNK = 5000
# A journal longer than this share of the base is folded into a new base (a repeat run parses both).
MAX_JOURNAL_SHARE = 0.2
# Past this many changed objects a full read is about as fast, and one search instead of many.
MAX_CHANGED = 20000
# Back-link attributes change when the object they point from changes, not the user: a filter on them cannot be tracked.
# AD names most back-links ...BL (msDS-MembersForAzRoleBL); these are the common exceptions.
BACK_LINKS = ("memberof", "directreports", "managedobjects", "masteredby", "netbootscp", "serverreferencebl")
_FILTER_ATTRIBUTE = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9-]*)\s*(?::[^=()]*)?[~<>]?=")
DELTA_SELECT = _drift.ENTRA_SELECT + ("onPremisesSyncEnabled",)
DELTA_EXPIRED_CODES = ("syncStateNotFound", "resyncRequired")


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


def scope_key(tenant_id, bases, ldap_filter):
    """What a state file is valid for: the tenant, the search bases (any order, any case) and the filter."""
    return {"tenant_id": (tenant_id or "").lower(), "search_bases": sorted(base.lower() for base in bases),
            "ldap_filter": (ldap_filter or "").strip() or None}


def load(path, key):
    """The state at ``path`` when it is usable for ``key`` -> (state or None, reason it is not used or None).

    Only the first line is read: ``state`` is ``{"ad": {source name: side}, "entra": side, "users": StateUsers}``, each
    side ``{"watermark": ..., "users": function, "journal": function}``; the users are parsed by ``StateUsers``
    (``read_both`` starts it at once): ``users()`` gives {key: user} (AD: objectGUID, Entra: id), ``journal()`` the keys
    changed since the base.
    A state file that others could have written is refused (InvalidInput): it decides what the report says.
    """
    if not os.path.lexists(path):
        return None, "no state file yet (the first run reads both directories in full and writes it)"
    _files.check_private_file(path, "state file")
    try:
        with open(path, encoding="utf-8") as handle:
            header = json.loads(handle.readline())
    except (OSError, ValueError) as exc:
        return None, "the state file could not be read (%s); it is written again" % exc
    if not isinstance(header, dict) or header.get("kind") != STATE_KIND or header.get("version") != STATE_VERSION:
        return None, "the state file is not a phone_compare state of version %d; it is written again" % STATE_VERSION
    if header.get("scope") != key:
        return None, "the state file is for another tenant, search bases or ldap_filter; it is written again"
    try:
        written = datetime.datetime.strptime(header["written_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except (KeyError, TypeError, ValueError):
        return None, "the state file has no valid written_at; it is written again"
    if _now() - written > MAX_STATE_AGE:
        return None, "the state file is older than %d days (Graph's delta links expire after 7)" % MAX_STATE_AGE.days
    users = StateUsers(path)

    def side(kind, name, watermark):
        if watermark is None:
            return None
        return {"watermark": watermark, "users": lambda: users.get(kind, name), "journal": lambda: users.journal(kind, name)}
    ad = header.get("ad") if isinstance(header.get("ad"), dict) else {}
    return {"ad": {name: side("ad", name, mark) for name, mark in ad.items()}, "entra": side("entra", None, header.get("entra")),
            "users": users}, None


class StateUnusable(Exception):
    """The users of a state file cannot be read (it was edited or truncated): that directory is read in full."""


def _key_of(kind):
    return operator.attrgetter("guid" if kind == "ad" else "id")


class StateUsers:
    """The users of a state file, parsed in a thread of their own (``start``); ``get`` waits for them.

    The file stays open until ``close``: ``save`` copies its base from it (the very file that was parsed, even once a
    new one has taken its name)."""

    def __init__(self, path):
        self._path = path
        self._sides, self._journals, self._error = {}, {}, None
        self._handle, self.base = None, None  # base: (start, end, [(kind, name)], users in it) of a file parsed whole
        self._thread = threading.Thread(target=self._parse, name="drift-state", daemon=True)
        self._started = False

    def start(self):
        if not self._started:
            self._started = True
            self._thread.start()

    def _parse(self):
        try:
            self._handle = handle = open(self._path, "rb")  # pylint: disable=consider-using-with
            handle.readline()
            start, end, order, rows = handle.tell(), None, [], 0
            shared = _drift.SharedText()  # the AD and Entra records of a user hold its equal text once
            while True:
                line = handle.readline()
                if not line:
                    self._error = "it has no end mark (truncated)"
                    return
                mark = json.loads(line)
                if "side" in mark and end is None:
                    side = (mark["side"], mark["name"])
                    record, key = _record_of(side[0], shared), _key_of(side[0])
                    users = {}
                    for _chunk in range(mark["chunks"]):
                        # Records a chunk at a time: the parsed rows of the whole file are never held at once.
                        for user in map(record, json.loads(handle.readline())):
                            users[key(user)] = user
                    self._sides[side], self._journals[side] = users, set()
                    order.append(side)
                    rows += len(users)
                    continue
                if end is None:
                    end = handle.tell() - len(line)
                if "journal" in mark:
                    side = (mark["journal"], mark["name"])
                    record, users, journal = _record_of(side[0], shared), self._sides[side], self._journals[side]
                    for _chunk in range(mark["chunks"]):
                        for user_key, row in json.loads(handle.readline()):
                            journal.add(user_key)
                            if row is None:
                                users.pop(user_key, None)
                            else:
                                users[user_key] = record(row)
                    continue
                if mark == {"end": True}:
                    self.base = (start, end, order, rows)
                    return
                raise ValueError("unexpected line %r" % line[:80])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self._error = "its users cannot be read (%s)" % exc

    def _wait(self, kind, name):
        self.start()
        self._thread.join()
        if self._error or (kind, name) not in self._journals:
            raise StateUnusable("the state file was edited or truncated: %s" % (self._error or "no users of %s" % (name or kind)))

    def get(self, kind, name):
        """The users of a side, {key: ADUser or EntraUser}; StateUnusable if the file could not be read whole."""
        self._wait(kind, name)
        return self._sides.pop((kind, name))

    def journal(self, kind, name):
        """The keys of a side's users changed since its base was written."""
        self._wait(kind, name)
        return self._journals[(kind, name)]

    def copy_base(self, handle):
        """Write the base of the parsed file to ``handle`` (text), a line at a time."""
        start, end, _order, _rows = self.base
        self._handle.seek(start)
        while self._handle.tell() < end:
            handle.write(self._handle.readline().decode("utf-8"))
        if self._handle.tell() != end:
            raise OSError("the state file's base ends inside a line")

    def close(self):
        if self._started:
            self._thread.join()
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _extends(base, sides):
    """True when the new state can keep the base of ``base`` (a parsed ``StateUsers``) and add a journal: the same sides,
    each read again incrementally (it knows its ``changes``), and the journal still short."""
    if base is None or base.base is None:
        return False
    _start, _end, order, rows = base.base
    if [(kind, name) for kind, name, _side in sides] != order or any(side is None or "changes" not in side for _k, _n, side in sides):
        return False
    return sum(len(side["changes"]) for _k, _n, side in sides) <= MAX_JOURNAL_SHARE * max(rows, 1)


def save(path, key, ad_states, entra_state, base=None):
    """Write the state atomically (mode 0600: it holds phone numbers): ``ad_states`` is {AD source name: side}; a side
    whose watermark is not valid (None) is left out. The users go a chunk per line, with the C encoder, never the whole
    file in memory; named tuples as JSON arrays.

    A side read incrementally carries ``changes``, {key: user or None} for every user changed since the base of ``base``
    (the ``StateUsers`` it was read from). When every side has them, the base is copied as it is and the changes are its
    journal; otherwise, or once the journal has grown long, every user is written in a new base."""
    sides = [("ad", name, side) for name, side in ad_states.items()] + [("entra", None, entra_state)]
    journal = _extends(base, sides)

    def write(handle):
        def chunked(mark, rows):
            chunks = range(0, len(rows), SAVE_CHUNK)
            handle.write(json.dumps(dict(mark, chunks=len(chunks))) + "\n")
            for start in chunks:
                handle.write(json.dumps(rows[start:start + SAVE_CHUNK], ensure_ascii=False) + "\n")

        header = {"kind": STATE_KIND, "version": STATE_VERSION, "written_at": _now().strftime("%Y-%m-%dT%H:%M:%SZ"), "scope": key,
                  "ad": {}, "entra": None}
        for kind, name, side in sides:
            watermark = None if side is None else {item: value for item, value in side.items() if item not in ("users", "changes")}
            if kind == "ad":
                header["ad"][name] = watermark
            else:
                header["entra"] = watermark
        handle.write(json.dumps(header) + "\n")
        if journal:
            base.copy_base(handle)
            for kind, name, side in sides:
                chunked({"journal": kind, "name": name}, sorted(side["changes"].items()))
        else:
            for kind, name, side in sides:
                if side is not None:
                    chunked({"side": kind, "name": name}, side["users"])
        handle.write('{"end": true}\n')
    _files.ensure_directory(path, "state file")
    return _files.atomic_write(path, write, what="state file")


# -- AD -----------------------------------------------------------------------------------

def _back_link_in(ldap_filter):
    """The first back-link attribute ``ldap_filter`` tests, or None."""
    for name in _FILTER_ATTRIBUTE.findall(ldap_filter or ""):
        if name.lower() in BACK_LINKS or name.lower().endswith("bl"):
            return name
    return None


def ad_watermark(ad):
    """{server, invocation_id, usn} of the domain controller ``ad`` is connected to (its RootDSE, read now)."""
    root = ad.read("", ["highestCommittedUSN", "dsServiceName"])
    if not root or not root.get("highestcommittedusn") or not root.get("dsservicename"):
        return None
    server = root["dsservicename"][0]
    settings = ad.read(server, ["invocationId"])
    invocation = _identity.guid_bytes_to_string(settings["invocationid"][0]) if settings and settings.get("invocationid") else None
    return {"server": server, "invocation_id": invocation, "usn": int(root["highestcommittedusn"][0])}


def _under(dn, bases):
    dn = dn.lower()
    return any(dn == base or dn.endswith("," + base) for base in bases)


def _containers(ad, bases):
    """{objectGUID: DN} of the OUs and containers of the scope (the bases themselves included)."""
    found = {}
    for base in bases:
        for entry in ad.paged_search(base, CONTAINER_FILTER, ["objectGUID"]):
            if entry.get("objectguid"):
                found[_identity.guid_bytes_to_string(entry["objectguid"][0])] = entry["dn"]
    return found


def _changed_since(ad, since):
    """{objectGUID bytes: (DN, is a container)} of every user, OU and container of the domain changed after ``since``,
    deleted ones included.

    One search on ``uSNChanged`` alone: a domain controller answers it from its index, while ANDed with the user filter
    it may scan every user (Samba: 0.8 s against 4 s at 100,000 users)."""
    changed = {}
    for entry in ad.paged_search(ad.base_dn, "(uSNChanged>=%d)" % (since + 1), ["objectGUID", "objectClass"], controls=[SHOW_DELETED]):
        if entry.get("objectguid"):
            classes = {value.lower() for value in entry.get("objectclass") or ()}
            if "user" in classes or classes & CONTAINER_CLASSES:  # groups, contacts and the rest cannot be in the report
                changed[bytes(entry["objectguid"][0])] = (entry["dn"], bool(classes & CONTAINER_CLASSES))
    return changed


def _changed_container(changed, bases, containers):
    """The DN of an OU or container of the scope (then or now) among ``changed``, or None."""
    lowered = [base.lower() for base in bases]
    for guid, (dn, container) in changed.items():
        if container:
            text = _identity.guid_bytes_to_string(guid)
            if text in containers or _under(dn, lowered):
                return containers.get(text) or dn
    return None


def _read_again(ad, bases, ldap_filter, guids, used, source, connections):
    """The users of the scope among ``guids`` (objectGUID bytes), read by their indexed GUIDs a batch per search, the
    searches spread over ``connections`` connections."""
    guids = sorted(guids)
    batches = ["(|%s)" % "".join("(objectGUID=%s)" % _ad.escape_filter_value(guid) for guid in guids[start:start + GUID_BATCH])
               for start in range(0, len(guids), GUID_BATCH)]
    return _drift.read_ad_users(ad, bases, ldap_filter, connections=connections, servers_used=used, source=source, parts=batches)


def _changes(users, journal, changed):
    """A side's journal after this run: the current user (None when gone) of each key changed since the base."""
    return {key: users.get(key) for key in journal | changed}


_OTHER_MOBILE = _drift.ADUser._fields.index("other_mobile")


def _record_of(kind, shared):
    """Row of the state file (a JSON array) -> a record of ``kind`` (ADUser, EntraUser), sharing text through ``shared``."""
    if kind != "ad":
        return shared.entra_record

    def record(row):
        row[_OTHER_MOBILE] = tuple(row[_OTHER_MOBILE])  # JSON has no tuples
        return shared.ad_record(row)
    return record


def read_ad(ad, params, bases, previous, source=None):
    """Users of the scope of the AD source ``source`` (``ad`` its client) -> (users, new state side or None, how
    ("full"/"incremental"), reason for a full read or None)."""
    ldap_filter = params.get("ldap_filter")
    start = ad_watermark(ad)
    reason = None
    if previous is None:
        reason = "no AD watermark in the state file"
    elif start is None:
        reason = "the domain controller's RootDSE has no highestCommittedUSN"
    elif previous["watermark"].get("server") != start["server"]:
        reason = "this run is on another domain controller (%s) than the last (%s): uSNChanged is per controller" % (
            start["server"], previous["watermark"].get("server"))
    elif previous["watermark"].get("invocation_id") != start["invocation_id"]:
        reason = "the domain controller's invocationId changed (restored from a backup)"
    elif _back_link_in(ldap_filter):
        reason = "ldap_filter uses %s, a back-link a uSNChanged watermark cannot follow" % _back_link_in(ldap_filter)
    containers = previous["watermark"].get("containers", {}) if previous else {}
    changed = None
    if reason is None:
        changed = _changed_since(ad, previous["watermark"]["usn"])
        moved = _changed_container(changed, bases, containers)
        if moved:
            reason = "the OU or container %s changed (a rename or move changes its users' DNs)" % moved
        elif len(changed) > MAX_CHANGED:
            reason = "%d objects changed, more than %d: a full read is as fast" % (len(changed), MAX_CHANGED)
    used = []
    if reason is None:
        changed_users = [guid for guid, (_dn, container) in changed.items() if not container]
        # Read while the state file's users are still being parsed: the domain controller works meanwhile.
        again = list(_read_again(ad, bases, ldap_filter, changed_users, used, source, params.get("ad_read_connections", 1)))
        try:
            users, journal = previous["users"](), previous["journal"]()
        except StateUnusable as exc:
            reason = str(exc)
    changes = None
    if reason is None:
        how = "incremental"
        # Changed anywhere (moved out, deleted, no longer matching the filter) and not read again: no longer in scope.
        changed_users = {_identity.guid_bytes_to_string(guid) for guid in changed_users}
        for guid in changed_users:
            users.pop(guid, None)
        for user in again:
            users[user.guid] = user
        changes = _changes(users, journal, changed_users)
        users = list(users.values())
    else:
        how = "full"
        users = list(_drift.read_ad_users(ad, bases, ldap_filter, connections=params.get("ad_read_connections", 1), servers_used=used,
                                          source=source))
        containers = _containers(ad, bases) if start else {}
    side = None
    # The watermark holds only if every read was on the controller it was taken from, without a reconnection.
    if start and all(host == ad.host and not reconnected for host, reconnected in used) and not ad.reconnections:
        side = {"server": start["server"], "invocation_id": start["invocation_id"], "usn": start["usn"], "containers": containers,
                "users": users}
        if changes is not None:
            side["changes"] = changes
    return users, side, how, reason


# -- Graph --------------------------------------------------------------------------------

def _raw_entra(user):
    """The Graph properties an ``EntraUser`` came from (``entra_user_from_item`` gives the same user back)."""
    return {"id": user.id, "userPrincipalName": user.upn, "mobilePhone": user.mobile, "onPremisesImmutableId": user.immutable_id,
            "onPremisesSecurityIdentifier": user.sid, "onPremisesUserPrincipalName": user.onprem_upn,
            "onPremisesDistinguishedName": user.dn}


def _delta_round(graph, url):
    """Every item of one delta round from ``url`` -> (items, the round's deltaLink)."""
    items = []
    # Only the changed properties where Graph honours it; the merge works either way.
    headers = {"Prefer": "return=minimal"}
    while True:
        page = graph.get(url, headers=headers) or {}
        items.extend(page.get("value") or ())
        if page.get("@odata.deltaLink"):
            return items, page["@odata.deltaLink"]
        url = page.get("@odata.nextLink")
        if not url:
            raise GraphError("Graph's users delta page had neither @odata.nextLink nor @odata.deltaLink. Run the task again with "
                             "full_read=true.")


def _apply_delta(graph, users, items):
    """Apply delta ``items`` to ``users`` ({id: EntraUser}, synced only); return the ids of the users it names."""
    fetch = []
    for item in items:
        user_id = item.get("id")
        if "@removed" in item:
            users.pop(user_id, None)
            continue
        known = users.get(user_id)
        if "onPremisesSyncEnabled" in item and item["onPremisesSyncEnabled"] is not True:
            users.pop(user_id, None)  # no longer synchronized (or never was)
        elif known is not None:
            raw = _raw_entra(known)
            raw.update((name, item[name]) for name in _drift.ENTRA_SELECT if name in item)
            users[user_id] = _drift.entra_user_from_item(raw)
        elif item.get("onPremisesSyncEnabled") is True:
            if all(name in item for name in _drift.ENTRA_SELECT):
                users[user_id] = _drift.entra_user_from_item(item)
            else:
                # Newly synchronized, but a minimal answer may leave out properties that did not change: read it whole.
                fetch.append(user_id)
        # else: a user not synchronized before and not now: not in the comparison.
    for user_id in fetch:
        item = graph.get("users/%s" % user_id, params={"$select": ",".join(DELTA_SELECT)})
        if item and item.get("onPremisesSyncEnabled") is True:
            users[user_id] = _drift.entra_user_from_item(item)
    return {item["id"] for item in items if item.get("id")}


def read_entra(graph, params, previous):
    """Synced users of the tenant -> (users, new state side, how, reason for a full read or None)."""
    reason = None if previous else "no Graph delta link in the state file"
    if previous:
        try:
            items, link = _delta_round(graph, previous["watermark"]["delta_link"])
        except GraphError as exc:
            if exc.code not in DELTA_EXPIRED_CODES and exc.status != 410:
                raise
            reason = "Graph's delta link expired (%s)" % exc.code
        else:
            try:
                users, journal = previous["users"](), previous["journal"]()
            except StateUnusable as exc:
                reason = str(exc)
            else:
                changes = _changes(users, journal, _apply_delta(graph, users, items))
                users = list(users.values())
                return users, {"delta_link": link, "users": users, "changes": changes}, "incremental", None
    # Sync from now, before the listing: what changes while it runs comes again in the next delta.
    latest = graph.get("users/delta", params={"$deltatoken": "latest", "$select": ",".join(DELTA_SELECT)}) or {}
    link = latest.get("@odata.deltaLink")
    users = list(_drift.read_entra_users(graph, params["graph_page_size"]))
    side = {"delta_link": link, "users": users} if link else None
    return users, side, "full", reason


# -- both ---------------------------------------------------------------------------------

def check_state_file(path):
    """Refuse a state path that is not a regular file (or a new name) before anything is read."""
    _files.writable_target(path, "state file")
    if os.path.isdir(path):
        raise InvalidInput("state_file %s is a directory: name a file, for example %s." % (path, os.path.join(path, "drift-state.json")))


def read_both(sources, graph, params, path, full_read=False):
    """Users of both directories, read incrementally where the state at ``path`` allows -> (ad_users, entra_users, info).

    ``sources``: a connected ``_ad_sources.ADSources``; each AD source has its own watermark. The state file is written
    again with the new watermarks. ``info`` says, per directory, whether it was read in full or incrementally ("mixed"
    when some AD sources were read in full; ``ad_sources`` says how each was), and why a full read was needed.
    """
    key = dict(scope_key(graph.tenant_id, sources.bases, params.get("ldap_filter")), ad_sources=[source.name for source in sources.sources])
    state, reason = (None, "full_read=true") if full_read else load(path, key)
    if state:
        state["users"].start()  # parsed while both directories are asked what changed
    previous = (state or {}).get("ad") or {}
    results, ad_results = {}, {}

    def ad_side(source):
        ad_results[source.name] = read_ad(source.client, params, source.bases, previous.get(source.name), source.name)
        yield None

    def entra_side():
        results["entra"] = read_entra(graph, params, state.get("entra") if state else None)
        yield None

    base = state["users"] if state else None
    try:
        _drift.read_concurrently(entra_side(), *[ad_side(source) for source in sources.sources])
        ad = [(source.name, ad_results[source.name]) for source in sources.sources]
        entra_users, entra_state, entra_how, entra_reason = results["entra"]
        save(path, key, {name: side for name, (_users, side, _how, _reason) in ad}, entra_state, base=base)
    finally:
        if base is not None:
            base.close()
    reasons = [text for text in (reason,) if text]
    if not reasons:
        reasons = ["%s: %s" % ("AD" if sources.single else "AD source %s" % name, ad_reason)
                   for name, (_users, _side, _how, ad_reason) in ad if ad_reason]
        reasons += ["Entra ID: %s" % entra_reason] if entra_reason else []
    per_source = {name: how for name, (_users, _side, how, _reason) in ad}
    ad_how = set(per_source.values()).pop() if len(set(per_source.values())) == 1 else "mixed"
    info = {"state_file": os.path.abspath(path), "ad": ad_how, "ad_sources": per_source, "entra": entra_how, "full_read_reasons": reasons}
    return _drift.join_lists([users for _name, (users, _s, _h, _r) in ad]), entra_users, info

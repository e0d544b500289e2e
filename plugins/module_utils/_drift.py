# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Mobile number drift between AD and Entra ID: streaming reads, pairing, classification, reports.

- ``scope_argument_spec()`` / ``check_scope(params)``: the options naming the users to read, and their check.
- ``read_ad_users(ad, bases, ldap_filter)`` / ``read_entra_users(client)``: generators of compact
  records (``ADUser`` / ``EntraUser`` named tuples), one directory page in memory at a time.
- ``read_concurrently(*iterables)``: drains them at the same time (one thread each); ``read_both(sources, graph,
  params)`` reads a scope that way, every AD source (``_ad_sources``) and Entra ID at once.
- ``pair_and_classify(ad_users, entra_users)``: pairs users by source anchor only (as the sync engines
  do), classifies each, and gives unpaired users SID/UPN hints; returns a ``Drift`` (counts and sorted rows).
- ``write_csv`` / ``write_json``: the report, written atomically with mode 0600 (phone numbers are
  personal data).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import csv
import datetime
import gc
import json
import operator
import threading

from ansible_collections.entraid.dirsync.plugins.module_utils._ad import USER_FILTER
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput
from ansible_collections.entraid.dirsync.plugins.module_utils._identity import _first
from ansible_collections.entraid.dirsync.plugins.module_utils import _ad, _files, _identity, _phone

# Only what the comparison and the report use (every entry carries its DN without asking); a backup also keeps the
# sAMAccountName. Each attribute less is less for the domain controller to send and for ldap3 to decode.
AD_ATTRIBUTES = ("objectGUID", "mS-DS-ConsistencyGuid", "objectSid", "userPrincipalName", "mobile", "otherMobile",
                 "userAccountControl")
BACKUP_AD_ATTRIBUTES = AD_ATTRIBUTES + ("sAMAccountName",)
DEFAULT_READ_CONNECTIONS = 2
ENTRA_SELECT = ("id", "userPrincipalName", "mobilePhone", "onPremisesImmutableId", "onPremisesSecurityIdentifier",
                "onPremisesUserPrincipalName", "onPremisesDistinguishedName")
ENTRA_FILTER = "onPremisesSyncEnabled eq true"
MAX_PAGE_SIZE = 999

# Keys that name a likely counterpart of an unpaired user (never a pairing).
HINT_KEYS = ("sid", "upn")
# Report order: what needs attention first.
CLASSES = ("value_differs", "format_differs", "only_in_ad", "only_in_entra", "ambiguous", "in_sync")
DIFFERING = CLASSES[:-1]

OTHER_MOBILE_NOTE = ("otherMobile (OtherMobileInAD) is read from AD only: no Microsoft Graph API returns Entra ID's alternate "
                     "mobile phones, so it is reported, not compared.")

# ADSyncTools' Compare-ADSyncToolsDirSyncOverrides columns first, so existing habits keep working.
COLUMNS = ("UserPrincipalName", "MobileInAD", "MobileInEntra", "OtherMobileInAD",
           "Class", "MatchedBy", "UserPrincipalNameInEntra", "DistinguishedName", "EnabledInAD",
           "ObjectGUID", "ImmutableId", "SID", "EntraId", "Note", "HintMatchedBy", "HintUserPrincipalName", "HintId", "ADSource")
# Separator of several otherMobile values in one CSV cell (phone numbers contain spaces and commas do not occur).
OTHER_MOBILE_SEPARATOR = ";"

_ACCOUNTDISABLE = 0x2

# source: the name of the AD source (_ad_sources) the user was read from.
ADUser = collections.namedtuple("ADUser", "dn upn sam guid anchor sid mobile other_mobile enabled source", defaults=(None,))
EntraUser = collections.namedtuple("EntraUser", "id upn onprem_upn mobile immutable_id sid dn")
Row = collections.namedtuple("Row", COLUMNS)
Drift = collections.namedtuple("Drift", "counts rows ad_users entra_users")


# -- reading ---------------------------------------------------------------------------

def user_filter(ldap_filter=None):
    """The LDAP filter for users, ANDed with ``ldap_filter`` (parentheses optional)."""
    extra = (ldap_filter or "").strip()
    if not extra:
        return USER_FILTER
    if not extra.startswith("("):
        extra = "(%s)" % extra
    depth = 0
    for char in extra:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0:
        raise InvalidInput("ldap_filter %r has unbalanced parentheses. Give an LDAP filter such as (department=Sales) or "
                           "(&(department=Sales)(!(title=Intern)))." % ldap_filter)
    # Checked here, before anything connects: ldap3 would only fail mid-search, with a misleading message.
    from ansible_collections.entraid.dirsync.plugins.module_utils._ad import check_ldap_filter  # pylint: disable=import-outside-toplevel
    return check_ldap_filter("(&%s%s)" % (USER_FILTER, extra), "ldap_filter")


def scope_argument_spec():
    """The options naming the users to read, shared by phone_backup, phone_compare and phone_reconcile.

    Documented by the ``entraid.dirsync.scope`` doc fragment.
    """
    return dict(
        search_bases=dict(type="list", elements="str"),
        ldap_filter=dict(type="str"),
        graph_page_size=dict(type="int", default=MAX_PAGE_SIZE),
        ad_read_connections=dict(type="int", default=DEFAULT_READ_CONNECTIONS),
    )


def check_scope(params):
    """Check the ``scope_argument_spec`` options before anything is read; return the non-blank search bases (those of the
    AD sources that give none of their own)."""
    bases = [base.strip() for base in params.get("search_bases") or [] if base and base.strip()]
    sources = params.get("ad_sources") or []
    without = [item.get("name") or str(index) for index, item in enumerate(sources)
               if not any(base and base.strip() for base in item.get("search_bases") or [])]
    if not bases and (without or not sources):
        raise InvalidInput("search_bases is empty%s: give the distinguished names of the OUs in the sync scope, for example "
                           "OU=Sync,DC=contoso,DC=com." % (" and the AD source(s) %s give none of their own" % ", ".join(without)
                                                           if sources else ""))
    user_filter(params.get("ldap_filter"))
    if not 1 <= params["graph_page_size"] <= MAX_PAGE_SIZE:
        raise InvalidInput("graph_page_size must be between 1 and %d, got %d: Graph returns at most %d users per page. Leave it "
                           "out for the maximum." % (MAX_PAGE_SIZE, params["graph_page_size"], MAX_PAGE_SIZE))
    if not 1 <= params.get("ad_read_connections", 1) <= _ad.MAX_READ_CONNECTIONS:
        raise InvalidInput("ad_read_connections must be between 1 and %d, got %d: it is how many searches a run sends the domain "
                           "controller at once. Leave it out for %d." % (_ad.MAX_READ_CONNECTIONS, params["ad_read_connections"],
                                                                         DEFAULT_READ_CONNECTIONS))
    return bases


def ad_user_from_entry(entry, source=None):
    """An ``ADUser`` from an ``ADClient.paged_search`` entry (lower-case keys, lists of values) of the AD source ``source``."""
    guid = _first(entry.get("objectguid"))
    sid = _first(entry.get("objectsid"))
    uac = _first(entry.get("useraccountcontrol"))
    # Phone values exactly as AD holds them (a backup must restore them byte for byte); comparisons clean them.
    others = tuple(entry.get("othermobile") or ())
    return ADUser(
        dn=entry["dn"],
        upn=_phone.clean(_first(entry.get("userprincipalname"))),
        sam=_first(entry.get("samaccountname")),
        guid=_identity.guid_bytes_to_string(guid) if guid else None,
        anchor=_identity.source_anchor(entry),
        sid=_identity.sid_bytes_to_string(sid) if sid else None,
        mobile=_first(entry.get("mobile")),
        other_mobile=others,
        enabled=None if uac is None else not int(uac) & _ACCOUNTDISABLE,
        source=source,
    )


def read_ad_users(ad, bases, ldap_filter=None, page_size=1000, connections=1, attributes=AD_ATTRIBUTES, servers_used=None,
                  source=None, parts=None):
    """Yield an ``ADUser`` for every user under ``bases`` (subtree) matching ``ldap_filter``, of the AD source ``source``.

    ``ad`` is a connected ``ADClient``. With ``connections`` above 1 the scope is read as several disjoint partitions
    (``_ad.partition_filters``) over that many connections at once, in no fixed order; ``parts``, filters ANDed with
    the search's, name the partitions instead. A user found under two overlapping bases (or, should a domain controller
    place it in two partitions, twice) is yielded once.
    """
    search_filter = user_filter(ldap_filter)
    if parts is None:
        parts = _ad.partition_filters(-(-connections // len(bases)) if connections > len(bases) else 1)
    searches = [(base, search_filter if part is None else "(&%s%s)" % (search_filter, part)) for base in bases for part in parts]
    seen = set()
    for entry in _ad.parallel_paged_search(ad, searches, attributes, connections=connections, page_size=page_size,
                                           servers_used=servers_used):
        user = ad_user_from_entry(entry, source)
        key = user.guid or user.dn.lower()
        if key in seen:
            continue
        seen.add(key)
        yield user


def entra_user_from_item(item):
    """An ``EntraUser`` from a Graph user object with the ``ENTRA_SELECT`` properties."""
    upn, onprem_upn = item.get("userPrincipalName"), _phone.clean(item.get("onPremisesUserPrincipalName"))
    return EntraUser(
        id=item.get("id"),
        upn=upn,
        onprem_upn=upn if onprem_upn == upn else onprem_upn,  # usually the same text: kept once
        mobile=item.get("mobilePhone"),
        immutable_id=_phone.clean(item.get("onPremisesImmutableId")),
        sid=_phone.clean(item.get("onPremisesSecurityIdentifier")),
        dn=item.get("onPremisesDistinguishedName"),
    )


def read_entra_users(client, page_size=MAX_PAGE_SIZE):
    """Yield an ``EntraUser`` for every synced user of the tenant (``onPremisesSyncEnabled eq true``).

    The filter needs no advanced query, so no ConsistencyLevel header; ``page_size`` is Graph's ``$top``
    (1-999, checked by ``check_scope``).
    """
    params = {"$filter": ENTRA_FILTER, "$select": ",".join(ENTRA_SELECT), "$top": str(page_size)}
    for item in client.iter_items("users", params=params):
        yield entra_user_from_item(item)


def read_both(sources, graph, params, attributes=AD_ATTRIBUTES):
    """Every user of the scope from both directories, read at the same time -> ``(ad_list, entra_list)``.

    ``sources``: a connected ``_ad_sources.ADSources`` (every source is read at once, each over ``ad_read_connections``
    connections); ``params``: the ``scope_argument_spec`` options.
    """
    shared = SharedText()
    lists = read_concurrently(
        shared.entra(read_entra_users(graph, params["graph_page_size"])),
        *[shared.ad(read_ad_users(source.client, source.bases, params.get("ldap_filter"), connections=params.get("ad_read_connections", 1),
                                  attributes=attributes, source=source.name)) for source in sources.sources])
    return join_lists(lists[1:]), lists[0]


class SharedText:
    """Lets the AD and Entra records of one user hold the very same text objects where their values are equal.

    A synchronized user's anchor, DN, UPN, SID and (in sync) mobile number are the same text on both sides: kept once,
    not twice, for nearly every user of a read. Whichever side is read first is remembered by anchor, and
    each record of the other side takes its counterpart's objects. Only objects are shared: every value stays what its
    side read.
    """

    # (ADUser field, EntraUser field) holding the same value for a synchronized user, as positions in the records.
    _FIELDS = (("anchor", "immutable_id"), ("dn", "dn"), ("upn", "onprem_upn"), ("sid", "sid"), ("mobile", "mobile"))
    _AD_POSITIONS = tuple((ADUser._fields.index(mine), EntraUser._fields.index(theirs)) for mine, theirs in _FIELDS)
    _ENTRA_POSITIONS = tuple((theirs, mine) for mine, theirs in _AD_POSITIONS)
    _AD_ANCHOR, _ENTRA_ANCHOR = _AD_POSITIONS[0]

    def __init__(self):
        self._ad_by_anchor, self._entra_by_anchor = {}, {}

    @staticmethod
    def _record(record_type, values, anchor, mine, others, positions):
        """The record of ``values`` (a list, changed in place), holding its counterpart's objects where they are equal."""
        other = others.get(anchor) if anchor else None
        if other is not None:
            for own, theirs in positions:
                value = values[own]
                if value is not None and value == other[theirs]:
                    values[own] = other[theirs]
        record = record_type._make(values)
        if anchor:
            mine.setdefault(anchor, record)
        return record

    def ad_record(self, values):
        """An ``ADUser`` of ``values`` (a list of its fields), sharing its Entra counterpart's text."""
        return self._record(ADUser, values, values[self._AD_ANCHOR], self._ad_by_anchor, self._entra_by_anchor, self._AD_POSITIONS)

    def entra_record(self, values):
        """An ``EntraUser`` of ``values`` (a list of its fields), sharing its AD counterpart's text."""
        return self._record(EntraUser, values, values[self._ENTRA_ANCHOR], self._entra_by_anchor, self._ad_by_anchor,
                            self._ENTRA_POSITIONS)

    @staticmethod
    def _passed(users, anchor_at, mine, others, record):
        for user in users:
            anchor = user[anchor_at]
            if anchor and anchor in others:
                user = record(list(user))
            elif anchor:
                mine.setdefault(anchor, user)
            yield user

    def ad(self, users):
        """Pass ``users`` (ADUser) through, sharing their Entra counterparts' text (a user without one passes as it is)."""
        return self._passed(users, self._AD_ANCHOR, self._ad_by_anchor, self._entra_by_anchor, self.ad_record)

    def entra(self, users):
        """Pass ``users`` (EntraUser) through, sharing their AD counterparts' text (a user without one passes as it is)."""
        return self._passed(users, self._ENTRA_ANCHOR, self._entra_by_anchor, self._ad_by_anchor, self.entra_record)


@contextlib.contextmanager
def collector_paused():
    """Pause Python's cyclic garbage collector while a run builds and classifies its records.

    Each record is a tuple the collector tracks, and every collection of its oldest generation walks all of them (two
    per user at 100,000 users) though none is ever part of a cycle: reference counting frees them. The collector is
    enabled again afterwards, as it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def join_lists(lists):
    """One list of the items of ``lists`` (the list itself when there is one)."""
    if len(lists) == 1:
        return lists[0]
    return [item for items in lists for item in items]


def read_concurrently(*iterables):
    """Drain the iterables at the same time, one thread each; return a list of each, in order.

    The reads wait on different servers, so they overlap. When one fails, the others stop at their next
    record and the first error is raised.
    """
    stop = threading.Event()

    def drain(records):
        out = []
        for record in records:
            if stop.is_set():
                break
            out.append(record)
        return out

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(iterables), thread_name_prefix="drift-read") as pool:
        futures = [pool.submit(drain, records) for records in iterables]
        done, _pending = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        failed = [future for future in futures if future in done and future.exception() is not None]
        if failed:
            stop.set()
            raise failed[0].exception()
        return tuple(future.result() for future in futures)


# -- pairing and classification ----------------------------------------------------------
#
# Entra Connect and Cloud Sync join an AD object to its cloud object by the source anchor alone
# (onPremisesImmutableId = base64 of mS-DS-ConsistencyGuid, else objectGUID). So does this module:
# SID and UPN never pair; for users the anchor leaves unpaired they only name a likely counterpart (hints).

def _lower(value):
    # The same object when it is already lower case: an index of 100,000 keys holds no second copy of each.
    return (value if value.islower() else value.lower()) if value else None


def _upper(value):
    return (value if value.isupper() else value.upper()) if value else None


class _Index(object):
    """value -> the items holding it, for the non-empty values. A value held once (nearly all are) is stored with its
    item alone, not in a list: an index of 100,000 users is then a third of the size."""

    __slots__ = ("_index",)

    def __init__(self):
        self._index = {}

    def add(self, value, item):
        if not value:
            return
        found = self._index.get(value)
        if found is None:
            self._index[value] = item
        elif isinstance(found, list):
            found.append(item)
        else:
            self._index[value] = [found, item]

    @staticmethod
    def _items(found, default):
        if found is None:
            return default
        return found if isinstance(found, list) else (found,)

    def get(self, value, default=()):
        return self._items(self._index.get(value), default)

    def pop(self, value, default=()):
        """The items of ``value``, no longer in the index."""
        return self._items(self._index.pop(value, None), default)

    def items(self):
        """Every item still in the index."""
        for found in self._index.values():
            yield from self._items(found, ())


def _entra_upns(user):
    """An Entra user's UPN keys: its on-premises UPN and, when Entra replaced an unverified suffix, its cloud UPN."""
    return {_lower(user.onprem_upn), _lower(user.upn)}


# The fields of each side that hold a hint key, and how a key is compared (SIDs upper case, UPNs lower case).
_SID_FIELDS, _AD_UPN_FIELDS, _ENTRA_UPN_FIELDS = ("sid",), ("upn",), ("onprem_upn", "upn")


def _matches(unpaired, keys_of, others, fields, normalise):
    """{number in ``unpaired``: positions in ``others`` whose ``fields``, ``normalise``d, hold one of its keys, in order}.

    One index of the unpaired users (few) and one pass per field over the others (many), the per-user work kept to an
    attribute read and a C string method: at 100,000 users these passes were most of the classification."""
    wanted = {}
    for number, user in enumerate(unpaired):
        for key in set(keys_of(user)):
            if key:
                wanted.setdefault(key, []).append(number)
    found = {}
    if not wanted:
        return found
    for field in fields:
        for position, value in enumerate(map(operator.attrgetter(field), others)):
            if value and normalise(value) in wanted:
                for number in wanted[normalise(value)]:
                    found.setdefault(number, []).append(position)
    if len(fields) > 1:  # one user found by two fields is one candidate
        found = {number: sorted(set(positions)) for number, positions in found.items()}
    return found


def _pair_class(ad, entra):
    """Class and note of a user paired by anchor."""
    if ad.mobile == entra.mobile:  # most pairs (often the very same text, see SharedText): equal once cleaned too
        return "in_sync", ""
    ad_mobile, entra_mobile = _phone.clean(ad.mobile), _phone.clean(entra.mobile)
    if ad_mobile == entra_mobile:
        return "in_sync", ""
    if _phone.same(ad_mobile, entra_mobile, ignore_format=True):
        return "format_differs", "The same number, written differently."
    if entra_mobile is None:
        return "value_differs", "Entra ID has no mobile number."
    if ad_mobile is None:
        return "value_differs", "AD has no mobile number."
    return "value_differs", ""


def _hint(keys_and_matches, describe):
    """(HintMatchedBy, HintUserPrincipalName, HintId) from [(key, [candidates])]; several candidates are joined by ';'."""
    found = {}
    for key, candidates in keys_and_matches:
        for candidate in candidates:
            found.setdefault(candidate, []).append(key)
    if not found:
        return "", None, None
    # (upn, id, keys) of each candidate, once; a missing UPN or id sorts as "" (None does not compare with text).
    ordered = sorted(tuple(value or "" for value in describe(candidate)) + (",".join(keys),) for candidate, keys in found.items())
    return (";".join(keys for _upn, _id, keys in ordered),
            ";".join(upn for upn, _id, _keys in ordered),
            ";".join(ident for _upn, ident, _keys in ordered))


def _first_hint_keys(hint):
    """The keys that matched the first candidate, in words: "sid and upn"."""
    return hint[0].split(";", 1)[0].replace(",", " and ")


def _row(cls, note, ad=None, entra=None, matched_by="", hint=("", None, None)):
    return Row(
        UserPrincipalName=(ad.upn if ad else None) or (entra.onprem_upn or entra.upn if entra else None) or "",
        MobileInAD=ad.mobile if ad else None,
        MobileInEntra=entra.mobile if entra else None,
        OtherMobileInAD=ad.other_mobile if ad else (),
        Class=cls,
        MatchedBy=matched_by,
        UserPrincipalNameInEntra=entra.upn if entra else None,
        DistinguishedName=(ad.dn if ad else entra.dn) or None,
        EnabledInAD=ad.enabled if ad else None,
        ObjectGUID=ad.guid if ad else None,
        # Entra's value when the user is there (the anchor it is joined by), else the one the sync would derive.
        ImmutableId=(entra.immutable_id if entra else None) or (ad.anchor if ad else None),
        SID=(ad.sid if ad else None) or (entra.sid if entra else None),
        EntraId=entra.id if entra else None,
        Note=note,
        HintMatchedBy=hint[0],
        HintUserPrincipalName=hint[1],
        HintId=hint[2],
        ADSource=ad.source if ad else None,
    )


def _sort_key(row):
    return (CLASSES.index(row.Class), (row.UserPrincipalName or "").lower(), (row.DistinguishedName or "").lower(), row.EntraId or "")


def pair_and_classify(ad_users, entra_users, include_in_sync=False):
    """Pair AD and Entra users by source anchor, as the sync engines do, and classify each; return a ``Drift``.

    - An AD user whose anchor is the ``onPremisesImmutableId`` of exactly one Entra user, and claimed by no other AD
      user, is paired with it: ``in_sync``, ``format_differs`` or ``value_differs``.
    - Every AD user claiming an anchor that another AD user (or two Entra users) also claims is ``ambiguous``; its row
      carries the Entra user of that anchor, so the cloud number is reported with it.
    - The rest are ``only_in_ad`` / ``only_in_entra``. For them SID and UPN are looked up on the other side: a match is
      a hint (``HintMatchedBy``, ``HintUserPrincipalName``, ``HintId``), never a pairing.

    ``in_sync`` users are counted, and get rows only with ``include_in_sync``.
    """
    counts = dict.fromkeys(CLASSES, 0)
    rows = []
    # Lean indexes (a 100,000-user run holds them next to both directories): Entra users by anchor, popped as AD users
    # claim them, so what is left is unpaired; AD anchors claimed twice, found by sorting (a list, not a set of all).
    entra_by_anchor = _Index()
    for entra in entra_users:
        entra_by_anchor.add(entra.immutable_id, entra)
    anchors = sorted(ad.anchor for ad in ad_users if ad.anchor)
    claimants_of = {anchor: [] for anchor, following in zip(anchors, anchors[1:]) if anchor == following}
    del anchors
    for ad in ad_users:
        if ad.anchor in claimants_of:
            claimants_of[ad.anchor].append(ad)
    cloud_of_claimed = {anchor: entra_by_anchor.pop(anchor) for anchor in claimants_of}
    unpaired_ad = []

    def emit(row):
        counts[row.Class] += 1
        if row.Class != "in_sync" or include_in_sync:
            rows.append(row)

    for ad in ad_users:
        claimants = claimants_of.get(ad.anchor, ()) if ad.anchor else ()
        cloud = cloud_of_claimed[ad.anchor] if claimants else entra_by_anchor.pop(ad.anchor)
        if len(claimants) > 1 or len(cloud) > 1:
            note = "Ambiguous: %d AD users claim the source anchor %s" % (max(len(claimants), 1), ad.anchor)
            sources = sorted({claimant.source for claimant in claimants if claimant.source})
            if len(sources) > 1:
                note += " (in the AD sources %s)" % " and ".join(sources)
            if len(cloud) > 1:
                note += " and %d Entra ID users carry it (%s)" % (len(cloud), ", ".join("%s (%s)" % (user.upn, user.id) for user in cloud))
            note += (". The sync engine cannot join them one to one: fix the anchors (mS-DS-ConsistencyGuid) in AD first; "
                     "until then the cloud number is not carried into AD.")
            emit(_row("ambiguous", note, ad=ad, entra=cloud[0] if len(cloud) == 1 else None))
        elif cloud:
            cls, note = _pair_class(ad, cloud[0])
            if cls == "in_sync" and not include_in_sync:
                counts[cls] += 1  # most users: counted without a row
            else:
                emit(_row(cls, note, ad=ad, entra=cloud[0], matched_by="anchor"))
        else:
            unpaired_ad.append(ad)

    left = {id(entra) for entra in entra_by_anchor.items()}  # not claimed by any AD user
    unpaired_entra = [entra for entra in entra_users if not entra.immutable_id or id(entra) in left]
    if unpaired_ad:
        sids = _matches(unpaired_ad, lambda user: (_upper(user.sid),), entra_users, _SID_FIELDS, str.upper)
        # Entra replaces an unverified UPN suffix, so the cloud UPN is a second key.
        upns = _matches(unpaired_ad, lambda user: (_lower(user.upn),), entra_users, _ENTRA_UPN_FIELDS, str.lower)
        for number, ad in enumerate(unpaired_ad):
            hint = _hint((("sid", sids.get(number, ())), ("upn", upns.get(number, ()))),
                         lambda p: (entra_users[p].upn, entra_users[p].id))
            note = "No synced Entra ID user has this source anchor: not synchronized yet, or outside the sync scope."
            if hint[0]:
                note += (" A cloud user with the same %s exists, under another anchor: the anchor may have changed after "
                         "the user was synchronized (the next full sync would create a new cloud user and delete the old one)."
                         % _first_hint_keys(hint))
            emit(_row("only_in_ad", note, ad=ad, hint=hint))
    if unpaired_entra:
        sids = _matches(unpaired_entra, lambda user: (_upper(user.sid),), ad_users, _SID_FIELDS, str.upper)
        upns = _matches(unpaired_entra, _entra_upns, ad_users, _AD_UPN_FIELDS, str.lower)
        for number, entra in enumerate(unpaired_entra):
            hint = _hint((("sid", sids.get(number, ())), ("upn", upns.get(number, ()))),
                         lambda p: (ad_users[p].upn, ad_users[p].guid))
            note = ("No AD user in the search bases has this source anchor: deleted, moved out of the sync scope, under a base "
                    "that was not searched, or its anchor changed. A full sync deletes it if its AD object is gone.")
            if hint[0]:
                note += " An AD user with the same %s exists: see the hint columns." % _first_hint_keys(hint)
            emit(_row("only_in_entra", note, entra=entra, hint=hint))

    rows.sort(key=_sort_key)
    return Drift(counts=counts, rows=rows, ad_users=len(ad_users), entra_users=len(entra_users))


# -- reports ------------------------------------------------------------------------------

def row_dict(row):
    """A report row as a dict (JSON, module results): otherMobile as a list, absent values as None."""
    data = row._asdict()
    data["OtherMobileInAD"] = list(row.OtherMobileInAD)
    return data


def _csv_value(name, value):
    if name == "OtherMobileInAD":
        return OTHER_MOBILE_SEPARATOR.join(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    return value


def write_csv(path, rows):
    """Write ``rows`` as CSV (header ``COLUMNS``); return the absolute path."""
    def write(handle):
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([_csv_value(name, value) for name, value in zip(COLUMNS, row)])
    return _files.atomic_write(path, write, what="report")


PAIRING = "source anchor (onPremisesImmutableId = base64 of mS-DS-ConsistencyGuid, else objectGUID), as the sync engines join users"


def report_header(drift, tenant_id, search_bases, ldap_filter, include_in_sync, now=None, ad_sources=None):
    """The JSON report's header: where (``ad_sources``: ``ADSources.describe()``), when, how, and the counts."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    notes = [OTHER_MOBILE_NOTE]
    if not include_in_sync:
        notes.append("Users in sync are counted but not listed (report_in_sync=false).")
    return {
        "tenant_id": tenant_id,
        "generated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "search_bases": list(search_bases),
        "ad_sources": ad_sources or [],
        "ldap_filter": ldap_filter,
        "pairing": PAIRING,
        "ad_users": drift.ad_users,
        "entra_users": drift.entra_users,
        "counts": dict(drift.counts),
        "notes": notes,
        "columns": list(COLUMNS),
    }


def write_json(path, header, rows):
    """Write one JSON object: the ``header`` keys, then ``rows`` (a list of row objects); return the absolute path.

    Rows are serialised one at a time, so a large report is never held in memory twice.
    """
    def write(handle):
        handle.write("{\n")
        for key, value in header.items():
            handle.write(" %s: %s,\n" % (json.dumps(key), json.dumps(value, ensure_ascii=False)))
        handle.write(' "rows": [')
        for position, row in enumerate(rows):
            handle.write("%s\n  %s" % ("," if position else "", json.dumps(row_dict(row), ensure_ascii=False)))
        handle.write("\n ]\n}\n")
    return _files.atomic_write(path, write, what="report")

# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Mobile number drift between AD and Entra ID: streaming reads, pairing, classification, reports.

- ``scope_argument_spec()`` / ``check_scope(params)``: the options naming the users to read, and their check.
- ``read_ad_users(ad, bases, ldap_filter)`` / ``read_entra_users(client)``: generators of compact
  records (``ADUser`` / ``EntraUser`` named tuples), one directory page in memory at a time.
- ``read_concurrently(ad_records, entra_records)``: drains both at the same time (one thread each).
- ``pair_and_classify(ad_users, entra_users, match_order)``: pairs users by source anchor, SID and
  UPN (in the order given) and classifies each; returns a ``Drift`` (counts and sorted rows).
- ``write_csv`` / ``write_json``: the report, written atomically with mode 0600 (phone numbers are
  personal data).
"""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import datetime
import json
import threading

from ansible_collections.entraid.dirsync.plugins.module_utils._ad import USER_FILTER
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput
from ansible_collections.entraid.dirsync.plugins.module_utils._identity import _first
from ansible_collections.entraid.dirsync.plugins.module_utils import _files, _identity, _phone

AD_ATTRIBUTES = ("objectGUID", "mS-DS-ConsistencyGuid", "objectSid", "userPrincipalName", "sAMAccountName",
                 "distinguishedName", "mobile", "otherMobile", "userAccountControl")
ENTRA_SELECT = ("id", "userPrincipalName", "mobilePhone", "onPremisesImmutableId", "onPremisesSecurityIdentifier",
                "onPremisesUserPrincipalName", "onPremisesDistinguishedName")
ENTRA_FILTER = "onPremisesSyncEnabled eq true"
MAX_PAGE_SIZE = 999

MATCH_KEYS = ("anchor", "sid", "upn")
# Report order: what needs attention first.
CLASSES = ("value_differs", "format_differs", "only_in_ad", "only_in_entra", "ambiguous", "in_sync")
DIFFERING = CLASSES[:-1]

OTHER_MOBILE_NOTE = ("otherMobile (OtherMobileInAD) is read from AD only: no Microsoft Graph API returns Entra ID's alternate "
                     "mobile phones, so it is reported, not compared.")

# ADSyncTools' Compare-ADSyncToolsDirSyncOverrides columns first, so existing habits keep working.
COLUMNS = ("UserPrincipalName", "MobileInAD", "MobileInEntra", "OtherMobileInAD",
           "Class", "MatchedBy", "UserPrincipalNameInEntra", "DistinguishedName", "EnabledInAD",
           "ObjectGUID", "ImmutableId", "SID", "EntraId", "Note")
# Separator of several otherMobile values in one CSV cell (phone numbers contain spaces and commas do not occur).
OTHER_MOBILE_SEPARATOR = ";"

_ACCOUNTDISABLE = 0x2

ADUser = collections.namedtuple("ADUser", "dn upn sam guid anchor sid mobile other_mobile enabled")
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
        search_bases=dict(type="list", elements="str", required=True),
        ldap_filter=dict(type="str"),
        graph_page_size=dict(type="int", default=MAX_PAGE_SIZE),
    )


def check_scope(params):
    """Check the ``scope_argument_spec`` options before anything is read; return the non-blank search bases."""
    bases = [base.strip() for base in params["search_bases"] if base and base.strip()]
    if not bases:
        raise InvalidInput("search_bases is empty: give the distinguished names of the OUs in the sync scope, "
                           "for example OU=Sync,DC=contoso,DC=com.")
    user_filter(params.get("ldap_filter"))
    if not 1 <= params["graph_page_size"] <= MAX_PAGE_SIZE:
        raise InvalidInput("graph_page_size must be between 1 and %d, got %d: Graph returns at most %d users per page. Leave it "
                           "out for the maximum." % (MAX_PAGE_SIZE, params["graph_page_size"], MAX_PAGE_SIZE))
    return bases


def ad_user_from_entry(entry):
    """An ``ADUser`` from an ``ADClient.paged_search`` entry (lower-case keys, lists of values)."""
    guid = _first(entry.get("objectguid"))
    sid = _first(entry.get("objectsid"))
    uac = _first(entry.get("useraccountcontrol"))
    others = tuple(value for value in (_phone.clean(item) for item in entry.get("othermobile") or ()) if value)
    return ADUser(
        dn=entry["dn"],
        upn=_phone.clean(_first(entry.get("userprincipalname"))),
        sam=_first(entry.get("samaccountname")),
        guid=_identity.guid_bytes_to_string(guid) if guid else None,
        anchor=_identity.source_anchor(entry),
        sid=_identity.sid_bytes_to_string(sid) if sid else None,
        mobile=_phone.clean(_first(entry.get("mobile"))),
        other_mobile=others,
        enabled=None if uac is None else not int(uac) & _ACCOUNTDISABLE,
    )


def read_ad_users(ad, bases, ldap_filter=None, page_size=1000):
    """Yield an ``ADUser`` for every user under ``bases`` (subtree) matching ``ldap_filter``.

    ``ad`` is a connected ``ADClient``. A user found under two overlapping bases is yielded once.
    """
    search_filter = user_filter(ldap_filter)
    seen = set()
    for base in bases:
        for entry in ad.paged_search(base, search_filter, AD_ATTRIBUTES, page_size=page_size):
            user = ad_user_from_entry(entry)
            key = user.guid or user.dn.lower()
            if key in seen:
                continue
            seen.add(key)
            yield user


def entra_user_from_item(item):
    """An ``EntraUser`` from a Graph user object with the ``ENTRA_SELECT`` properties."""
    return EntraUser(
        id=item.get("id"),
        upn=item.get("userPrincipalName"),
        onprem_upn=_phone.clean(item.get("onPremisesUserPrincipalName")),
        mobile=_phone.clean(item.get("mobilePhone")),
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


def read_concurrently(ad_records, entra_records):
    """Drain both iterables at the same time, one thread each; return ``(ad_list, entra_list)``.

    The reads wait on different servers, so they overlap. When one fails, the other stops at its next
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

    with concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="drift-read") as pool:
        futures = [pool.submit(drain, ad_records), pool.submit(drain, entra_records)]
        done, _pending = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        failed = [future for future in futures if future in done and future.exception() is not None]
        if failed:
            stop.set()
            raise failed[0].exception()
        return futures[0].result(), futures[1].result()


# -- pairing and classification ----------------------------------------------------------

class _Index:
    """Key value -> Entra user position. The rare values several users share are kept aside in ``shared``,
    so the common case stays one small int per value (100,000-user indexes stay small and fast)."""

    __slots__ = ("first", "shared")

    def __init__(self):
        self.first = {}
        self.shared = {}

    def add(self, value, position):
        if value is None:
            return
        existing = self.first.setdefault(value, position)
        if existing != position:
            positions = self.shared.setdefault(value, [existing])
            if position not in positions:
                positions.append(position)

    def positions(self, value):
        """Every position holding ``value``, as a tuple."""
        if value in self.shared:
            return tuple(self.shared[value])
        hit = self.first.get(value)
        return () if hit is None else (hit,)


def _lower(value):
    return value.lower() if value else None


def _upper(value):
    return value.upper() if value else None


# How each key is read from an ADUser; the Entra side is indexed the same way in _entra_indexes.
_AD_KEYS = {
    "anchor": lambda user: user.anchor,
    "sid": lambda user: _upper(user.sid),
    "upn": lambda user: _lower(user.upn),
}


def _entra_indexes(entra_users):
    indexes = {key: _Index() for key in MATCH_KEYS}
    for position, user in enumerate(entra_users):
        indexes["anchor"].add(user.immutable_id, position)
        indexes["sid"].add(_upper(user.sid), position)
        # Entra replaces an unverified UPN suffix (cloud UPN differs): the on-premises UPN is the one AD has.
        indexes["upn"].add(_lower(user.onprem_upn), position)
        indexes["upn"].add(_lower(user.upn), position)
    return indexes


def validate_match_order(match_order):
    """The match order as a tuple; InvalidInput for unknown or repeated keys or an empty list."""
    order = tuple(match_order or ())
    unknown = [key for key in order if key not in MATCH_KEYS]
    if not order or unknown or len(set(order)) != len(order):
        raise InvalidInput("match_order must list some of %s, each once, in the order to try them; got %r."
                           % (", ".join(MATCH_KEYS), list(match_order or ())))
    return order


def _describe(entra):
    return "%s (%s)" % (entra.upn, entra.id)


def _pair_class(ad, entra, key):
    """Class and note of a paired user."""
    ad_mobile, entra_mobile = _phone.clean(ad.mobile), _phone.clean(entra.mobile)
    note = ""
    if ad_mobile == entra_mobile:
        cls = "in_sync"
    elif _phone.same(ad_mobile, entra_mobile, ignore_format=True):
        cls, note = "format_differs", "The same number, written differently."
    else:
        cls = "value_differs"
        if entra_mobile is None:
            note = "Entra ID has no mobile number."
        elif ad_mobile is None:
            note = "AD has no mobile number."
    if key != "anchor" and entra.immutable_id and ad.anchor and entra.immutable_id != ad.anchor:
        note = (note + " " if note else "") + ("Entra ID's onPremisesImmutableId differs from AD's source anchor %s: "
                                               "Entra Connect will not match these two by anchor." % ad.anchor)
    return cls, note


def _row(cls, note, ad=None, entra=None, matched_by=""):
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
        # Entra's value when the user is there (it is what Entra Connect matches on), else the one it would derive.
        ImmutableId=(entra.immutable_id if entra else None) or (ad.anchor if ad else None),
        SID=(ad.sid if ad else None) or (entra.sid if entra else None),
        EntraId=entra.id if entra else None,
        Note=note,
    )


def _sort_key(row):
    return (CLASSES.index(row.Class), (row.UserPrincipalName or "").lower(), (row.DistinguishedName or "").lower(), row.EntraId or "")


def pair_and_classify(ad_users, entra_users, match_order=MATCH_KEYS, include_in_sync=False):
    """Pair AD and Entra users and classify each pair; return ``Drift(counts, rows, ad_users, entra_users)``.

    For each AD user every key in ``match_order`` is looked up. The user is ``ambiguous`` when one key
    matches several Entra users or two keys match different ones; otherwise it is paired with the Entra
    user its keys found (``MatchedBy`` is the first key in ``match_order`` that matched). When several AD
    users claim one Entra user, the claim by the earlier key wins and the others are ``ambiguous``.
    Entra users nobody claimed are ``only_in_entra``; those named by an ambiguous AD user appear in its
    row's note instead. ``in_sync`` users are counted, and get rows only with ``include_in_sync``.
    """
    order = validate_match_order(match_order)
    indexes = _entra_indexes(entra_users)
    plan = [(rank, key, _AD_KEYS[key], indexes[key]) for rank, key in enumerate(order)]
    counts = dict.fromkeys(CLASSES, 0)
    rows = []
    claims = {}  # entra position -> (rank, ad position, key) of the first AD user that claimed it
    contested = {}  # entra position -> every claim, for the rare Entra users claimed more than once
    mentioned = set()  # entra positions named in an ambiguous row (not reported on their own)

    def emit(row):
        counts[row.Class] += 1
        rows.append(row)

    for ad_position, ad in enumerate(ad_users):
        claim = None
        clear = True
        for rank, key, ad_key, index in plan:
            value = ad_key(ad)
            hit = index.first.get(value)
            if hit is None:
                continue
            if value in index.shared or (claim is not None and hit != claim[0]):
                clear = False
                break
            if claim is None:
                claim = (hit, rank, key)
        if not clear:
            hits = [(key, index.positions(ad_key(ad))) for _rank, key, ad_key, index in plan]
            notes = []
            for key, positions in hits:
                if positions:
                    mentioned.update(positions)
                    notes.append("%s matches %s" % (key, ", ".join(_describe(entra_users[position]) for position in positions)))
            emit(_row("ambiguous", "Ambiguous pairing: %s." % "; ".join(notes), ad=ad))
        elif claim is None:
            emit(_row("only_in_ad", "No synced Entra ID user matches: not synchronized yet, or outside the sync scope.", ad=ad))
        else:
            entra_position, rank, key = claim
            first = claims.setdefault(entra_position, (rank, ad_position, key))
            if first[1] != ad_position:
                contested.setdefault(entra_position, [first]).append((rank, ad_position, key))

    for entra_position, claim in claims.items():
        entra = entra_users[entra_position]
        if entra_position in contested:
            ranked = sorted(contested[entra_position])
            tied = ranked[1][0] == ranked[0][0]
            claim, losers = (None, ranked) if tied else (ranked[0], ranked[1:])
            for _rank, ad_position, key in losers:
                if tied:
                    note = "Ambiguous pairing: %s matches %s, as it does for other AD users." % (key, _describe(entra))
                else:
                    note = "Ambiguous pairing: %s matches %s, which %s matches by %s." % (
                        key, _describe(entra), ad_users[claim[1]].dn, claim[2])
                emit(_row("ambiguous", note, ad=ad_users[ad_position]))
        if claim is None:
            continue
        _rank, ad_position, key = claim
        ad = ad_users[ad_position]
        cls, note = _pair_class(ad, entra, key)
        if cls == "in_sync" and not include_in_sync:
            counts[cls] += 1
        else:
            emit(_row(cls, note, ad=ad, entra=entra, matched_by=key))

    for entra_position, entra in enumerate(entra_users):
        if entra_position not in claims and entra_position not in mentioned:
            emit(_row("only_in_entra", "No AD user in the search bases matches: deleted, moved out of the sync scope, "
                                       "or under a base that was not searched.", entra=entra))

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


def report_header(drift, tenant_id, search_bases, ldap_filter, match_order, include_in_sync, now=None):
    """The JSON report's header: where, when, how, and the counts."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    notes = [OTHER_MOBILE_NOTE]
    if not include_in_sync:
        notes.append("Users in sync are counted but not listed (report_in_sync=false).")
    return {
        "tenant_id": tenant_id,
        "generated_at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "search_bases": list(search_bases),
        "ldap_filter": ldap_filter,
        "match_order": list(match_order),
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

# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The reconcile policy engine (the logic of ``entraid.dirsync.phone_reconcile``).

- ``plan(rows, policy, excluded_guids)``: which paired users get the cloud number in AD, which the policy skips.
- ``check_backup(...)`` / ``check_backup_keeps(...)``: refuse unless the backup holds what the run changes or puts at risk.
- ``group_members(ad, groups)``: users of the excluded groups (nested membership included).
- ``write_cloud_numbers(ad, changes, rows)``: the writes, one result per user.
- ``account(rows, changes, skipped, results, ...)``: where every cloud number that the full sync would overwrite or
  delete ends: written into AD, skipped by the policy, or unresolved (and then acknowledged or not).
"""

from __future__ import annotations

import collections

from ansible_collections.entraid.dirsync.plugins.module_utils import _backup, _identity, _phone, _user_phone
from ansible_collections.entraid.dirsync.plugins.module_utils._ad import USER_FILTER, escape_filter_value
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput

SKIP_REASONS = ("excluded_upn", "excluded_ou", "excluded_group", "cloud_empty", "format_only")
# LDAP_MATCHING_RULE_IN_CHAIN: memberOf through nested groups.
_IN_CHAIN = "1.2.840.113556.1.4.1941"

Policy = collections.namedtuple("Policy", "clear_when_cloud_empty include_format_differences exclude_upns exclude_ous")


def make_policy(params):
    return Policy(
        clear_when_cloud_empty=params["clear_when_cloud_empty"],
        include_format_differences=params["include_format_differences"],
        exclude_upns=frozenset(upn.strip().lower() for upn in params["exclude_upns"] if upn and upn.strip()),
        exclude_ous=tuple(ou for ou in params["exclude_ous"] if ou and ou.strip()),
    )


def _skip_reason(row, policy, excluded_guids):
    upns = {(row.UserPrincipalName or "").lower(), (row.UserPrincipalNameInEntra or "").lower()} - {""}
    if upns & policy.exclude_upns:
        return "excluded_upn"
    if _identity.under_any(row.DistinguishedName, policy.exclude_ous):
        return "excluded_ou"
    if (row.ObjectGUID or "").lower() in excluded_guids:
        return "excluded_group"
    if row.MobileInEntra is None and not policy.clear_when_cloud_empty:
        return "cloud_empty"
    if row.Class == "format_differs" and not policy.include_format_differences:
        return "format_only"
    return None


def plan(rows, policy, excluded_guids=frozenset()):
    """Which paired users get the cloud value in AD -> (changes, skipped).

    ``rows`` are ``_drift`` rows; only ``value_differs`` and ``format_differs`` rows (paired users) are considered.
    Each change is ``{object_guid, dn, user_principal_name, mobile_in_ad, mobile_in_entra}``; each skipped user the same
    with ``reason`` (one of SKIP_REASONS; exclusions are checked first).
    """
    changes, skipped = [], []
    for row in rows:
        if row.Class not in ("value_differs", "format_differs"):
            continue
        item = {"object_guid": row.ObjectGUID, "dn": row.DistinguishedName, "user_principal_name": row.UserPrincipalName,
                "mobile_in_ad": row.MobileInAD, "mobile_in_entra": row.MobileInEntra}
        reason = _skip_reason(row, policy, excluded_guids)
        if reason:
            item["reason"] = reason
            skipped.append(item)
        else:
            changes.append(item)
    return changes, skipped


def check_backup(changes, backup_users, backup_path, search_bases=None):
    """Refuse unless the backup holds every user to change with the AD number the user has now, and (``search_bases``:
    the backup's) every such user is still under the backup's search bases: nothing is written where it cannot restore."""
    missing, stale, outside = [], [], []
    for change in changes:
        if search_bases and not _identity.under_any(change["dn"], search_bases):
            outside.append(change["dn"])
        record = backup_users.get((change["object_guid"] or "").lower())
        label = "%s (%s)" % (change["user_principal_name"] or change["dn"], change["object_guid"])
        if record is None:
            missing.append(label)
        elif record["mobile"] != change["mobile_in_ad"] and _phone.clean(record["mobile"]) != _phone.clean(change["mobile_in_ad"]):
            stale.append("%s: %r in the backup, %r in AD now" % (label, record["mobile"], change["mobile_in_ad"]))
    if not missing and not stale and not outside:
        return
    problems = []
    if outside:
        problems.append("%d user(s) are outside its search bases (%s): %s"
                        % (len(outside), "; ".join(search_bases), _user_phone.listed(outside)))
    if missing:
        problems.append("%d user(s) are not in it: %s" % (len(missing), _user_phone.listed(missing)))
    if stale:
        problems.append("%d user(s) have another mobile number in AD than in the backup: %s" % (len(stale), _user_phone.listed(stale)))
    raise _backup.BackupRefused(
        "The backup %s does not cover what this run would change: %s. Take a new backup of the same search bases right before "
        "reconciling (the entraid.dirsync.backup role or phone_backup). Nothing was changed." % (backup_path, "; ".join(problems)),
        backup_path=backup_path, missing=missing, stale=stale, outside=outside)


def _group_dn(ad, group):
    if "=" in group:
        entry = ad.read(group.strip(), ["distinguishedName"], ldap_filter="(objectClass=group)")
        return entry and entry["dn"]
    value = escape_filter_value(group.strip())
    entries = list(ad.paged_search(None, "(&(objectClass=group)(|(sAMAccountName=%s)(cn=%s)))" % (value, value), ["distinguishedName"]))
    if len(entries) > 1:
        raise InvalidInput("exclude_groups: %r names %d groups (%s); give the distinguished name. Nothing was changed."
                           % (group, len(entries), "; ".join(sorted(entry["dn"] for entry in entries))))
    return entries[0]["dn"] if entries else None


def group_members(ad, groups):
    """objectGUIDs (lower case) of the users in ``groups``, nested membership included."""
    members = set()
    unknown = []
    for group in groups:
        if not group or not group.strip():
            continue
        dn = _group_dn(ad, group)
        if not dn:
            unknown.append(group)
            continue
        ldap_filter = "(&%s(memberOf:%s:=%s))" % (USER_FILTER, _IN_CHAIN, escape_filter_value(dn))
        for entry in ad.paged_search(None, ldap_filter, ["objectGUID"]):
            for guid in entry.get("objectguid") or ():
                members.add(_identity.guid_bytes_to_string(guid))
    if unknown:
        raise InvalidInput("exclude_groups: no AD group %s. Give each group's distinguished name, sAMAccountName or common name. "
                           "Nothing was changed." % ", ".join(repr(group) for group in unknown))
    return members


def _ad_entry(row):
    """The AD side of a comparison row, shaped as ADClient returns an entry with _user_phone.AD_ATTRIBUTES."""
    return {"dn": row.DistinguishedName, "mobile": [row.MobileInAD] if row.MobileInAD else [], "othermobile": list(row.OtherMobileInAD)}


def write_cloud_numbers(ad, changes, rows, check_mode=False):
    """Write each change's cloud number into AD mobile -> one user_phone result per change, in order.

    ``rows`` are the comparison's rows: each user is planned from the values the comparison read (those the backup was
    checked against), so no user is looked up again. A cloud number AD cannot take (too long, control characters) is
    that user's error; the others are still written.
    """
    by_guid = {row.ObjectGUID: row for row in rows if row.ObjectGUID}
    results = [None] * len(changes)
    specs, entries, positions = [], {}, []
    for position, change in enumerate(changes):
        row = by_guid[change["object_guid"]]
        where = "the Entra ID user %s (%s)" % (row.UserPrincipalNameInEntra, row.EntraId)
        try:
            mobile = _phone.validate(change["mobile_in_entra"], "mobilePhone of %s" % where)
        except InvalidInput as error:
            results[position] = {"identity": change["object_guid"], "dn": change["dn"], "before": None, "after": None, "changed": False,
                                 "error": "%s This user's AD number was kept. Set the right number in AD yourself "
                                          "(entraid.dirsync.user_phone, directory: ad) and leave the user out with exclude_upns; "
                                          "the full synchronization then gives Entra ID the AD number." % error}
            continue
        specs.append(_user_phone.UserSpec(change["object_guid"], manage_mobile=True, mobile=mobile, where=where))
        entries[change["object_guid"]] = _ad_entry(row)
        positions.append(position)
    for position, result in zip(positions, _user_phone.apply_ad(ad, specs, check_mode=check_mode, resolved=entries)):
        results[position] = result
    for change, result in zip(changes, results):
        result["user_principal_name"] = change["user_principal_name"]
    return results


# -- accounting: every cloud number the full sync would overwrite or delete ---------------------------

# Classes whose cloud number the full sync changes: a paired user gets AD's value; a cloud user without an AD object in
# scope is deleted; an ambiguous anchor cannot be joined one to one.
AT_RISK_CLASSES = ("value_differs", "format_differs", "only_in_entra", "ambiguous")
UNRESOLVED_REASONS = ("ambiguous", "only_in_entra", "hinted", "write_failed")


def numbers_at_risk(rows):
    """One row per cloud user (first row wins for an ambiguous anchor) whose cloud number the full sync would change."""
    seen = set()
    for row in rows:
        if row.Class not in AT_RISK_CLASSES or not row.EntraId or _phone.clean(row.MobileInEntra) is None:
            continue
        if row.EntraId in seen:
            continue
        seen.add(row.EntraId)
        yield row


def check_backup_keeps(rows, backup_entra, backup_path):
    """Refuse unless the backup holds every cloud number at risk, as Entra ID has it now (the backup is where a number
    not carried into AD survives)."""
    by_id = {record.get("id"): record for record in backup_entra}
    missing = []
    for row in numbers_at_risk(rows):
        record = by_id.get(row.EntraId)
        if record is None or _phone.clean(record.get("mobile")) != _phone.clean(row.MobileInEntra):
            missing.append("%s (%s): %r in Entra ID, %r in the backup" % (
                row.UserPrincipalNameInEntra or row.UserPrincipalName, row.EntraId, row.MobileInEntra,
                None if record is None else record.get("mobile")))
    if missing:
        raise _backup.BackupRefused(
            "The backup %s does not keep every cloud number this run puts at risk: %d user(s): %s. Take a new backup right "
            "before reconciling (the entraid.dirsync.backup role or phone_backup). Nothing was changed."
            % (backup_path, len(missing), _user_phone.listed(missing)), backup_path=backup_path, missing=missing)


def _acknowledged(row, acknowledged):
    names = {(row.UserPrincipalName or "").lower(), (row.UserPrincipalNameInEntra or "").lower(), (row.EntraId or "").lower()}
    return bool((names - {""}) & acknowledged)


def account(rows, changes, skipped, results, acknowledge=(), accept_all=False):
    """Where each cloud number at risk ends -> ``{"counts": {...}, "unresolved": [...], "not_carried": [...]}``.

    Every number at risk is in exactly one of: written (this run wrote it into AD, or would in check mode), skipped (an
    explicit policy: exclusions, format only) or unresolved (ambiguous, only in Entra ID, hinted, or its write failed).
    Unresolved users named in ``acknowledge`` (UPN or Entra object id, any case), or all with ``accept_all``, are
    acknowledged: the admin knows the full sync will change their cloud number, which only the backup keeps.
    """
    acknowledged = {name.strip().lower() for name in acknowledge or () if name and name.strip()}
    outcome = {}
    for change, result in zip(changes, results):
        outcome[change["object_guid"]] = ("unresolved", "write_failed") if result["error"] else ("written", None)
    for item in skipped:
        outcome[item["object_guid"]] = ("skipped", item["reason"])
    counts = dict.fromkeys(("at_risk", "written", "skipped", "unresolved", "acknowledged", "unacknowledged"), 0)
    unresolved, not_carried = [], []
    for row in numbers_at_risk(rows):
        counts["at_risk"] += 1
        if row.Class in ("value_differs", "format_differs"):
            where, reason = outcome.get(row.ObjectGUID, ("unresolved", "write_failed"))
        elif row.Class == "only_in_entra":
            where, reason = "unresolved", "hinted" if row.HintMatchedBy else "only_in_entra"
        else:
            where, reason = "unresolved", "ambiguous"
        counts[where] += 1
        if where == "written":
            continue
        item = {"entra_id": row.EntraId, "user_principal_name": row.UserPrincipalNameInEntra or row.UserPrincipalName,
                "mobile_in_entra": row.MobileInEntra, "mobile_in_ad": row.MobileInAD, "class": row.Class, "outcome": where,
                "reason": reason, "dn": row.DistinguishedName, "hint": row.HintUserPrincipalName or None}
        not_carried.append(item)
        if where == "unresolved":
            item["acknowledged"] = accept_all or _acknowledged(row, acknowledged)
            counts["acknowledged" if item["acknowledged"] else "unacknowledged"] += 1
            unresolved.append(item)
    return {"counts": counts, "unresolved": unresolved, "not_carried": not_carried}

# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Plan and apply a user's phone numbers in AD or Entra ID (the logic of ``entraid.dirsync.user_phone``).

Kept out of the module so that other modules and roles (reconcile, rollback) can reuse it:

- ``parse_specs(entries, directory)``: validate every per-user entry before anything is read or written.
- ``plan_ad`` / ``plan_entra``: what a user's numbers should become, and the change that gets them there.
- ``apply_ad(ad, specs, ...)`` / ``apply_entra(graph, specs, ...)``: resolve, plan and (unless check mode)
  write each user, capturing each user's error without stopping the others.
- ``summarise(results, ...)``: the module result (``users``, ``counts``, ``diff``, ``changed``).

Snapshots (``before``/``after``) have one shape per directory: AD ``{"mobile", "other_mobile"}``,
Entra ID ``{"mobile"}`` (Graph has no API for alternate mobile phones).
"""

from __future__ import annotations

import json
import uuid
from urllib.parse import quote

from ansible_collections.entraid.dirsync.plugins.module_utils import _backup, _drift, _identity, _phone
from ansible_collections.entraid.dirsync.plugins.module_utils._ad import ADD, DELETE, REPLACE, USER_FILTER
from ansible_collections.entraid.dirsync.plugins.module_utils._ad import escape_filter_value as _escape
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import (
    DirsyncError,
    GraphError,
    IdentityNotFound,
    InvalidInput,
)
from ansible_collections.entraid.dirsync.plugins.module_utils._identity import _first

DIRECTORIES = ("ad", "entra")
STATES = ("present", "absent")
SPEC_KEYS = ("identity", "mobile", "other_mobile", "state")
OTHER_MOBILE_KEYS = ("add", "remove", "set")

AD_ATTRIBUTES = ("mobile", "otherMobile", "userPrincipalName", "sAMAccountName", "objectGUID")
ENTRA_SELECT = "id,userPrincipalName,mobilePhone,onPremisesSyncEnabled"

# How many items (input errors, users) one failure message lists before summarising the rest.
_MAX_LISTED = 20

# What ADClient.modify tells the user when the bind account may not write the phone attributes.
AD_WRITE_RIGHTS_HINT = (
    "Grant it write permission on the mobile and otherMobile attributes of the users in scope (see docs/ad-connection.md: "
    "dsacls <OU> /I:S /G \"<account>:WP;mobile;user\" and the same for otherMobile). Members of protected groups "
    "(adminCount=1) do not inherit it: change those by hand.")

NO_ALTERNATE_API = (
    "other_mobile cannot be managed with directory=entra: Microsoft Graph has no API to read or write a user's "
    "alternate mobile phones (Microsoft removed it). Manage otherMobile in AD (directory: ad); Entra Connect "
    "synchronises it from there.")


class UserSpec:
    """One validated per-user entry.

    ``mobile`` is only meaningful when ``manage_mobile`` is true (None then means "clear it");
    ``other_mobile`` is None (leave alone) or a dict with ``add``/``remove``/``set`` lists or None.
    ``exact`` (restores): ``mobile`` and ``other_mobile["set"]`` are written byte for byte as given and compared exactly;
    they are not validated, because they are what the directory held before.
    """

    __slots__ = ("identity", "manage_mobile", "mobile", "other_mobile", "state", "where", "exact")

    def __init__(self, identity, manage_mobile=False, mobile=None, other_mobile=None, state="present", where="identity",
                 exact=False):
        self.exact = exact
        self.identity = identity
        self.manage_mobile = manage_mobile
        self.mobile = mobile
        self.other_mobile = other_mobile
        self.state = state
        self.where = where


def listed(items, separator=", "):
    """The first items joined for a message, then how many more there are."""
    text = separator.join(items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        text += "%s... and %d more" % (separator, len(items) - _MAX_LISTED)
    return text


def _parse_values(value, field):
    if value is None:
        return None
    if not isinstance(value, list):
        raise InvalidInput("%s must be a list of phone numbers (strings), got %s. Nothing was changed."
                           % (field, type(value).__name__), field=field)
    return [_phone.validate(item, "%s[%d]" % (field, index)) for index, item in enumerate(value)]


def _parse_other_mobile(value, field):
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput("%s must be a dictionary with add, remove and/or set (lists of phone numbers), got %s. Nothing was "
                           "changed." % (field, type(value).__name__), field=field)
    unknown = sorted(set(value) - set(OTHER_MOBILE_KEYS))
    if unknown:
        raise InvalidInput("%s: unknown key(s) %s; use add, remove and/or set. Nothing was changed."
                           % (field, ", ".join(map(str, unknown))), field=field)
    parsed = {key: _parse_values(value.get(key), "%s.%s" % (field, key)) for key in OTHER_MOBILE_KEYS}
    if parsed["set"] is None:
        # Fails early (before any connection) when a number is in both add and remove.
        _phone.plan_multi([], add=parsed["add"], remove=parsed["remove"])
    return parsed


def parse_spec(entry, directory, where="users"):
    """Validate one entry (a dict with SPEC_KEYS) -> UserSpec; InvalidInput says what is wrong.

    A ``mobile`` key that is present with null or "" clears the number; an absent key leaves it alone.
    """
    if not isinstance(entry, dict):
        raise InvalidInput("%s must be a dictionary with identity and mobile/other_mobile/state, got %s. Nothing was changed."
                           % (where, type(entry).__name__))
    unknown = sorted(str(key) for key in set(entry) - set(SPEC_KEYS))
    if unknown:
        raise InvalidInput("%s: unknown key(s) %s; allowed are %s. Nothing was changed."
                           % (where, ", ".join(unknown), ", ".join(SPEC_KEYS)))
    identity = entry.get("identity")
    if not isinstance(identity, str) or not identity.strip():
        raise InvalidInput("%s: identity must name the user (a non-empty string: %s), got %r. Nothing was changed."
                           % (where, "UPN, sAMAccountName, distinguished name, objectGUID or SID" if directory == "ad"
                              else "userPrincipalName or object id", identity))
    if directory == "entra" and "@" not in identity and _identity.identity_kind(identity) != "guid":
        raise InvalidInput("%s: %r is neither a userPrincipalName nor an object id; with directory=entra name users by one of "
                           "those (sAMAccountName, DN and SID are AD identities: use directory: ad). Nothing was changed."
                           % (where, identity))
    state = entry.get("state") or "present"
    if state not in STATES:
        raise InvalidInput("%s: state must be present or absent, got %r. Nothing was changed." % (where, state))
    spec = UserSpec(identity, where=where, state=state)
    if "mobile" in entry:
        spec.manage_mobile = True
        spec.mobile = _phone.validate(entry["mobile"], "%s.mobile" % where)
    spec.other_mobile = _parse_other_mobile(entry.get("other_mobile"), "%s.other_mobile" % where)
    if directory == "entra" and spec.other_mobile is not None:
        raise InvalidInput("%s: %s" % (where, NO_ALTERNATE_API))
    if state == "absent" and (spec.manage_mobile or spec.other_mobile is not None):
        raise InvalidInput("%s: state=absent clears the numbers; do not give mobile or other_mobile with it. Nothing was changed."
                           % where)
    return spec


def parse_specs(entries, directory, where="users"):
    """Validate every entry; raise one InvalidInput naming every bad entry (so nothing is written)."""
    specs, errors = [], []
    for index, entry in enumerate(entries):
        try:
            specs.append(parse_spec(entry, directory, "%s[%d]" % (where, index)))
        except InvalidInput as error:
            errors.append(str(error))
    if errors:
        raise InvalidInput("%d of %d user entries are invalid; nothing was changed. Fix them and run again: %s"
                           % (len(errors), len(entries), listed(errors, " | ")), errors=errors)
    return specs


def single_entry(params):
    """The single-user form's module parameters as an entry for parse_spec.

    Ansible cannot tell ``mobile: null`` from an omitted option, so in this form only "" clears.
    """
    entry = {"identity": params.get("identity"), "state": params.get("state")}
    if params.get("mobile") is not None:
        entry["mobile"] = params["mobile"]
    if params.get("other_mobile") is not None:
        entry["other_mobile"] = {key: value for key, value in params["other_mobile"].items() if value is not None}
    return entry


# -- AD ---------------------------------------------------------------------------------

def snapshot_ad(entry):
    """The phone numbers of an AD entry (as _ad returns it)."""
    return {"mobile": _phone.clean(_first(entry.get("mobile"))),
            "other_mobile": [value for value in (_phone.clean(v) for v in entry.get("othermobile") or ()) if value is not None]}


def _plan_ad_exact(spec, entry):
    """A restore: both attributes become exactly what ``spec`` holds (values compared byte for byte)."""
    current_mobile = _first(entry.get("mobile")) or None
    current_other = list(entry.get("othermobile") or ())
    wanted_mobile = spec.mobile or None
    wanted_other = [value for value in spec.other_mobile["set"] if value]
    changes = {}
    if current_mobile != wanted_mobile:
        changes["mobile"] = (REPLACE, [wanted_mobile]) if wanted_mobile is not None else (DELETE, [])
    if set(current_other) != set(wanted_other):
        changes["otherMobile"] = (REPLACE, wanted_other) if wanted_other else (DELETE, [])
    before = {"mobile": current_mobile, "other_mobile": current_other}
    after = {"mobile": wanted_mobile, "other_mobile": wanted_other if changes.get("otherMobile") else current_other}
    return before, after, changes


def plan_ad(spec, entry, ignore_format=False):
    """-> (before, after, changes for ADClient.modify); ``changes`` is empty when nothing differs."""
    if spec.exact:
        return _plan_ad_exact(spec, entry)
    before = snapshot_ad(entry)
    current_mobile = _first(entry.get("mobile"))
    current_other = list(entry.get("othermobile") or ())
    after = {"mobile": before["mobile"], "other_mobile": list(before["other_mobile"])}
    changes = {}

    if spec.state == "absent":
        wanted_mobile, manage_mobile, other = None, True, {"set": []}
    else:
        wanted_mobile, manage_mobile, other = spec.mobile, spec.manage_mobile, spec.other_mobile

    if manage_mobile and not _phone.same(current_mobile, wanted_mobile, ignore_format):
        after["mobile"] = wanted_mobile
        changes["mobile"] = (REPLACE, [wanted_mobile]) if wanted_mobile is not None else (DELETE, [])

    if other is not None:
        wanted = _phone.plan_multi(current_other, add=other.get("add"), remove=other.get("remove"), set=other.get("set"),
                                   ignore_format=ignore_format)
        # plan_multi keeps current spellings, so an exact comparison finds only real changes.
        if not _phone.same_set(current_other, wanted):
            after["other_mobile"] = wanted
            if not wanted:
                changes["otherMobile"] = (DELETE, [])
            elif other.get("set") is not None:
                changes["otherMobile"] = (REPLACE, wanted)
            else:
                # Only the named values: a concurrent change to other values is kept.
                wanted_set, current_set = set(wanted), set(current_other)
                operations = []
                removed = [value for value in current_other if value not in wanted_set]
                added = [value for value in wanted if value not in current_set]
                if removed:
                    operations.append((DELETE, removed))
                if added:
                    operations.append((ADD, added))
                changes["otherMobile"] = operations
    return before, after, changes


def apply_ad(ad, specs, ignore_format=False, check_mode=False, resolved=None):
    """Resolve all users with few searches, then plan and (unless check mode) write each one.

    ``resolved`` skips the lookup: ``{identity: entry or DirsyncError}`` for every spec, as ``ADClient.resolve_users``
    returns it with ``AD_ATTRIBUTES`` (a caller that has already read the users plans from what it read).
    Returns one result dict per spec, in order: identity, dn, before, after, changed, error.
    """
    if resolved is None:
        resolved = ad.resolve_users([spec.identity for spec in specs], AD_ATTRIBUTES)
    results, seen = [], {}
    for spec in specs:
        result = {"identity": spec.identity, "dn": None, "before": None, "after": None, "changed": False, "error": None}
        results.append(result)
        entry = resolved.get(spec.identity)
        try:
            if isinstance(entry, DirsyncError):
                raise entry
            result["dn"] = entry["dn"]
            if entry.get("source"):
                result["ad_source"] = entry["source"]
            key = entry["dn"].lower()
            if key in seen:
                raise InvalidInput("%s names the same AD user (%s) as %s; a run changes each user once, so %s was not changed. "
                                   "Name each user once." % (spec.where, entry["dn"], seen[key], spec.identity))
            seen[key] = spec.where
            before, after, changes = plan_ad(spec, entry, ignore_format)
            result["before"] = before
            if changes and not check_mode:
                ad.modify(entry["dn"], changes, rights_hint=AD_WRITE_RIGHTS_HINT)
            result["after"] = after
            result["changed"] = bool(changes)
        except DirsyncError as error:
            result["error"] = str(error)
    return results


# -- Entra ID ---------------------------------------------------------------------------

def snapshot_entra(user):
    return {"mobile": _phone.clean(user.get("mobilePhone"))}


def plan_entra(spec, user, ignore_format=False):
    """-> (before, after, PATCH body or None). A synced user that needs a change raises InvalidInput."""
    before = snapshot_entra(user)
    wanted = None if spec.state == "absent" else spec.mobile
    manage = spec.state == "absent" or spec.manage_mobile
    if not manage or _phone.same(user.get("mobilePhone"), wanted, ignore_format):
        return before, dict(before), None
    if user.get("onPremisesSyncEnabled") is True:
        raise InvalidInput(
            "%s (%s) is synchronised from on-premises AD, so its mobilePhone is mastered in AD and read-only in Entra ID "
            "(Microsoft blocked cloud edits of synced users). Change the number in AD instead (directory: ad); the next sync "
            "cycle brings it to Entra ID. Nothing was changed." % (spec.identity, user.get("userPrincipalName")),
            identity=spec.identity)
    return before, {"mobile": wanted}, {"mobilePhone": wanted}


def get_entra_user(graph, identity, select=ENTRA_SELECT):
    """GET users/{identity} with ``select``; IdentityNotFound when Graph answers 404."""
    target = identity.strip()
    if _identity.identity_kind(target) == "guid":
        # An object id may be given in braces; Graph's path takes the bare GUID.
        target = str(uuid.UUID(target))
    try:
        return graph.get("users/%s" % quote(target, safe="@"), params={"$select": select})
    except GraphError as error:
        if error.status == 404:
            raise IdentityNotFound(
                "No Entra ID user %r. Give the userPrincipalName (as Entra ID shows it; it can differ from the AD UPN when the "
                "UPN suffix is not a verified domain) or the object id of an existing user." % identity, identity=identity) from None
        raise


def patch_entra(graph, user, body):
    """PATCH the user; Graph's 403 becomes a message that says what to do."""
    try:
        graph.patch("users/%s" % quote(user["id"], safe=""), body)
    except GraphError as error:
        if error.status != 403:
            raise
        raise DirsyncError(
            "Graph refused to change the mobilePhone of %s (403 %s: %s). Microsoft lets an app change the phone numbers of a user who "
            "holds an administrator role only when the app itself holds the Privileged Authentication Administrator (or Global "
            "Administrator) role; for other users the app needs User-Phone.ReadWrite.All (or User.ReadWrite.All). Fix: if %s is an "
            "administrator, change the number signed in as a Privileged Authentication Administrator or Global Administrator "
            "(username/password or device code), or assign that role to the app; otherwise grant the permission (admin consent). "
            "Nothing was changed for this user." % (user.get("userPrincipalName"), error.code or "Forbidden", error.graph_message or "",
                                                    user.get("userPrincipalName")),
            status=403, code=error.code, request_id=error.request_id) from None


def apply_entra(graph, specs, ignore_format=False, check_mode=False):
    """Read, plan and (unless check mode) PATCH each user over the client's kept-alive session.

    Returns one result dict per spec, in order: identity, id, user_principal_name, before, after, changed, error.
    """
    results, seen = [], {}
    for spec in specs:
        result = {"identity": spec.identity, "id": None, "user_principal_name": None, "before": None, "after": None,
                  "changed": False, "error": None}
        results.append(result)
        try:
            user = get_entra_user(graph, spec.identity)
            result["id"], result["user_principal_name"] = user.get("id"), user.get("userPrincipalName")
            if user["id"] in seen:
                raise InvalidInput("%s names the same Entra ID user (%s) as %s; give each user once. %s was not changed."
                                   % (spec.where, user.get("userPrincipalName"), seen[user["id"]], spec.identity))
            seen[user["id"]] = spec.where
            before, after, body = plan_entra(spec, user, ignore_format)
            result["before"] = before
            if body is not None and not check_mode:
                patch_entra(graph, user, body)
            result["after"] = after
            result["changed"] = body is not None
        except DirsyncError as error:
            result["error"] = str(error)
    return results


# -- results ----------------------------------------------------------------------------

def _label(result):
    return result.get("dn") or result.get("user_principal_name") or result["identity"]


def diff_of(result):
    """Ansible diff dict of one user's result."""
    label = _label(result)
    return {"before": result["before"] or {}, "after": result["after"] or result["before"] or {},
            "before_header": label, "after_header": label}


# A bulk diff shows one line per changed user, this many at most; the rest are counted (all are in users[]).
DIFF_LIMIT = 50
_DIFF_FIELDS = (("mobile", "mobile"), ("other_mobile", "otherMobile"))


def _shown(value):
    """A value as a diff line shows it: quoted JSON text, so spaces, tabs and newlines are visible."""
    if value is None or value == []:
        return "none"
    return json.dumps(value, ensure_ascii=False)


def diff_line(result):
    """``<user>: mobile "old" -> "new"; otherMobile [...] -> [...]`` with only the fields that change."""
    before = result["before"] or {}
    after = result["after"] or before
    parts = ["%s %s -> %s" % (name, _shown(before.get(key)), _shown(after.get(key)))
             for key, name in _DIFF_FIELDS if key in after and before.get(key) != after.get(key)]
    return "%s: %s" % (_label(result), "; ".join(parts) or "changed")


def bulk_diff(results, limit=DIFF_LIMIT):
    """One Ansible diff for many users: one line each (old -> new), at most ``limit``, then how many more."""
    changed = [result for result in results if result["changed"]]
    if not changed:
        return {}
    lines = [diff_line(result) for result in changed[:limit]]
    if len(changed) > limit:
        lines.append("... and %d more user(s): every change is in users[] of the task result" % (len(changed) - limit))
    return {"prepared": "\n".join(lines)}


def summarise(results, single=False, unchanged=0):
    """The module result for ``results`` (from apply_ad/apply_entra); raises DirsyncError when any user failed.

    ``unchanged``: users processed and left unchanged whose results the caller did not keep (counted, not listed)."""
    changed = any(result["changed"] for result in results)
    failed = [result for result in results if result["error"]]
    if single:
        result = results[0]
        if failed:
            details = {key: value for key, value in result.items() if key != "error"}
            raise DirsyncError(result["error"], **details)
        output = dict(result)
        output.pop("error")
        output["diff"] = diff_of(result)
        return output
    counts = {"total": len(results) + unchanged, "changed": sum(1 for r in results if r["changed"]), "failed": len(failed)}
    counts["unchanged"] = counts["total"] - counts["changed"] - counts["failed"]
    diff = bulk_diff(results)
    if failed:
        names = listed([result["identity"] for result in failed])
        raise DirsyncError(
            "%d of %d users failed (%s); the other users were processed (%d changed). See each user's error in users[].error, "
            "fix the cause and run the task again: %s" % (len(failed), counts["total"], names, counts["changed"], failed[0]["error"]),
            changed=changed, users=results, counts=counts, diff=diff)
    return {"changed": changed, "users": results, "counts": counts, "diff": diff}


# -- reading both sides (user_phone_info) -----------------------------------------------

INFO_AD_ATTRIBUTES = ("mobile", "otherMobile", "userPrincipalName", "sAMAccountName", "objectGUID", "mS-DS-ConsistencyGuid")
INFO_ENTRA_SELECT = "id,userPrincipalName,mobilePhone,onPremisesSyncEnabled,onPremisesImmutableId"


def ad_view(entry):
    """What user_phone_info shows of an AD entry: the fields a backup records of the user."""
    return _backup.ad_record(_drift.ad_user_from_entry(entry, entry.get("source")))


def entra_view(user):
    """What user_phone_info shows of an Entra ID user."""
    return {"id": user.get("id"), "user_principal_name": user.get("userPrincipalName"), "mobile": _phone.clean(user.get("mobilePhone")),
            "on_premises_sync_enabled": user.get("onPremisesSyncEnabled"), "on_premises_immutable_id": user.get("onPremisesImmutableId")}


def find_entra_by_immutable_id(graph, immutable_id):
    """The Entra ID user whose onPremisesImmutableId is ``immutable_id``, or None (an advanced query)."""
    users = graph.get("users", params={
        "$filter": "onPremisesImmutableId eq '%s'" % immutable_id.replace("'", "''"),
        "$select": INFO_ENTRA_SELECT, "$count": "true"}, headers={"ConsistencyLevel": "eventual"})["value"]
    if len(users) > 1:
        raise DirsyncError("%d Entra ID users have onPremisesImmutableId %s (%s); Entra ID should never allow that: check the "
                           "tenant's sync errors." % (len(users), immutable_id, ", ".join(u.get("userPrincipalName") or u["id"] for u in users)))
    return users[0] if users else None


def find_ad_by_immutable_id(ad, immutable_id):
    """The AD user whose source anchor (mS-DS-ConsistencyGuid, else objectGUID) is ``immutable_id``, or None."""
    raw = _identity.immutable_id_to_bytes(immutable_id)
    value = _escape(raw)
    entries = [entry for entry in ad.paged_search(None, "(&%s(|(objectGUID=%s)(mS-DS-ConsistencyGuid=%s)))" % (USER_FILTER, value, value),
                                                  INFO_AD_ATTRIBUTES)
               if _identity.source_anchor(entry) == immutable_id]
    if len(entries) > 1:
        raise DirsyncError("%d AD users have the source anchor %s (%s): give the user by distinguished name."
                           % (len(entries), immutable_id, "; ".join(entry["dn"] for entry in entries)))
    return entries[0] if entries else None


def read_both(identities, ad=None, graph=None):
    """For each identity, the AD side (if ``ad``) and the Entra ID side (if ``graph``), paired by immutable id.

    Returns one dict per identity: identity, ad, entra (views or None), ad_error, entra_error (why a side is missing)
    and paired (both sides found and linked by the source anchor).
    """
    resolved = ad.resolve_users(identities, INFO_AD_ATTRIBUTES) if ad is not None else {}
    results = []
    for identity in identities:
        result = {"identity": identity, "ad": None, "entra": None, "ad_error": None, "entra_error": None, "paired": False}
        results.append(result)
        entry = resolved.get(identity)
        if isinstance(entry, DirsyncError):
            result["ad_error"] = str(entry)
        elif entry is not None:
            result["ad"] = ad_view(entry)
        if graph is None:
            continue
        try:
            anchor = result["ad"] and result["ad"]["immutable_id"]
            if anchor:
                user = find_entra_by_immutable_id(graph, anchor)
                if user is None:
                    raise IdentityNotFound("No Entra ID user has onPremisesImmutableId %s (the source anchor of %s): the user is not "
                                           "synchronised yet, or is outside the sync scope." % (anchor, result["ad"]["dn"]))
            elif "@" in identity or _identity.identity_kind(identity) == "guid":
                user = get_entra_user(graph, identity, INFO_ENTRA_SELECT)
            else:
                raise InvalidInput("%r is not a userPrincipalName or object id, and no AD user with it was found to pair by source "
                                   "anchor: name the user by UPN or object id." % identity)
            result["entra"] = entra_view(user)
        except DirsyncError as error:
            result["entra_error"] = str(error)
            continue
        anchor = result["entra"]["on_premises_immutable_id"]
        if ad is not None and result["ad"] is None and anchor:
            try:
                entry = find_ad_by_immutable_id(ad, anchor)
            except DirsyncError as error:
                result["ad_error"] = str(error)
                continue
            if entry is not None:
                result["ad"], result["ad_error"] = ad_view(entry), None
        result["paired"] = bool(result["ad"] and anchor and result["ad"]["immutable_id"] == anchor)
    return results

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: phone_reconcile
short_description: Write Microsoft Entra ID's mobile numbers back into Active Directory where the two differ
version_added: 0.1.0
description:
  - The step before enabling C(bypassDirSyncOverridesEnabled), which makes every differing cloud number take the AD value.
    Microsoft's advice is that the cloud holds the newer number (users and admins edited it there), so this module copies
    the Entra C(mobilePhone) into AD C(mobile) first, and nothing is lost when AD wins.
  - Reads both directories (as M(entraid.dirsync.phone_compare) does), pairs the users by O(match_order), and for every
    paired user whose numbers differ writes the cloud value into AD, except where the policy options say otherwise.
  - Replaces importing the CSV of C(Compare-ADSyncToolsDirSyncOverrides) and calling
    C(Set-ADSyncToolsDirSyncOverridesUser -MobileInAD) per user.
  - Requires O(backup_path), a backup written by M(entraid.dirsync.phone_backup) of the same tenant and AD domain, with a
    valid checksum, that holds every user this run would change with the AD number it has now. Otherwise the module
    refuses and names what is missing; nothing is written.
  - Writes over one AD connection (M(entraid.dirsync.user_phone)'s bulk code), planning each user from the values the
    comparison read (those the backup is checked against). Each user's error is collected; the others are still written.
    A cloud number AD cannot take (over 64 characters, or with a control character) is such an error.
  - AD C(otherMobile) is not touched; Microsoft Graph cannot read the cloud's alternate mobile phones.
author:
  - entraid.dirsync contributors (@entraid)
options:
  backup_path:
    description:
      - Path of the backup taken before this run (the RV(entraid.dirsync.phone_backup#module:backup_path) it returned).
    type: path
    required: true
  match_order:
    description:
      - The keys used to pair AD users with Entra users, in the order they are tried (see M(entraid.dirsync.phone_compare)).
      - The default pairs by source anchor only, the key Entra Connect and Cloud Sync match on, so exactly the cloud values
        that a full synchronization would overwrite are written back. Users paired ambiguously are never changed.
    type: list
    elements: str
    choices: [anchor, sid, upn]
    default: [anchor]
  clear_when_cloud_empty:
    description:
      - When the Entra user has no mobile number and the AD user has one, clear the AD number.
      - By default the AD number is kept (and the full synchronization then copies it to Entra ID).
    type: bool
    default: false
  include_format_differences:
    description:
      - Also write the cloud value when the two numbers differ only in format (for example C(+1 425 555 0100) and
        C(+14255550100)). By default such users are skipped.
    type: bool
    default: false
  exclude_upns:
    description:
      - User principal names (AD or Entra, any case) of users never to change.
    type: list
    elements: str
    default: []
  exclude_ous:
    description:
      - Distinguished names of OUs or containers whose users (subtree) are never changed.
    type: list
    elements: str
    default: []
  exclude_groups:
    description:
      - Groups (distinguished name, C(sAMAccountName) or common name) whose members, direct or nested, are never changed.
      - A group that does not exist fails the task before anything is written.
    type: list
    elements: str
    default: []
notes:
  - The Graph sign-in needs C(User.Read.All); the AD bind account must be allowed to write C(mobile) on the users.
seealso:
  - module: entraid.dirsync.phone_backup
  - module: entraid.dirsync.phone_compare
  - module: entraid.dirsync.phone_restore
  - name: The procedure
    description: Backup, reconcile, enable, full sync, verify and rollback, in C(docs/procedure.md) of the collection.
    link: https://github.com/entraid/dirsync/blob/main/docs/procedure.md
extends_documentation_fragment:
  - entraid.dirsync.scope
  - entraid.dirsync.graph
  - entraid.dirsync.ad
  - entraid.dirsync._attributes
  - entraid.dirsync._attributes.action_group_graph_ad
attributes:
  check_mode:
    support: full
    details:
      - Reads both sides, checks the backup and lists each change; writes nothing.
  diff_mode:
    support: full
    details:
      - One diff per changed user (C(mobile) and C(other_mobile) before and after).
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Take the backup, then write the cloud numbers into AD
  module_defaults:
    group/entraid.dirsync.graph: "{{ entraid_graph }}"
    group/entraid.dirsync.ad: "{{ entraid_ad }}"
  block:
    - name: Back up both sides
      entraid.dirsync.phone_backup:
        backup_dir: /var/lib/dirsync/backups
        search_bases: "{{ entraid_ad_search_bases }}"
      register: backup

    - name: Reconcile, leaving out service accounts and the board
      entraid.dirsync.phone_reconcile:
        backup_path: "{{ backup.backup_path }}"
        search_bases: "{{ entraid_ad_search_bases }}"
        exclude_ous:
          - OU=Service Accounts,OU=Corp,DC=contoso,DC=com
        exclude_groups:
          - Board Members
        exclude_upns:
          - ceo@contoso.com
      register: reconcile

    - name: Show what was written
      ansible.builtin.debug:
        msg: "{{ reconcile.counts }}"
"""

RETURN = r"""
tenant_id:
  description: The tenant that was compared.
  returned: success
  type: str
  sample: 00000000-0000-0000-0000-000000000000
backup:
  description: The backup that was checked (see M(entraid.dirsync.phone_backup)).
  returned: success
  type: dict
  contains:
    path:
      description: Absolute path of the backup.
      type: str
    tenant_id:
      description: Tenant of the backup.
      type: str
    ad_domain:
      description: AD domain of the backup.
      type: str
    created_at:
      description: When the backup was taken (UTC).
      type: str
    checksum:
      description: The backup's checksum.
      type: str
    counts:
      description: What the backup holds.
      type: dict
drift:
  description: The comparison before this run, users per class (as M(entraid.dirsync.phone_compare) counts them).
  returned: success
  type: dict
  sample:
    in_sync: 212
    value_differs: 21
    format_differs: 9
    only_in_ad: 4
    only_in_entra: 3
    ambiguous: 0
counts:
  description: Users this run wrote (or would write in check mode), left unchanged, failed, and skipped by the policy.
  returned: success
  type: dict
  sample:
    total: 20
    changed: 20
    unchanged: 0
    failed: 0
    skipped: 10
users:
  description:
    - One entry per user the policy selected, with its AD C(mobile) and C(other_mobile) before and after.
  returned: always
  type: list
  elements: dict
  contains:
    identity:
      description: The user's objectGUID.
      type: str
    dn:
      description: The user's distinguished name.
      type: str
    user_principal_name:
      description: The AD user principal name.
      type: str
    before:
      description: C(mobile) and C(other_mobile) before.
      type: dict
    after:
      description: C(mobile) and C(other_mobile) after (in check mode, what they would be).
      type: dict
    changed:
      description: Whether the user was (or would be) changed.
      type: bool
    error:
      description: Why the user could not be changed, or null.
      type: str
  sample:
    - identity: 6f9619ff-8b86-d011-b42d-00c04fc964ff
      dn: CN=John Doe,OU=Sync,OU=Corp,DC=contoso,DC=com
      user_principal_name: jdoe@contoso.com
      before: {mobile: "+1 425 555 0100", other_mobile: []}
      after: {mobile: "+1 425 555 0199", other_mobile: []}
      changed: true
      error: null
skipped_users:
  description: Paired users whose numbers differ but that the policy left alone, with the reason.
  returned: success
  type: list
  elements: dict
  contains:
    user_principal_name:
      description: The AD user principal name.
      type: str
    dn:
      description: The user's distinguished name.
      type: str
    mobile_in_ad:
      description: C(mobile) in AD.
      type: str
    mobile_in_entra:
      description: C(mobilePhone) in Entra ID.
      type: str
    reason:
      description:
        - V(excluded_upn), V(excluded_ou), V(excluded_group), V(cloud_empty) (see O(clear_when_cloud_empty)) or
          V(format_only) (see O(include_format_differences)).
      type: str
remaining_differences:
  description:
    - Paired users whose numbers still differ after this run (skipped or failed). The full synchronization after enabling
      C(bypassDirSyncOverridesEnabled) gives them the AD value in Entra ID.
  returned: success
  type: int
  sample: 10
"""

import collections

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.entraid.dirsync.plugins.module_utils import _backup, _drift, _identity, _phone, _user_phone
from ansible_collections.entraid.dirsync.plugins.module_utils._ad import USER_FILTER, ADClient, ad_argument_spec, escape_filter_value
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, InvalidInput
from ansible_collections.entraid.dirsync.plugins.module_utils._graph import graph_argument_spec, graph_client_from_module
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_module

SKIP_REASONS = ("excluded_upn", "excluded_ou", "excluded_group", "cloud_empty", "format_only")
# LDAP_MATCHING_RULE_IN_CHAIN: memberOf through nested groups.
_IN_CHAIN = "1.2.840.113556.1.4.1941"

Policy = collections.namedtuple("Policy", "clear_when_cloud_empty include_format_differences exclude_upns exclude_ous")


def normalise_dn(dn):
    """Lower case without blanks around separators, for suffix tests."""
    parts = []
    for rdn in (dn or "").split(","):
        name, _sep, value = rdn.partition("=")
        parts.append("%s=%s" % (name.strip().lower(), value.strip().lower()))
    return ",".join(parts)


def in_ou(dn, ou):
    """True when ``dn`` is below (or is) the container ``ou``."""
    dn, ou = normalise_dn(dn), normalise_dn(ou)
    return dn == ou or dn.endswith("," + ou)


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
    if any(in_ou(row.DistinguishedName, ou) for ou in policy.exclude_ous):
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


def check_backup(changes, backup_users, backup_path):
    """Refuse unless the backup holds every user to change with the AD number the user has now."""
    missing, stale = [], []
    for change in changes:
        record = backup_users.get((change["object_guid"] or "").lower())
        label = "%s (%s)" % (change["user_principal_name"] or change["dn"], change["object_guid"])
        if record is None:
            missing.append(label)
        elif _phone.clean(record["mobile"]) != _phone.clean(change["mobile_in_ad"]):
            stale.append("%s: %r in the backup, %r in AD now" % (label, record["mobile"], change["mobile_in_ad"]))
    if not missing and not stale:
        return
    problems = []
    if missing:
        problems.append("%d user(s) are not in it: %s" % (len(missing), _user_phone.listed(missing)))
    if stale:
        problems.append("%d user(s) have another mobile number in AD than in the backup: %s" % (len(stale), _user_phone.listed(stale)))
    raise _backup.BackupRefused(
        "The backup %s does not cover what this run would change: %s. Take a new backup of the same search bases right before "
        "reconciling (the entraid.dirsync.backup role or phone_backup). Nothing was changed." % (backup_path, "; ".join(problems)),
        backup_path=backup_path, missing=missing, stale=stale)


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


def check_params(params):
    return _drift.check_scope(params), _drift.validate_match_order(params["match_order"])


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


def work(module):
    params = module.params
    bases, match_order = check_params(params)
    policy = make_policy(params)
    graph = graph_client_from_module(module)
    tenant_id = graph.tenant_id
    with ADClient(params) as ad:
        # The backup is checked before anything is read: a wrong file fails fast.
        backup = _backup.load(params["backup_path"], tenant_id=tenant_id, ad_domain=ad.base_dn)
        excluded_guids = group_members(ad, params["exclude_groups"])
        ad_users, entra_users = _drift.read_concurrently(
            _drift.read_ad_users(ad, bases, params["ldap_filter"]),
            _drift.read_entra_users(graph, params["graph_page_size"]))
        drift = _drift.pair_and_classify(ad_users, entra_users, match_order)
        del ad_users, entra_users
        changes, skipped = plan(drift.rows, policy, excluded_guids)
        check_backup(changes, _backup.ad_users_by_guid(backup), params["backup_path"])
        results = write_cloud_numbers(ad, changes, drift.rows, check_mode=module.check_mode)
    failed = sum(1 for result in results if result["error"])
    extra = {"tenant_id": tenant_id, "backup": _backup.summary(backup, params["backup_path"]), "drift": drift.counts,
             "skipped_users": skipped, "remaining_differences": len(skipped) + failed}
    try:
        output = _user_phone.summarise(results)
    except DirsyncError as error:
        error.details.update(extra)
        error.details["counts"]["skipped"] = len(skipped)
        raise
    output.update(extra)
    output["counts"]["skipped"] = len(skipped)
    return output


def main():
    argument_spec = graph_argument_spec()
    argument_spec.update(ad_argument_spec())
    argument_spec.update(
        backup_path=dict(type="path", required=True),
        match_order=dict(type="list", elements="str", choices=list(_drift.MATCH_KEYS), default=["anchor"]),
        clear_when_cloud_empty=dict(type="bool", default=False),
        include_format_differences=dict(type="bool", default=False),
        exclude_upns=dict(type="list", elements="str", default=[]),
        exclude_ous=dict(type="list", elements="str", default=[]),
        exclude_groups=dict(type="list", elements="str", default=[]),
    )
    argument_spec.update(_drift.scope_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, work)


if __name__ == "__main__":
    main()

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
  - Reads both directories (as M(entraid.dirsync.phone_compare) does), pairs the users by source anchor (as the sync
    engines do), and for every paired user whose numbers differ writes the cloud value into AD, except where the policy
    options say otherwise.
  - Accounts for every cloud number that the full synchronization after enabling the feature would overwrite or delete
    (every synchronized cloud user with a number that differs from what the sync will write, whatever its class). Each
    ends in exactly one place, counted in RV(accounting) - V(written) into AD; V(skipped) by an explicit policy
    (exclusions, format only); or V(unresolved) (two AD users claim its anchor, it is only in Entra ID, with or without
    a SID/UPN hint, or its write failed). Unresolved numbers are listed in RV(unresolved_users) and survive only in the
    backup, which the module checks holds each of them; name them in O(acknowledge_unresolved) (or set
    O(accept_unresolved)) to tell the procedure that you know. The C(bypass_overrides) playbook refuses to enable the
    feature while any is not acknowledged.
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
  acknowledge_unresolved:
    description:
      - Users whose unresolved cloud number you accept to lose from Entra ID (it stays in the backup), by user principal name
        (AD or Entra, any case) or Entra object ids, as RV(unresolved_users) lists them.
    type: list
    elements: str
    default: []
  accept_unresolved:
    description:
      - Acknowledge every unresolved cloud number at once. Prefer O(acknowledge_unresolved), which names each user.
    type: bool
    default: false
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
      - One line per changed user (C(mobile) and C(other_mobile), old -> new), at most 50, then how many more; every
        change is in RV(users).
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
    ad_sources:
      description: Names of the backup's AD sources (each must be one this run connects to).
      type: list
      elements: str
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
accounting:
  description:
    - Cloud numbers that the full synchronization would overwrite or delete (V(at_risk)), and where each ended - V(written)
      into AD (in check mode, would be), V(skipped) by the policy, V(unresolved); of the unresolved, how many are
      V(acknowledged) and V(unacknowledged). V(at_risk) is V(written) + V(skipped) + V(unresolved).
  returned: success
  type: dict
  sample: {at_risk: 40, written: 30, skipped: 6, unresolved: 4, acknowledged: 0, unacknowledged: 4}
unresolved_users:
  description: The cloud numbers that cannot be carried into AD, one entry per cloud user.
  returned: success
  type: list
  elements: dict
  contains:
    entra_id:
      description: The Entra object id.
      type: str
    user_principal_name:
      description: The Entra user principal name.
      type: str
    mobile_in_entra:
      description: The cloud number (kept in the backup).
      type: str
    mobile_in_ad:
      description: The AD number of the AD user claiming the same anchor (V(ambiguous)), else null.
      type: str
    class:
      description: V(only_in_entra), V(ambiguous), V(value_differs) or V(format_differs) (the last two when the write failed).
      type: str
    outcome:
      description: Always V(unresolved).
      type: str
    reason:
      description: V(ambiguous), V(only_in_entra), V(hinted) (only in Entra ID, with an AD user of the same SID or UPN) or V(write_failed).
      type: str
    dn:
      description: The AD distinguished name (of the claiming AD user, or C(onPremisesDistinguishedName)).
      type: str
    hint:
      description: The hinted AD user's UPN, or null.
      type: str
    acknowledged:
      description: Whether O(acknowledge_unresolved) or O(accept_unresolved) covers the user.
      type: bool
numbers_not_carried:
  description: Every cloud number at risk that is not written into AD (skipped and unresolved), with the same fields.
  returned: success
  type: list
  elements: dict
remaining_differences:
  description:
    - Cloud numbers at risk that this run did not carry into AD (V(skipped) + V(unresolved) of RV(accounting)). The full
      synchronization after enabling C(bypassDirSyncOverridesEnabled) replaces or deletes them in Entra ID; the backup
      keeps them.
  returned: success
  type: int
  sample: 10
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.entraid.dirsync.plugins.module_utils import _backup, _drift, _reconcile, _user_phone
from ansible_collections.entraid.dirsync.plugins.module_utils._ad import ad_argument_spec
from ansible_collections.entraid.dirsync.plugins.module_utils._ad_sources import ADSources
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError
from ansible_collections.entraid.dirsync.plugins.module_utils._graph import graph_argument_spec, graph_client_from_module
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_module


def work(module):
    params = module.params
    bases = _drift.check_scope(params)
    policy = _reconcile.make_policy(params)
    graph = graph_client_from_module(module)
    tenant_id = graph.tenant_id
    with ADSources(params, bases) as ad:
        # The backup is verified before anything is read, keeping none of its records: a wrong file fails fast.
        _backup.load(params["backup_path"], tenant_id=tenant_id, ad_domains=ad.domains, keep_ad=_backup.keep_none,
                     keep_entra=_backup.keep_none)
        excluded_guids = _reconcile.group_members(ad, params["exclude_groups"])
        ad_users, entra_users = _drift.read_both(ad, graph, params)
        drift = _drift.pair_and_classify(ad_users, entra_users)
        del ad_users, entra_users
        changes, skipped = _reconcile.plan(drift.rows, policy, excluded_guids)
        # Verified again as it is read, keeping only the records of the users to write and of the numbers at risk.
        to_write = {(change["object_guid"] or "").lower() for change in changes}
        at_risk = {row.EntraId for row in _reconcile.numbers_at_risk(drift.rows)}
        backup = _backup.load(params["backup_path"], tenant_id=tenant_id, ad_domains=ad.domains,
                              keep_ad=lambda record: record if record["object_guid"].lower() in to_write else None,
                              keep_entra=lambda record: record if record.get("id") in at_risk else None)
        _reconcile.check_backup(changes, _backup.ad_users_by_guid(backup), params["backup_path"], backup["search_bases"])
        _reconcile.check_backup_keeps(drift.rows, backup["entra_users"], params["backup_path"])
        del backup["ad_users"], backup["entra_users"]
        results = _reconcile.write_cloud_numbers(ad, changes, drift.rows, check_mode=module.check_mode)
    accounting = _reconcile.account(drift.rows, changes, skipped, results, acknowledge=params["acknowledge_unresolved"],
                                    accept_all=params["accept_unresolved"])
    counts = accounting["counts"]
    extra = {"tenant_id": tenant_id, "backup": _backup.summary(backup, params["backup_path"]), "drift": drift.counts,
             "skipped_users": skipped, "accounting": counts, "unresolved_users": accounting["unresolved"],
             "numbers_not_carried": accounting["not_carried"],
             "remaining_differences": counts["skipped"] + counts["unresolved"]}
    if counts["unacknowledged"]:
        names = _user_phone.listed([item["user_principal_name"] or item["entra_id"]
                                    for item in accounting["unresolved"] if not item["acknowledged"]])
        module.warn("%s cloud number(s) cannot be carried into AD (unresolved: %s). The full synchronization would overwrite or "
                    "delete them; they are kept in the backup %s. Review unresolved_users, then acknowledge them before "
                    "enabling bypassDirSyncOverridesEnabled." % (counts["unacknowledged"], names, extra["backup"]["path"]))
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
        acknowledge_unresolved=dict(type="list", elements="str", default=[]),
        accept_unresolved=dict(type="bool", default=False),
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

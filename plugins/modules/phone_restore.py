#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: phone_restore
short_description: Restore the mobile numbers of Active Directory users from a backup
version_added: 0.1.0
description:
  - Loads a backup written by M(entraid.dirsync.phone_backup), verifies it (checksum, tenant, AD domain) and sets AD
    C(mobile) and C(otherMobile) of every user in it exactly as they were when the backup was taken (a number that
    was absent is cleared).
  - Users are found by C(objectGUID), so users renamed or moved since the backup are still restored. Users deleted since
    are reported in RV(missing) and warned about; users created since are not touched.
  - This is the rollback of M(entraid.dirsync.phone_reconcile). Entra ID is not written (synchronized users' numbers are
    read-only there); the next synchronization cycle copies the restored AD values to Entra ID.
  - A backup of another tenant or AD domain, or one whose checksum does not match (corrupted or edited), is refused
    before anything is written.
author:
  - entraid.dirsync contributors (@entraid)
options:
  backup_path:
    description:
      - Path of the backup to restore.
    type: path
    required: true
  compare_cloud:
    description:
      - Also read Entra ID's synchronized users and report, in RV(cloud_differs), every user of the backup whose cloud
        C(mobilePhone) is not what the backup holds. Entra ID cannot be written for synchronized users, so this is how a
        rollback tells, after the next synchronization cycle, which cloud numbers did not come back.
      - Needs a Graph sign-in with C(User.Read.All).
    type: bool
    default: false
notes:
  - The tenant id to check the backup against is the Graph option O(tenant_id) (usually from C(module_defaults)); there is
    no sign-in then (unless O(compare_cloud)). Without it, the tenant of the sign-in is used (O(access_token), managed
    identity).
  - Values are restored byte for byte as the backup holds them (spaces and control characters included); they are not
    validated, since AD held them before. A user AD refuses is that user's error; the others are still restored.
  - Only users under the backup's own search bases are written, both as the backup records them and where they are now.
  - The AD bind account must be allowed to write C(mobile) and C(otherMobile) on the users.
seealso:
  - module: entraid.dirsync.phone_backup
  - module: entraid.dirsync.phone_reconcile
  - name: The procedure
    description: Backup, reconcile, enable, full sync, verify and rollback, in C(docs/procedure.md) of the collection.
    link: https://github.com/entraid/dirsync/blob/main/docs/procedure.md
extends_documentation_fragment:
  - entraid.dirsync.graph
  - entraid.dirsync.ad
  - entraid.dirsync._attributes
  - entraid.dirsync._attributes.action_group_graph_ad
attributes:
  check_mode:
    support: full
    details:
      - Verifies the backup and lists each change; writes nothing.
  diff_mode:
    support: full
    details:
      - One line per changed user (C(mobile) and C(other_mobile), old -> new), at most 50, then how many more; every
        change is in RV(users).
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Restore AD's phone numbers from a backup (connection options from module_defaults)
  module_defaults:
    group/entraid.dirsync.graph: "{{ entraid_graph }}"
    group/entraid.dirsync.ad: "{{ entraid_ad }}"
  entraid.dirsync.phone_restore:
    backup_path: /var/lib/dirsync/backups/phone-backup_00000000-0000-0000-0000-000000000000_20261128T162951Z.json
  register: restore

- name: Only check the backup and show what would change
  entraid.dirsync.phone_restore:
    tenant_id: 00000000-0000-0000-0000-000000000000
    ad_server: dc01.contoso.com
    ad_username: svc-dirsync@contoso.com
    ad_password: "{{ vault_ad_password }}"
    backup_path: "{{ rollback_backup_path }}"
  check_mode: true
  diff: true
"""

RETURN = r"""
tenant_id:
  description: The tenant the backup belongs to.
  returned: success
  type: str
  sample: 00000000-0000-0000-0000-000000000000
backup:
  description: The backup that was restored (path, tenant_id, ad_domain, ad_sources, created_at, checksum, counts); every source of the backup is restored.
  returned: success
  type: dict
  sample:
    path: /var/lib/dirsync/backups/phone-backup_00000000-0000-0000-0000-000000000000_20261128T162951Z.json
    tenant_id: 00000000-0000-0000-0000-000000000000
    ad_domain: DC=contoso,DC=com
    ad_sources: [contoso.com]
    created_at: "2026-11-28T16:29:51Z"
    checksum: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    counts: {ad_users: 247, ad_with_mobile: 160, ad_with_other_mobile: 70, entra_users: 245, entra_with_mobile: 158}
counts:
  description: Users in the backup found in AD (V(total)), changed (or to change in check mode), unchanged, failed, and missing.
  returned: success
  type: dict
  sample:
    total: 246
    changed: 20
    unchanged: 226
    failed: 0
    missing: 1
users:
  description: The users that were (or would be) changed or failed, with C(mobile) and C(other_mobile) before and after.
  returned: success
  type: list
  elements: dict
  contains:
    identity:
      description: The user's objectGUID.
      type: str
    dn:
      description: The user's distinguished name now.
      type: str
    before:
      description: C(mobile) and C(other_mobile) before.
      type: dict
    after:
      description: C(mobile) and C(other_mobile) after (as in the backup).
      type: dict
    changed:
      description: Whether the user was (or would be) changed.
      type: bool
    error:
      description: Why the user could not be restored, or null.
      type: str
cloud_differs:
  description:
    - With O(compare_cloud), the users of the backup whose Entra ID C(mobilePhone) is not what the backup holds (or who are
      no longer in Entra ID), with both values.
  returned: when O(compare_cloud=true)
  type: list
  elements: dict
  sample:
    - id: 2b4f7a1c-0000-4000-8000-000000000001
      user_principal_name: jdoe@contoso.com
      in_backup: "+1 425 555 0199"
      now: "+1 425 555 0100"
missing:
  description: Users of the backup that no longer exist in AD (distinguished name at backup time and objectGUID).
  returned: success
  type: list
  elements: dict
  sample:
    - dn: CN=Jane Roe,OU=Sync,OU=Corp,DC=contoso,DC=com
      object_guid: 6f9619ff-8b86-d011-b42d-00c04fc964ff
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.entraid.dirsync.plugins.module_utils import _backup, _drift, _identity, _phone, _user_phone
from ansible_collections.entraid.dirsync.plugins.module_utils._ad import ad_argument_spec
from ansible_collections.entraid.dirsync.plugins.module_utils._ad_sources import ADSources
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, IdentityNotFound, InvalidInput
from ansible_collections.entraid.dirsync.plugins.module_utils._graph import graph_argument_spec, graph_client_from_module
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_module

RESTORE_BATCH = 1000  # users looked up and restored at a time: what a restore holds of AD at once


def restore_specs(records):
    """Specs that set both attributes exactly as a backup's AD records hold them (not validated: a value AD held before,
    odd as it may be, is restored as it was, and one odd value never blocks the other users)."""
    return [_user_phone.UserSpec(record["object_guid"], manage_mobile=True, mobile=record["mobile"],
                                 other_mobile={"set": list(record["other_mobile"])}, where="backup ad_users", exact=True)
            for record in records]


def outside_scope(resolved, bases):
    """{objectGUID: error} for users now outside the backup's search bases: a restore never writes there."""
    errors = {}
    for identity, entry in resolved.items():
        if isinstance(entry, dict) and not _identity.under_any(entry["dn"], bases):
            errors[identity] = InvalidInput(
                "%s (objectGUID %s) is now outside the backup's search bases (%s); a restore writes only there, so it was not "
                "restored. Restore it by hand (entraid.dirsync.user_phone) if it should be." % (entry["dn"], identity, "; ".join(bases)))
    return errors


def cloud_differences(backup_entra, entra_users):
    """Users of the backup whose cloud number now differs from the backup's (or who are gone from Entra ID).

    ``backup_entra``: the backup's Entra ID records; ``entra_users``: the tenant's users now, as they are read (only the
    backup's users are kept from them)."""
    now = {record["id"]: None for record in backup_entra}
    for user in entra_users:
        if user.id in now:
            now[user.id] = user
    differs = []
    for record in backup_entra:
        user = now[record["id"]]
        if user is None or _phone.clean(user.mobile) != _phone.clean(record["mobile"]):
            differs.append({"id": record["id"], "user_principal_name": record["user_principal_name"],
                            "in_backup": record["mobile"], "now": user.mobile if user else None, "gone": user is None})
    return differs


def _batches(items, size):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def restore(ad, records, bases, check_mode):
    """Restore ``records`` (the backup's AD records) ``RESTORE_BATCH`` users at a time -> ``(results, unchanged, missing)``:
    the results of the users changed or failed, how many were already as the backup holds them, and the users gone."""
    results, unchanged, missing = [], 0, []
    for batch in _batches(records, RESTORE_BATCH):
        specs = restore_specs(batch)
        # One lookup serves both: users deleted since the backup are reported, not failed (a rollback must be repeatable).
        resolved = ad.resolve_users([spec.identity for spec in specs], _user_phone.AD_ATTRIBUTES)
        resolved.update(outside_scope(resolved, bases))
        gone = [record for record in batch if isinstance(resolved.get(record["object_guid"]), IdentityNotFound)]
        missing.extend({"dn": record["dn"], "object_guid": record["object_guid"]} for record in gone)
        skip = {record["object_guid"] for record in gone}
        for result in _user_phone.apply_ad(ad, [spec for spec in specs if spec.identity not in skip], check_mode=check_mode,
                                           resolved=resolved):
            if result["changed"] or result["error"]:
                results.append(result)
            else:
                unchanged += 1
    return results, unchanged, missing


def work(module):
    params = module.params
    graph = graph_client_from_module(module) if params["compare_cloud"] else None
    # Only the tenant id is needed from the Graph options: sign in only when it is not given.
    tenant_id = params.get("tenant_id") or (graph or graph_client_from_module(module)).tenant_id
    if not tenant_id:
        raise InvalidInput("No tenant_id: give the Graph option tenant_id (or AZURE_TENANT_ID) so that the backup's tenant can be "
                           "checked. Nothing was changed.")
    with ADSources(params) as ad:
        backup = _backup.load(params["backup_path"], tenant_id=tenant_id, ad_domains=ad.domains,
                              keep_entra=_backup.keep_all if graph is not None else _backup.keep_none)
        results, unchanged, missing = restore(ad, backup["ad_users"], backup["search_bases"], module.check_mode)
        del backup["ad_users"]
    for item in missing:
        module.warn("%s (objectGUID %s) is in the backup but no longer in AD; it was not restored." % (item["dn"], item["object_guid"]))
    extra = {"tenant_id": backup["tenant_id"], "backup": _backup.summary(backup, params["backup_path"]), "missing": missing}
    if graph is not None:
        extra["cloud_differs"] = cloud_differences(backup["entra_users"], _drift.read_entra_users(graph))
    try:
        output = _user_phone.summarise(results, unchanged=unchanged)
    except DirsyncError as error:
        error.details.update(extra)
        error.details["counts"]["missing"] = len(missing)
        raise
    output.update(extra)
    output["counts"]["missing"] = len(missing)
    return output


def main():
    argument_spec = graph_argument_spec()
    argument_spec.update(ad_argument_spec())
    argument_spec.update(backup_path=dict(type="path", required=True), compare_cloud=dict(type="bool", default=False))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, work)


if __name__ == "__main__":
    main()

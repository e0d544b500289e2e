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
notes:
  - The tenant id to check the backup against is the Graph option O(tenant_id) (usually from C(module_defaults)); there is
    no sign-in then. Without it, the tenant of the sign-in is used (O(access_token), managed identity). Nothing is read
    from Microsoft Graph.
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
      - One diff per changed user (C(mobile) and C(other_mobile) before and after).
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
  description: The backup that was restored (path, tenant_id, ad_domain, created_at, checksum, counts).
  returned: success
  type: dict
  sample:
    path: /var/lib/dirsync/backups/phone-backup_00000000-0000-0000-0000-000000000000_20261128T162951Z.json
    tenant_id: 00000000-0000-0000-0000-000000000000
    ad_domain: DC=contoso,DC=com
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

from ansible_collections.entraid.dirsync.plugins.module_utils import _backup, _user_phone
from ansible_collections.entraid.dirsync.plugins.module_utils._ad import ADClient, ad_argument_spec
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, IdentityNotFound, InvalidInput
from ansible_collections.entraid.dirsync.plugins.module_utils._graph import graph_argument_spec, graph_client_from_module
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_module


def restore_entries(records):
    """user_phone entries that set both attributes exactly as a backup's AD records hold them."""
    return [{"identity": record["object_guid"], "mobile": record["mobile"], "other_mobile": {"set": list(record["other_mobile"])}}
            for record in records]


def work(module):
    params = module.params
    # Only the tenant id is needed from the Graph options: sign in only when it is not given.
    tenant_id = params.get("tenant_id") or graph_client_from_module(module).tenant_id
    if not tenant_id:
        raise InvalidInput("No tenant_id: give the Graph option tenant_id (or AZURE_TENANT_ID) so that the backup's tenant can be "
                           "checked. Nothing was changed.")
    with ADClient(params) as ad:
        backup = _backup.load(params["backup_path"], tenant_id=tenant_id, ad_domain=ad.base_dn)
        records = backup["ad_users"]
        specs = _user_phone.parse_specs(restore_entries(records), "ad", where="backup ad_users")
        # One lookup serves both: users deleted since the backup are reported, not failed (a rollback must be repeatable).
        resolved = ad.resolve_users([spec.identity for spec in specs], _user_phone.AD_ATTRIBUTES)
        missing = [{"dn": record["dn"], "object_guid": record["object_guid"]} for record in records
                   if isinstance(resolved.get(record["object_guid"]), IdentityNotFound)]
        gone = {item["object_guid"] for item in missing}
        results = _user_phone.apply_ad(ad, [spec for spec in specs if spec.identity not in gone], check_mode=module.check_mode,
                                       resolved=resolved)
    for item in missing:
        module.warn("%s (objectGUID %s) is in the backup but no longer in AD; it was not restored." % (item["dn"], item["object_guid"]))
    extra = {"tenant_id": backup["tenant_id"], "backup": _backup.summary(backup, params["backup_path"]), "missing": missing}
    try:
        output = _user_phone.summarise(results)
    except DirsyncError as error:
        error.details.update(extra)
        error.details["counts"]["missing"] = len(missing)
        error.details["users"] = [result for result in results if result["changed"] or result["error"]]
        raise
    output.update(extra)
    output["counts"]["missing"] = len(missing)
    output["users"] = [result for result in results if result["changed"] or result["error"]]
    return output


def main():
    argument_spec = graph_argument_spec()
    argument_spec.update(ad_argument_spec())
    argument_spec.update(backup_path=dict(type="path", required=True))
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, work)


if __name__ == "__main__":
    main()

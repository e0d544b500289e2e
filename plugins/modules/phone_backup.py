#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: phone_backup
short_description: Back up the mobile numbers of Active Directory and Microsoft Entra ID users before changing them
version_added: 0.1.0
description:
  - Reads every user under O(search_bases) in AD (distinguished name, C(objectGUID), UPN, C(sAMAccountName), source anchor,
    C(mobile), C(otherMobile)) and every synchronized user of the Entra tenant (id, UPN, C(mobilePhone),
    C(onPremisesImmutableId)), both at the same time, and writes them to a new timestamped file in O(backup_dir).
  - The file is written atomically with mode C(0600) (it holds personal data) and records the tenant id, the AD domain,
    the time, the search bases and a SHA-256 checksum over its content.
    M(entraid.dirsync.phone_reconcile) and M(entraid.dirsync.phone_restore) refuse a backup whose checksum does not match
    or that belongs to another tenant or domain.
  - Nothing changes in AD or Entra ID, so the task never reports a change. The backup is written in check mode too, so
    that a C(--check) run of the procedure can be checked against it.
  - The Entra side cannot include alternate mobile phones (C(otherMobile) in Entra ID), because no Microsoft Graph API returns them.
author:
  - entraid.dirsync contributors (@entraid)
options:
  backup_dir:
    description:
      - Directory to write the backup file to, on the host that runs the module. It is created (mode C(0700)) when missing.
      - The file is named C(phone-backup_<tenant id>_<UTC time>.json); an existing file is never replaced.
    type: path
    required: true
notes:
  - The Graph sign-in needs C(User.Read.All); the AD bind account only needs to read users.
  - Give O(tenant_id) as the tenant's id (a GUID), so that backups and the modules that check them name the tenant the same way.
seealso:
  - module: entraid.dirsync.phone_reconcile
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
      - The backup file is written in check mode too; AD and Entra ID are only read.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Never changes AD or Entra ID (each run writes a new backup file).
"""

EXAMPLES = r"""
- name: Back up the sync scope before reconciling (connection options from module_defaults)
  module_defaults:
    group/entraid.dirsync.graph: "{{ entraid_graph }}"
    group/entraid.dirsync.ad: "{{ entraid_ad }}"
  entraid.dirsync.phone_backup:
    backup_dir: /var/lib/dirsync/backups
    search_bases:
      - OU=Sync,OU=Corp,DC=contoso,DC=com
  register: backup

- name: Show where it is
  ansible.builtin.debug:
    msg: "{{ backup.backup_path }} ({{ backup.counts.ad_users }} AD users, {{ backup.counts.entra_users }} Entra users)"
"""

RETURN = r"""
backup_path:
  description: Absolute path of the backup file written.
  returned: success
  type: str
  sample: /var/lib/dirsync/backups/phone-backup_00000000-0000-0000-0000-000000000000_20261128T162951Z.json
checksum:
  description: The backup's checksum (C(sha256:) and the hex digest of its canonical content).
  returned: success
  type: str
  sample: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
tenant_id:
  description: The tenant that was backed up.
  returned: success
  type: str
  sample: 00000000-0000-0000-0000-000000000000
ad_domain:
  description: The AD domain that was backed up (its default naming context); null when several AD sources were.
  returned: success
  type: str
  sample: DC=contoso,DC=com
ad_sources:
  description: The names of the AD sources that were backed up (the backup records each user's source).
  returned: success
  type: list
  elements: str
  sample: [contoso.com]
created_at:
  description: When the backup was taken (UTC).
  returned: success
  type: str
  sample: "2026-11-28T16:29:51Z"
counts:
  description: What the backup holds.
  returned: success
  type: dict
  contains:
    ad_users:
      description: AD users under O(search_bases).
      type: int
    ad_with_mobile:
      description: AD users with a C(mobile).
      type: int
    ad_with_other_mobile:
      description: AD users with at least one C(otherMobile).
      type: int
    entra_users:
      description: Synchronized Entra ID users.
      type: int
    entra_with_mobile:
      description: Synchronized Entra ID users with a C(mobilePhone).
      type: int
  sample:
    ad_users: 247
    ad_with_mobile: 160
    ad_with_other_mobile: 70
    entra_users: 245
    entra_with_mobile: 158
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.entraid.dirsync.plugins.module_utils import _backup, _drift
from ansible_collections.entraid.dirsync.plugins.module_utils._ad import ad_argument_spec
from ansible_collections.entraid.dirsync.plugins.module_utils._ad_sources import ADSources
from ansible_collections.entraid.dirsync.plugins.module_utils._graph import graph_argument_spec, graph_client_from_module
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_module


def read_both(module, graph, bases):
    """Both directories, read at the same time -> (the AD sources, closed, AD users, Entra users)."""
    params = module.params
    with ADSources(params, bases) as ad:
        ad_users, entra_users = _drift.read_both(ad, graph, params, attributes=_drift.BACKUP_AD_ATTRIBUTES)
        return ad, ad_users, entra_users


def work(module):
    params = module.params
    bases = _drift.check_scope(params)
    graph = graph_client_from_module(module)
    ad, ad_users, entra_users = read_both(module, graph, bases)
    document = _backup.build(graph.tenant_id, ad.domains[0] if ad.single else None, ad.bases, params["ldap_filter"], ad_users,
                             entra_users, ad_sources=ad.describe())
    path = _backup.write(params["backup_dir"], document)
    result = _backup.summary(document, path)
    # Not "path": Ansible would add the file's owner, mode and size to the result.
    result["backup_path"] = result.pop("path")
    result["changed"] = False
    return result


def main():
    argument_spec = graph_argument_spec()
    argument_spec.update(ad_argument_spec())
    argument_spec.update(
        backup_dir=dict(type="path", required=True),
    )
    argument_spec.update(_drift.scope_argument_spec())
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, work)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: preflight
short_description: Check, before anything is written, that the later steps of the procedure will be allowed
version_added: 0.1.0
description:
  - Reads only. Fails, naming every missing right, when the Graph sign-in lacks a permission in O(graph_permissions) (the
    C(roles) of an app-only token, the C(scp) of a delegated one), when O(require_global_administrator) is set and the
    signed-in user is not a Global Administrator, when the Cloud Sync jobs of O(cloud_sync_service_principal_id) cannot
    be read, or when the AD bind account may not write O(ad_write_attributes) on the users under O(search_bases).
  - The AD check reads C(allowedAttributesEffective) of one user under each search base, which the domain controller
    computes from the bind account's effective rights on that object. Members of protected groups (C(adminCount=1)) do not
    inherit delegated rights; they may still be refused later.
  - A token that is not a readable JWT (some managed identity or foreign tokens) cannot be checked; the task then warns.
  - The C(bypass_overrides) playbook runs it (the preflight role) before the backup, so a run that would fail at the
    feature or the full synchronization stops before its first write.
author:
  - entraid.dirsync contributors (@entraid)
options:
  graph_permissions:
    description:
      - Permissions the Graph sign-in must hold. Alternatives in one entry are separated by C(|), for example
        C(User.Read.All|User.ReadWrite.All).
    type: list
    elements: str
    default: []
  require_global_administrator:
    description: Also require a delegated sign-in of a Global Administrator (what the directory synchronization features API accepts).
    type: bool
    default: false
  cloud_sync_service_principal_id:
    description: Check that the Cloud Sync jobs of this service principal can be read.
    type: str
  search_bases:
    description:
      - AD containers whose users the procedure writes. With them, the AD connection options are required and checked.
    type: list
    elements: str
    default: []
  ad_write_attributes:
    description: Attributes the AD bind account must be allowed to write.
    type: list
    elements: str
    default: [mobile, otherMobile]
extends_documentation_fragment:
  - entraid.dirsync.graph
  - entraid.dirsync.ad
  - entraid.dirsync._attributes
  - entraid.dirsync._attributes.INFO_MODULE
  - entraid.dirsync._attributes.action_group_graph_ad
"""

EXAMPLES = r"""
- name: Stop before the first write if the app may not restart the Cloud Sync job
  entraid.dirsync.preflight:
    tenant_id: 00000000-0000-0000-0000-000000000000
    client_id: 11111111-1111-1111-1111-111111111111
    client_secret: "{{ vault_graph_secret }}"
    graph_permissions: [Synchronization.ReadWrite.All]
    cloud_sync_service_principal_id: 22222222-2222-2222-2222-222222222222
"""

RETURN = r"""
checked:
  description: What was checked.
  returned: success
  type: list
  elements: str
  sample: [graph permissions, AD write access under OU=Sync,DC=contoso,DC=com]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.entraid.dirsync.plugins.module_utils import _preflight
from ansible_collections.entraid.dirsync.plugins.module_utils._ad import ad_argument_spec
from ansible_collections.entraid.dirsync.plugins.module_utils._ad_sources import ADSources
from ansible_collections.entraid.dirsync.plugins.module_utils._graph import graph_argument_spec, graph_client_from_module
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_module


def work(module):
    params = module.params
    _preflight.parse_requirements(params["graph_permissions"])
    bases = [base.strip() for base in params["search_bases"] if base and base.strip()]
    problems, checked = [], []
    if params["graph_permissions"] or params["require_global_administrator"] or params["cloud_sync_service_principal_id"] is not None:
        graph = graph_client_from_module(module)
        claims = graph.token_claims()
        if not claims:
            module.warn("The Graph access token is not a readable JWT, so its permissions could not be checked.")
        problems += _preflight.token_problems(claims, params["graph_permissions"], params["require_global_administrator"])
        checked.append("graph permissions")
        if params["cloud_sync_service_principal_id"] is not None:
            problems += _preflight.cloud_sync_problems(graph, params["cloud_sync_service_principal_id"])
            checked.append("cloud sync job")
    if bases or any(source.get("search_bases") for source in params.get("ad_sources") or ()):
        with ADSources(params, bases) as ad:
            for source in ad.sources:
                problems += _preflight.ad_write_problems(source.client, source.bases, params["ad_write_attributes"])
                checked += ["AD write access under %s" % base for base in source.bases]
    _preflight.raise_if(problems, "the procedure")
    return {"changed": False, "checked": checked}


def main():
    argument_spec = graph_argument_spec()
    argument_spec.update(ad_argument_spec())
    argument_spec.update(
        graph_permissions=dict(type="list", elements="str", default=[]),
        require_global_administrator=dict(type="bool", default=False),
        cloud_sync_service_principal_id=dict(type="str"),
        search_bases=dict(type="list", elements="str", default=[]),
        ad_write_attributes=dict(type="list", elements="str", default=["mobile", "otherMobile"]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, work)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: dirsync_feature_info
short_description: Read the directory synchronization features of a Microsoft Entra tenant
version_added: 0.1.0
description:
  - Returns every directory synchronization feature of the tenant (Microsoft Graph C(directory/onPremisesSynchronization)),
    for example C(bypassDirSyncOverridesEnabled), keyed by Graph name.
  - Replaces the retired MSOnline cmdlet C(Get-MsolDirSyncFeatures). To change features use M(entraid.dirsync.dirsync_feature).
  - Microsoft Graph accepts only a B(delegated) sign-in of a B(Global Administrator) for this API. An app-only sign-in
    (O(auth_method=client_secret), V(client_certificate), V(managed_identity)) fails before any call. Sign in with
    O(auth_method=password) (accounts without multi-factor authentication) or O(auth_method=device_code) after the
    M(entraid.dirsync.sign_in) action (works with MFA).
author:
  - entraid.dirsync contributors (@entraid)
options: {}
notes:
  - The app registration needs the delegated permission C(OnPremDirectorySynchronization.Read.All) with admin consent.
seealso:
  - module: entraid.dirsync.dirsync_feature
  - module: entraid.dirsync.sign_in
extends_documentation_fragment:
  - entraid.dirsync.graph
  - entraid.dirsync._attributes
  - entraid.dirsync._attributes.info_module
  - entraid.dirsync._attributes.action_group_graph
"""

EXAMPLES = r"""
- name: Read the features, signed in with a password (Global Administrator without MFA)
  entraid.dirsync.dirsync_feature_info:
    tenant_id: 00000000-0000-0000-0000-000000000000
    client_id: 11111111-1111-1111-1111-111111111111
    username: admin@contoso.com
    password: "{{ vault_entra_admin_password }}"
  register: dirsync

- name: Show whether BypassDirSyncOverrides is on
  ansible.builtin.debug:
    msg: "BypassDirSyncOverrides is {{ 'on' if dirsync.features.bypassDirSyncOverridesEnabled else 'off' }} in {{ dirsync.tenant_id }}"

- name: Sign in with a device code (works with MFA), then read with the cached tokens
  module_defaults:
    group/entraid.dirsync.graph:
      tenant_id: 00000000-0000-0000-0000-000000000000
      client_id: 11111111-1111-1111-1111-111111111111
      auth_method: device_code
      token_cache_path: ~/.cache/entraid/admin-token-cache.json
  block:
    - name: Sign in (shows a URL and a code, waits for the sign-in)
      entraid.dirsync.sign_in:

    - name: Read the features
      entraid.dirsync.dirsync_feature_info:
      register: dirsync

- name: Use a delegated Graph access token obtained elsewhere
  entraid.dirsync.dirsync_feature_info:
    auth_method: access_token
    access_token: "{{ graph_token }}"
  register: dirsync
"""

RETURN = r"""
tenant_id:
  description: Id of the tenant (and of its directory synchronization object).
  returned: success
  type: str
  sample: 00000000-0000-0000-0000-000000000000
features:
  description: Every directory synchronization feature of the tenant with its state, keyed by Graph name.
  returned: success
  type: dict
  sample:
    bypassDirSyncOverridesEnabled: false
    blockSoftMatchEnabled: false
    passwordSyncEnabled: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.entraid.dirsync.plugins.module_utils._dirsync_features import read_features
from ansible_collections.entraid.dirsync.plugins.module_utils._graph import graph_argument_spec, graph_client_from_module
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_module


def work(module):
    tenant_id, features = read_features(graph_client_from_module(module))
    return {"changed": False, "tenant_id": tenant_id, "features": features}


def main():
    module = AnsibleModule(argument_spec=graph_argument_spec(), supports_check_mode=True)
    run_module(module, work)


if __name__ == "__main__":
    main()

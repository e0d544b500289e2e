#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: dirsync_feature
short_description: Turn directory synchronization features of a Microsoft Entra tenant on or off
version_added: 0.1.0
description:
  - Reads the tenant's directory synchronization features (Microsoft Graph C(directory/onPremisesSynchronization))
    and changes those that differ from what is requested, for example C(bypassDirSyncOverridesEnabled).
  - Replaces the retired MSOnline cmdlets C(Set-MsolDirSyncFeature) and C(Get-MsolDirSyncFeatures).
  - Feature names are accepted as Graph names (V(bypassDirSyncOverridesEnabled)), MSOnline names in any case
    (V(BypassDirSyncOverrides)) or snake_case (V(bypass_dir_sync_overrides)). An unknown name fails and lists the valid ones.
  - When a change is needed, the whole C(features) object read from Graph is sent back with the change applied, as
    Microsoft's own example does.
  - Without O(enabled) or O(features) the module only reports the features. M(entraid.dirsync.dirsync_feature_info) does
    the same without options to change anything.
  - Microsoft Graph accepts only a B(delegated) sign-in of a B(Global Administrator) for this API. An app-only sign-in
    (O(auth_method=client_secret), V(client_certificate), V(managed_identity)) fails before any call. Sign in with
    O(auth_method=password) (accounts without multi-factor authentication) or O(auth_method=device_code) after the
    M(entraid.dirsync.sign_in) action (works with MFA).
author:
  - entraid.dirsync contributors (@entraid)
options:
  feature:
    description:
      - One feature to report or change, in any accepted spelling.
      - Use with O(enabled) to change it. Mutually exclusive with O(features).
    type: str
  enabled:
    description:
      - Whether O(feature) must be on (V(true)) or off (V(false)).
    type: bool
  features:
    description:
      - Several features at once, as a dictionary of feature name (any accepted spelling) to V(true) or V(false).
      - Mutually exclusive with O(feature) and O(enabled).
    type: dict
notes:
  - The app registration needs the delegated permission C(OnPremDirectorySynchronization.ReadWrite.All)
    (C(OnPremDirectorySynchronization.Read.All) only to report), with admin consent.
  - C(passwordWritebackEnabled) cannot be changed through Graph (Microsoft does not support it); requesting a value other
    than the current one fails without writing.
  - After enabling C(bypassDirSyncOverridesEnabled), run a full synchronization cycle so that the on-premises values
    replace the cloud overrides.
seealso:
  - module: entraid.dirsync.dirsync_feature_info
  - module: entraid.dirsync.sign_in
  - name: onPremisesDirectorySynchronization resource type
    description: The Graph API this module uses.
    link: https://learn.microsoft.com/graph/api/resources/onpremisesdirectorysynchronization
extends_documentation_fragment:
  - entraid.dirsync.graph
  - entraid.dirsync._attributes
  - entraid.dirsync._attributes.action_group_graph
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - Shows every feature before and after.
  idempotent:
    support: full
"""

EXAMPLES = r"""
- name: Enable BypassDirSyncOverrides, signed in with a password (Global Administrator without MFA)
  entraid.dirsync.dirsync_feature:
    tenant_id: 00000000-0000-0000-0000-000000000000
    client_id: 11111111-1111-1111-1111-111111111111
    auth_method: password
    username: admin@contoso.com
    password: "{{ vault_entra_admin_password }}"
    feature: BypassDirSyncOverrides
    enabled: true

- name: Sign in with a device code (works with MFA), then change features with the cached tokens
  module_defaults:
    group/entraid.dirsync.graph:
      tenant_id: 00000000-0000-0000-0000-000000000000
      client_id: 11111111-1111-1111-1111-111111111111
      auth_method: device_code
      token_cache_path: ~/.cache/entraid/admin-token-cache.json
  block:
    - name: Sign in (shows a URL and a code, waits for the sign-in)
      entraid.dirsync.sign_in:

    - name: Declare several features, in any spelling
      entraid.dirsync.dirsync_feature:
        features:
          bypass_dir_sync_overrides: true
          BlockSoftMatch: true
          blockCloudObjectTakeoverThroughHardMatchEnabled: true

- name: Use a delegated Graph access token obtained elsewhere (for example az account get-access-token)
  entraid.dirsync.dirsync_feature:
    auth_method: access_token
    access_token: "{{ graph_token }}"
    feature: bypassDirSyncOverridesEnabled
    enabled: false

- name: Only report one feature
  entraid.dirsync.dirsync_feature:
    feature: bypassDirSyncOverridesEnabled
  register: feature_state
"""

RETURN = r"""
tenant_id:
  description: Id of the tenant (and of its directory synchronization object).
  returned: success
  type: str
  sample: 00000000-0000-0000-0000-000000000000
features:
  description:
    - Every directory synchronization feature of the tenant with its state after the task (in check mode, the state it
      would have), keyed by Graph name.
  returned: success
  type: dict
  sample:
    bypassDirSyncOverridesEnabled: true
    blockSoftMatchEnabled: false
    passwordSyncEnabled: true
changes:
  description: The features that changed (or would change in check mode), sorted by name. Empty when nothing differs.
  returned: success
  type: list
  elements: dict
  contains:
    feature:
      description: Graph name of the feature.
      type: str
      sample: bypassDirSyncOverridesEnabled
    before:
      description: State before the task; V(null) when Graph did not return the feature.
      type: bool
      sample: false
    after:
      description: State after the task.
      type: bool
      sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.entraid.dirsync.plugins.module_utils._dirsync_features import apply_features, resolve_feature, resolve_features
from ansible_collections.entraid.dirsync.plugins.module_utils._graph import graph_argument_spec, graph_client_from_module
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_module


def desired_features(params):
    """Graph name -> bool requested by the options; names are checked even when only reporting."""
    if params["features"] is not None:
        return resolve_features(params["features"])
    if params["feature"] is not None:
        name = resolve_feature(params["feature"])
        return {} if params["enabled"] is None else {name: params["enabled"]}
    return {}


def work(module):
    desired = desired_features(module.params)
    result = apply_features(graph_client_from_module(module), desired, module.check_mode)
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    return result


def main():
    argument_spec = graph_argument_spec()
    argument_spec.update(
        feature=dict(type="str"),
        enabled=dict(type="bool"),
        features=dict(type="dict"),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        mutually_exclusive=[("feature", "features"), ("enabled", "features")],
        required_by={"enabled": "feature"},
    )
    run_module(module, work)


if __name__ == "__main__":
    main()

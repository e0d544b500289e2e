#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The work is done by the action plugin of the same name (plugins/action/sign_in.py) on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: sign_in
short_description: Sign in to Microsoft Entra ID with a device code and keep the tokens for later tasks
version_added: 0.1.0
description:
  - Signs a person in with the OAuth 2.0 device code flow, which works with multi-factor authentication and Conditional
    Access, and stores the tokens in the token cache O(token_cache_path) (mode C(0600)).
  - Later tasks with O(auth_method=device_code) (or O(auth_method=auto) and only O(token_cache_path)) and the same
    O(tenant_id), O(client_id) and O(token_cache_path) use the cache silently, for example
    M(entraid.dirsync.dirsync_feature), whose API accepts only a delegated sign-in of a Global Administrator.
  - When the cache already gives a token for the account without a person, nothing is shown and the task reports no change.
  - Otherwise the task shows the sign-in URL and the code on the controller's screen at once and waits until the sign-in
    is completed in any browser (on any device), or O(wait_timeout) passes. The task then reports a change.
  - Runs on the controller. Works in check mode too, since signing in changes nothing Ansible manages.
  - The task result never contains a token.
author:
  - entraid.dirsync contributors (@entraid)
options:
  token_cache_path:
    description:
      - File where the tokens are stored (created with mode V(0600), its directory with V(0700) when missing), and where
        later tasks with O(auth_method=device_code) find them.
      - The file holds refresh tokens. Protect it like a password.
      - If not set, the environment variable E(ENTRAID_TOKEN_CACHE) is used.
    type: path
    required: true
  username:
    description:
      - The user principal name of the account to use from the token cache when it holds several.
      - When set, a device code sign-in completed by another account fails and is not stored.
      - If not set, the environment variable E(AZURE_USERNAME) is used.
    type: str
  wait_timeout:
    description:
      - How many seconds to wait for the person to complete the sign-in. The device code itself expires earlier when
        the identity platform says so (usually after 15 minutes).
    type: int
    default: 900
notes:
  - Only O(tenant_id), O(client_id), O(token_cache_path), O(username), O(cloud), O(authority_host), O(graph_endpoint),
    O(ca_bundle), O(validate_certs) and O(timeout) are used. The other connection options are accepted, so that the same
    C(module_defaults) can serve this action and the modules, and ignored.
  - The app registration O(client_id) must allow public client flows (Authentication, Allow public client flows).
  - The token cache holds refresh tokens. Keep it on the controller, out of version control, and delete it when done.
seealso:
  - module: entraid.dirsync.dirsync_feature
  - module: entraid.dirsync.dirsync_feature_info
  - name: Microsoft identity platform and the OAuth 2.0 device authorization grant flow
    description: How the device code flow works.
    link: https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code
extends_documentation_fragment:
  - entraid.dirsync.graph
  - entraid.dirsync._attributes
  - entraid.dirsync._attributes.action_group_graph
  - ansible.builtin.action_common_attributes.flow
attributes:
  check_mode:
    support: full
    details:
      - Signs in and fills the token cache in check mode too.
  diff_mode:
    support: none
  idempotent:
    support: full
    details:
      - Once signed in, a second run uses the cache and reports no change until the sign-in expires.
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
"""

EXAMPLES = r"""
- name: Change a directory synchronization feature as a Global Administrator with MFA
  module_defaults:
    group/entraid.dirsync.graph:
      tenant_id: 00000000-0000-0000-0000-000000000000
      client_id: 11111111-1111-1111-1111-111111111111
      auth_method: device_code
      token_cache_path: ~/.cache/entraid/admin-token-cache.json
  block:
    - name: Sign in (shows a URL and a code, and waits)
      entraid.dirsync.sign_in:
        username: admin@contoso.com

    - name: Enable BypassDirSyncOverrides with the cached sign-in
      entraid.dirsync.dirsync_feature:
        feature: BypassDirSyncOverrides
        enabled: true

- name: Sign in with explicit options, waiting at most 5 minutes
  entraid.dirsync.sign_in:
    tenant_id: 00000000-0000-0000-0000-000000000000
    client_id: 11111111-1111-1111-1111-111111111111
    token_cache_path: ~/.cache/entraid/admin-token-cache.json
    wait_timeout: 300
  register: sign_in

- name: Show who is signed in
  ansible.builtin.debug:
    msg: "Signed in as {{ sign_in.account }} until {{ sign_in.expires_on }}"
"""

RETURN = r"""
account:
  description: The user principal name of the signed-in account.
  returned: success
  type: str
  sample: admin@contoso.com
tenant_id:
  description: The tenant the account signed in to.
  returned: success
  type: str
  sample: 00000000-0000-0000-0000-000000000000
expires_on:
  description:
    - When the current access token expires (UTC, ISO 8601). Later tasks renew it from the cache without a person,
      until the refresh token expires or is revoked.
  returned: success
  type: str
  sample: "2026-11-20T14:05:00Z"
token_cache_path:
  description: The token cache file that holds the sign-in.
  returned: success
  type: str
  sample: /home/admin/.cache/entraid/admin-token-cache.json
"""

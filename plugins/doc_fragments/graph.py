# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations


class ModuleDocFragment:
    """Options of the Microsoft Graph connection (``module_utils/_graph.py``, ``graph_argument_spec()``)."""

    DOCUMENTATION = r"""
options:
  tenant_id:
    description:
      - Directory (tenant) ID or a verified domain of the Microsoft Entra tenant.
      - Required for every O(auth_method) except V(access_token) and V(managed_identity).
      - If not set, the environment variable E(AZURE_TENANT_ID) is used.
    type: str
  client_id:
    description:
      - Application (client) ID of the app registration used to sign in.
      - Required for every O(auth_method) except V(access_token) and V(managed_identity).
      - If not set, the environment variable E(AZURE_CLIENT_ID) is used.
    type: str
  auth_method:
    description:
      - How to sign in to Microsoft Entra ID.
      - V(auto) picks the first method whose credentials are given, in this order
        V(access_token), V(client_secret), V(client_certificate), V(password) (O(username) and O(password)),
        V(device_code) (O(token_cache_path)), V(managed_identity) (O(managed_identity_client_id)).
      - V(client_secret) and V(client_certificate) sign in as the application (app-only tokens).
      - V(password) signs in as O(username) (resource owner password flow); it fails when the user needs
        multi-factor authentication.
      - V(device_code) uses the token cache at O(token_cache_path) filled by the M(entraid.dirsync.sign_in)
        action; a module cannot show a device code itself, and fails asking for that sign-in when the cache
        holds none.
      - V(managed_identity) uses the managed identity of the Azure machine running the module.
      - V(access_token) uses O(access_token) as it is; it cannot be refreshed.
      - Directory synchronization features can only be read and changed with a delegated sign-in
        (V(password), V(device_code), or a user's O(access_token)) of a Global Administrator.
      - If not set, the environment variable E(ENTRAID_AUTH_METHOD) is used.
    type: str
    choices: [auto, client_secret, client_certificate, password, device_code, managed_identity, access_token]
    default: auto
  client_secret:
    description:
      - Client secret value (not its secret ID) of the app registration, for O(auth_method=client_secret).
      - If not set, the environment variable E(AZURE_CLIENT_SECRET) is used.
    type: str
  client_certificate_path:
    description:
      - Path of a PEM file holding the private key and the certificate of the app registration,
        for O(auth_method=client_certificate). The certificate must be uploaded to the app registration.
      - If not set, the environment variable E(AZURE_CLIENT_CERTIFICATE_PATH) is used.
    type: path
  client_certificate_password:
    description:
      - Password of the private key in O(client_certificate_path), if it is encrypted.
      - If not set, the environment variable E(AZURE_CLIENT_CERTIFICATE_PASSWORD) is used.
    type: str
  username:
    description:
      - User principal name to sign in as with O(auth_method=password).
      - With O(auth_method=device_code), selects the account in the token cache when it holds several.
      - If not set, the environment variable E(AZURE_USERNAME) is used.
    type: str
  password:
    description:
      - Password of O(username), for O(auth_method=password).
      - If not set, the environment variable E(AZURE_PASSWORD) is used.
    type: str
  access_token:
    description:
      - A Microsoft Graph access token obtained elsewhere, for O(auth_method=access_token).
      - When Graph rejects it (for example because it expired) the task fails; supply a new one.
      - If not set, the environment variable E(ENTRAID_ACCESS_TOKEN) is used.
    type: str
  managed_identity_client_id:
    description:
      - Client ID of a user-assigned managed identity. Without it, O(auth_method=managed_identity) uses the
        system-assigned identity.
    type: str
  token_cache_path:
    description:
      - File holding the token cache written by the M(entraid.dirsync.sign_in) action, for O(auth_method=device_code).
        Also used by O(auth_method=password) to keep tokens between tasks.
      - The file holds refresh tokens; it is written with mode V(0600). Protect it like a password.
      - If not set, the environment variable E(ENTRAID_TOKEN_CACHE) is used.
    type: path
  cloud:
    description:
      - The Microsoft cloud of the tenant. V(global) uses C(login.microsoftonline.com) and C(graph.microsoft.com),
        V(usgov) C(login.microsoftonline.us) and C(graph.microsoft.us), V(usgov_dod) C(login.microsoftonline.us)
        and C(dod-graph.microsoft.us), V(china) C(login.chinacloudapi.cn) and C(microsoftgraph.chinacloudapi.cn).
      - V(custom) uses O(authority_host) and O(graph_endpoint), for example a test stand-in.
      - If not set, the environment variable E(ENTRAID_CLOUD) is used.
    type: str
    choices: [global, usgov, usgov_dod, china, custom]
    default: global
  authority_host:
    description:
      - Base URL of the identity platform, for O(cloud=custom), for example V(https://login.microsoftonline.com).
      - With another O(cloud) it must be unset or match that cloud.
      - If not set, the environment variable E(AZURE_AUTHORITY_HOST) is used.
    type: str
  graph_endpoint:
    description:
      - Base URL of Microsoft Graph, for O(cloud=custom), for example V(https://graph.microsoft.com).
      - With another O(cloud) it must be unset or match that cloud.
      - If not set, the environment variable E(ENTRAID_GRAPH_ENDPOINT) is used.
    type: str
  ca_bundle:
    description:
      - PEM file with the CA certificates trusted for the identity platform and Graph, for example the CA of a
        TLS inspection proxy. It applies even when E(REQUESTS_CA_BUNDLE) is set.
      - If not set, the environment variable E(ENTRAID_CA_BUNDLE) is used; without either, the system trust
        (or E(REQUESTS_CA_BUNDLE)) applies.
    type: path
  validate_certs:
    description:
      - Whether to verify TLS certificates. Set V(false) only for tests; prefer O(ca_bundle).
      - If not set, the environment variable E(ENTRAID_VALIDATE_CERTS) is used.
    type: bool
    default: true
  timeout:
    description:
      - Seconds to wait for each HTTP response from the identity platform or Graph (at least V(1)).
    type: int
    default: 30
  max_retries:
    description:
      - How often a Graph request or a sign-in is retried when the service throttles (HTTP 429, or the identity
        platform's AADSTS90033), is unavailable (502, 503, 504) or cannot be reached (refused or dropped
        connections, timeouts). Waits follow C(Retry-After) when the service sends it, otherwise a jittered
        exponential backoff from 1 to 60 seconds. V(0) never retries.
    type: int
    default: 5
  request_deadline:
    description:
      - Seconds one Graph request or one sign-in may take in all, its retries and their waits (also those asked
        for by C(Retry-After)) included. A retry whose wait would end past it is not made; the task fails at once,
        naming the fault, instead of waiting. Each answer is also awaited at most until the deadline.
      - Without it, O(max_retries) waits of a long C(Retry-After) (up to 300 seconds each) could hold one request
        for 25 minutes.
      - At least V(1).
    type: int
    default: 300
notes:
  - Secrets (O(client_secret), O(client_certificate_password), O(password), O(access_token)) are never logged
    or returned. Prefer environment variables or Ansible Vault for them.
  - One exception comes from ansible-core itself, not from this collection. With E(ANSIBLE_DEBUG=1) ansible-core prints
    the arguments of every module, secrets included. Never use E(ANSIBLE_DEBUG) with real credentials, nor keep its output.
  - The permissions each module needs are listed in its documentation and in C(docs/sign-in.md) of the collection.
requirements:
  - msal >= 1.28
  - requests
  - cryptography (for O(auth_method=client_certificate))
"""

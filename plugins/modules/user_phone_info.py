#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: user_phone_info
short_description: Read users' mobile phone numbers on both sides, Active Directory and Microsoft Entra ID
version_added: 0.1.0
description:
  - For each given user, returns the AD side (C(mobile), C(otherMobile), identifiers and source anchor) and the Entra ID side
    (C(mobilePhone), C(onPremisesSyncEnabled), C(onPremisesImmutableId)), paired by the source anchor.
  - A user found in AD is paired with the Entra ID user whose C(onPremisesImmutableId) is the AD user's source anchor
    (C(mS-DS-ConsistencyGuid), else C(objectGUID)); a user named by Entra ID UPN or object id is paired back to AD the same way.
    So the AD UPN and the Entra ID UPN may differ.
  - Replaces ADSyncTools' C(Get-ADSyncToolsDirSyncOverridesUser). Never changes anything.
  - A user missing on one side is reported in RV(users[].ad_error) or RV(users[].entra_error), not as a failure.
  - A directory named in O(directories) that cannot be read fails the task (a failed sign-in, Graph unavailable or
    throttling after its retries, a missing permission, a lost AD connection); no user is then reported as missing.
author: entraid.dirsync contributors (@entraid)
options:
  identities:
    description:
      - The users to read.
      - In AD a user principal name, sAMAccountName (optionally C(DOMAIN\name)), distinguished name, objectGUID or SID;
        in Entra ID a userPrincipalName or object id. Filter characters such as C(*) are matched literally.
    type: list
    elements: str
    required: true
  directories:
    description:
      - Which sides to read. Only the connections of the listed directories are used.
    type: list
    elements: str
    choices: [ad, entra]
    default: [ad, entra]
extends_documentation_fragment:
  - entraid.dirsync.graph
  - entraid.dirsync.ad
  - entraid.dirsync._attributes
  - entraid.dirsync._attributes.info_module
  - entraid.dirsync._attributes.action_group_graph_ad
notes:
  - Finding an Entra ID user by C(onPremisesImmutableId) is an advanced query (header C(ConsistencyLevel) set to C(eventual));
    Entra ID may answer it with a short delay after a change.
seealso:
  - module: entraid.dirsync.user_phone
"""

EXAMPLES = r"""
- name: Read two users on both sides
  module_defaults:
    group/entraid.dirsync.graph: "{{ entraid_graph }}"
    group/entraid.dirsync.ad: "{{ entraid_ad }}"
  entraid.dirsync.user_phone_info:
    identities:
      - alice@corp.example.com
      - CORP\bob
  register: phones

- name: Show users whose numbers differ
  ansible.builtin.debug:
    msg: "{{ item.identity }}: AD {{ item.ad.mobile }} / Entra ID {{ item.entra.mobile }}"
  loop: "{{ phones.users | selectattr('paired') | list }}"
  when: item.ad.mobile != item.entra.mobile

- name: Only the AD side
  entraid.dirsync.user_phone_info:
    identities: [alice@corp.example.com]
    directories: [ad]
"""

RETURN = r"""
users:
  description: One entry per item of O(identities), in the same order.
  returned: always
  type: list
  elements: dict
  contains:
    identity:
      description: The user as named in O(identities).
      type: str
      sample: alice@corp.example.com
    ad:
      description: The AD side, or null when it was not read or not found.
      type: dict
      contains:
        dn:
          description: Distinguished name.
          type: str
        object_guid:
          description: objectGUID as text.
          type: str
        user_principal_name:
          description: userPrincipalName (null when not set).
          type: str
        sam_account_name:
          description: sAMAccountName.
          type: str
        immutable_id:
          description: The source anchor as Entra ID's C(onPremisesImmutableId) (base64 of C(mS-DS-ConsistencyGuid), else of C(objectGUID)).
          type: str
        mobile:
          description: C(mobile), null when absent.
          type: str
        other_mobile:
          description: C(otherMobile) values.
          type: list
          elements: str
      sample:
        dn: CN=Alice,OU=Staff,DC=corp,DC=example,DC=com
        object_guid: 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0
        user_principal_name: alice@corp.example.com
        sam_account_name: alice
        immutable_id: PC0eD1pLeGmHlqW0w9Lh8A==
        mobile: "+1 425 555 0100"
        other_mobile: []
    entra:
      description: The Entra ID side, or null when it was not read or not found.
      type: dict
      contains:
        id:
          description: Object id.
          type: str
        user_principal_name:
          description: userPrincipalName in Entra ID.
          type: str
        mobile:
          description: C(mobilePhone), null when empty.
          type: str
        on_premises_sync_enabled:
          description: True for a synchronized user, false for one that was synchronized, null for a cloud-only user.
          type: bool
        on_premises_immutable_id:
          description: C(onPremisesImmutableId), the source anchor of a synchronized user.
          type: str
      sample:
        id: 6f2d1a3e-52b4-4c8e-9a3b-1f0c2d3e4f50
        user_principal_name: alice@corp.example.com
        mobile: "+1 425 555 0199"
        on_premises_sync_enabled: true
        on_premises_immutable_id: PC0eD1pLeGmHlqW0w9Lh8A==
    ad_error:
      description: Why RV(users[].ad) is null although AD was read (not found, ambiguous, ...), else null.
      type: str
    entra_error:
      description:
        - Why RV(users[].entra) is null although Entra ID was read (no such user, nothing to pair by), else null.
        - A failure to read Entra ID at all (sign-in, outage) fails the task instead.
      type: str
    paired:
      description: True when both sides were found and the Entra ID user's C(onPremisesImmutableId) is the AD user's source anchor.
      type: bool
"""

import types

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.entraid.dirsync.plugins.module_utils import _user_phone
from ansible_collections.entraid.dirsync.plugins.module_utils._ad import ad_argument_spec
from ansible_collections.entraid.dirsync.plugins.module_utils._ad_sources import ADSources
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import ADError, AuthError, GraphError, InvalidInput
from ansible_collections.entraid.dirsync.plugins.module_utils._graph import graph_argument_spec, graph_client_from_module
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_module


def argument_spec():
    spec = graph_argument_spec()
    spec.update(ad_argument_spec())
    spec.update(
        identities=dict(type="list", elements="str", required=True),
        directories=dict(type="list", elements="str", choices=list(_user_phone.DIRECTORIES), default=list(_user_phone.DIRECTORIES)),
    )
    return spec


class _Unreadable(Exception):
    """A directory itself failed (sign-in, outage, lost connection): carried past read_both, which keeps only per-user errors."""

    def __init__(self, error):
        super().__init__(str(error))
        self.error = error


# Graph statuses that concern one user (a malformed or unknown name); any other failure concerns the whole directory.
_PER_USER_STATUSES = (400, 404)


class _FailFast:
    """Wraps a directory client so that a failure of the directory ends the task instead of becoming users[].*_error."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            try:
                result = attribute(*args, **kwargs)
                # A search yields its entries as they come: its failure must happen here too, not where they are read.
                return list(result) if isinstance(result, types.GeneratorType) else result
            except (AuthError, ADError) as error:
                raise _Unreadable(error) from None
            except GraphError as error:
                if error.status in _PER_USER_STATUSES:
                    raise
                raise _Unreadable(error) from None
        return call


def work(module):
    params = module.params
    identities = params["identities"]
    bad = [identity for identity in identities if not identity or not identity.strip()]
    if bad or not params["directories"]:
        raise InvalidInput("identities must be non-empty strings and directories must name ad and/or entra.")
    graph = None
    if "entra" in params["directories"]:
        graph = graph_client_from_module(module)
        # Signing in first: a wrong secret or an outage fails the task, it is not reported as "no Entra ID user".
        graph.sign_in()
        graph = _FailFast(graph)
    try:
        if "ad" in params["directories"]:
            with ADSources(params) as ad:
                users = _user_phone.read_both(identities, ad=_FailFast(ad), graph=graph)
        else:
            users = _user_phone.read_both(identities, graph=graph)
    except _Unreadable as unreadable:
        raise unreadable.error from None
    return {"changed": False, "users": users}


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_module(module, work)


if __name__ == "__main__":
    main()

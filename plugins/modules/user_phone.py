#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: user_phone
short_description: Set or clear users' mobile phone numbers in Active Directory or Microsoft Entra ID
version_added: 0.1.0
description:
  - Sets, changes or clears the mobile phone numbers of one user (O(identity)) or of many users in one task (O(users)).
  - With O(directory=ad) it manages C(mobile) and C(otherMobile) in on-premises Active Directory over one LDAP connection.
  - With O(directory=entra) it manages C(mobilePhone) of cloud-only users through Microsoft Graph. A synchronized user's
    number is mastered in AD and read-only in Entra ID; changing it is an error that says to change it in AD.
  - Replaces ADSyncTools' C(Set-ADSyncToolsDirSyncOverridesUser) and C(Clear-ADSyncToolsDirSyncOverridesUser).
  - Every value is validated before anything is written. Only what differs is written; absent, null and empty values are equal.
  - With O(users), one failing user does not stop the others; the task fails at the end naming every failed user, with each
    user's result in RV(users).
  - Connects only to the directory it needs; O(directory=ad) never signs in to Graph and O(directory=entra) never binds to AD.
author: entraid.dirsync contributors (@entraid)
options:
  directory:
    description:
      - Where the numbers are changed.
      - V(ad) uses the AD connection options (O(ad_server) and the others); V(entra) the Graph connection options.
    type: str
    choices: [ad, entra]
    required: true
  identity:
    description:
      - The one user to change.
      - With O(directory=ad) a user principal name, sAMAccountName (optionally C(DOMAIN\name)), distinguished name,
        objectGUID or SID. Filter characters such as C(*) are matched literally.
      - With O(directory=entra) a userPrincipalName (as Entra ID shows it) or an object id.
      - Mutually exclusive with O(users); one of them is required.
    type: str
  mobile:
    description:
      - The mobile number (AD C(mobile), Entra ID C(mobilePhone)). Free text of at most 64 characters without control characters.
      - V("") clears it. When not given, the number is left as it is (in this single-user form, Ansible cannot tell V(null)
        from an omitted option; in O(users) a C(mobile) key with V(null) clears).
      - Must be a string; quote numbers in YAML (V("4255550100")), an unquoted number is an error.
    type: raw
  other_mobile:
    description:
      - The alternate mobile numbers (AD C(otherMobile)). Only with O(directory=ad); Graph has no API for them.
      - Order and duplicates are ignored.
    type: dict
    suboptions:
      add:
        description: Numbers to add if missing.
        type: list
        elements: raw
      remove:
        description: Numbers to remove if present.
        type: list
        elements: raw
      set:
        description:
          - The exact list of numbers; wins over O(other_mobile.add) and O(other_mobile.remove).
          - V([]) clears all of them.
        type: list
        elements: raw
  state:
    description:
      - V(present) sets what O(mobile) and O(other_mobile) say.
      - V(absent) clears the mobile number (and in AD every alternate mobile number); then give neither O(mobile) nor O(other_mobile).
      - Defaults to V(present) when not given.
    type: str
    choices: [present, absent]
  users:
    description:
      - Many users in one task, over one connection; much faster than a loop of single-user tasks.
      - Each item is a dictionary with the keys C(identity) (required), C(mobile), C(other_mobile) and C(state),
        with the meanings of the options of the same names.
      - A C(mobile) key with V(null) or V("") clears the number; without the key the number is left as it is.
      - Mutually exclusive with O(identity).
    type: list
    elements: dict
  ignore_format:
    description:
      - Treat numbers that differ only in formatting as equal (spaces, dashes, dots, slashes, parentheses), so that
        V(+1 425 555 0100) equals V(+14255550100) and is not rewritten.
      - Numbers that are kept keep their current spelling.
    type: bool
    default: false
extends_documentation_fragment:
  - entraid.dirsync.graph
  - entraid.dirsync.ad
  - entraid.dirsync._attributes
  - entraid.dirsync._attributes.action_group_graph_ad
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - One user (O(identity)) - its before/after. Many users (O(users)) - one line per user that changes (old -> new), at
        most 50, then how many more; every change is in RV(users).
  idempotent:
    support: full
notes:
  - In AD the bind account needs write permission on C(mobile) and C(otherMobile) of the users (see docs/ad-connection.md).
  - In Entra ID the application needs C(User-Phone.ReadWrite.All) (or C(User.ReadWrite.All)); a delegated sign-in also
    needs a role such as User Administrator.
  - With O(directory=entra), a synced user whose number already equals O(mobile) is reported unchanged, not as an error.
seealso:
  - module: entraid.dirsync.user_phone_info
"""

EXAMPLES = r"""
- name: Set one user's mobile number in AD
  entraid.dirsync.user_phone:
    directory: ad
    identity: alice@corp.example.com
    mobile: "+1 425 555 0100"
    ad_server: dc1.corp.example.com
    ad_username: svc-dirsync@corp.example.com
    ad_password: "{{ vault_ad_password }}"

- name: Add an alternate mobile number and remove an old one
  entraid.dirsync.user_phone:
    directory: ad
    identity: CORP\bob
    other_mobile:
      add: ["+1 425 555 0199"]
      remove: ["+1 425 555 0111"]

- name: Clear both numbers of a user in AD
  entraid.dirsync.user_phone:
    directory: ad
    identity: CN=Carol,OU=Staff,DC=corp,DC=example,DC=com
    state: absent

- name: Set a cloud-only user's mobile phone in Entra ID
  entraid.dirsync.user_phone:
    directory: entra
    identity: dave@contoso.onmicrosoft.com
    mobile: "+14255550123"
    tenant_id: "{{ tenant_id }}"
    client_id: "{{ client_id }}"
    client_secret: "{{ client_secret }}"

- name: Many users in one task (connection options from module_defaults)
  module_defaults:
    group/entraid.dirsync.ad: "{{ entraid_ad }}"
  entraid.dirsync.user_phone:
    directory: ad
    ignore_format: true
    users:
      - identity: alice@corp.example.com
        mobile: "+1 425 555 0100"
      - identity: bob@corp.example.com
        mobile: null
        other_mobile:
          set: []
      - identity: S-1-5-21-1004336348-1177238915-682003330-1105
        state: absent
  register: phones

- name: Show what changed
  ansible.builtin.debug:
    msg: "{{ phones.users | selectattr('changed') | map(attribute='identity') | list }}"
"""

RETURN = r"""
identity:
  description: The user as named in O(identity).
  returned: with O(identity)
  type: str
  sample: alice@corp.example.com
dn:
  description: Distinguished name of the AD user.
  returned: with O(identity) and O(directory=ad)
  type: str
  sample: CN=Alice,OU=Staff,DC=corp,DC=example,DC=com
id:
  description: Object id of the Entra ID user.
  returned: with O(identity) and O(directory=entra)
  type: str
  sample: 6f2d1a3e-52b4-4c8e-9a3b-1f0c2d3e4f50
user_principal_name:
  description: userPrincipalName of the Entra ID user.
  returned: with O(identity) and O(directory=entra)
  type: str
  sample: dave@contoso.onmicrosoft.com
before:
  description:
    - The user's numbers before the task. C(mobile) is null when there is none.
    - With O(directory=ad) also C(other_mobile) (a list).
  returned: with O(identity)
  type: dict
  sample: {"mobile": "+1 425 555 0100", "other_mobile": []}
after:
  description: The user's numbers after the task (in check mode, what they would be); same shape as RV(before).
  returned: with O(identity)
  type: dict
  sample: {"mobile": "+1 425 555 0199", "other_mobile": ["+1 425 555 0123"]}
users:
  description:
    - One result per item of O(users), in the same order (also in the failed result when some users failed).
    - Each has C(identity), C(dn) (AD) or C(id) and C(user_principal_name) (Entra ID), C(before), C(after) (null when the user
      could not be read), C(changed) and C(error) (null, or what went wrong for this user and what to do).
    - With O(directory=ad), a user found in AD also has C(ad_source), the name of the AD source that holds it (O(ad_sources)).
  returned: with O(users)
  type: list
  elements: dict
  sample:
    - identity: alice@corp.example.com
      dn: CN=Alice,OU=Staff,DC=corp,DC=example,DC=com
      before: {"mobile": null, "other_mobile": []}
      after: {"mobile": "+1 425 555 0100", "other_mobile": []}
      changed: true
      error: null
counts:
  description: How many users of O(users) were changed, unchanged and failed, and the total.
  returned: with O(users)
  type: dict
  sample: {"total": 3, "changed": 1, "unchanged": 1, "failed": 1}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.entraid.dirsync.plugins.module_utils import _user_phone
from ansible_collections.entraid.dirsync.plugins.module_utils._ad import ad_argument_spec
from ansible_collections.entraid.dirsync.plugins.module_utils._ad_sources import ADSources
from ansible_collections.entraid.dirsync.plugins.module_utils._graph import graph_argument_spec, graph_client_from_module
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_module


def argument_spec():
    spec = graph_argument_spec()
    spec.update(ad_argument_spec())
    spec.update(
        directory=dict(type="str", choices=list(_user_phone.DIRECTORIES), required=True),
        identity=dict(type="str"),
        mobile=dict(type="raw"),
        other_mobile=dict(type="dict", options=dict(
            add=dict(type="list", elements="raw"),
            remove=dict(type="list", elements="raw"),
            set=dict(type="list", elements="raw"),
        )),
        state=dict(type="str", choices=list(_user_phone.STATES)),
        users=dict(type="list", elements="dict"),
        ignore_format=dict(type="bool", default=False),
    )
    return spec


def work(module):
    params = module.params
    directory = params["directory"]
    single = params["users"] is None
    if single:
        specs = [_user_phone.parse_spec(_user_phone.single_entry(params), directory, where="identity")]
    else:
        specs = _user_phone.parse_specs(params["users"], directory)
    if not specs:
        return {"changed": False, "users": [], "counts": {"total": 0, "changed": 0, "unchanged": 0, "failed": 0}, "diff": {}}
    if directory == "ad":
        with ADSources(params) as ad:
            results = _user_phone.apply_ad(ad, specs, params["ignore_format"], module.check_mode)
    else:
        results = _user_phone.apply_entra(graph_client_from_module(module), specs, params["ignore_format"], module.check_mode)
    return _user_phone.summarise(results, single=single)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("identity", "users"), ("users", "mobile"), ("users", "other_mobile"), ("users", "state")],
        required_one_of=[("identity", "users")],
        supports_check_mode=True,
    )
    run_module(module, work)


if __name__ == "__main__":
    main()

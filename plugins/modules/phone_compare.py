#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: phone_compare
short_description: Report mobile numbers that differ between Active Directory and Microsoft Entra ID
version_added: 0.1.0
description:
  - Reads the users in the AD sync scope (O(search_bases), optionally narrowed by O(ldap_filter)) and the synchronized users
    of the Entra tenant (C(onPremisesSyncEnabled eq true)), pairs them, and classifies each user's mobile number.
  - Replaces C(Compare-ADSyncToolsDirSyncOverrides) from ADSyncTools. Users are paired as Entra Connect and Cloud Sync
    join them, by source anchor alone (C(mS-DS-ConsistencyGuid) when set, else C(objectGUID), against
    C(onPremisesImmutableId)). SID and UPN never pair; for users the anchor leaves unpaired they name a likely counterpart
    on the other side (the C(Hint*) columns), so an admin sees the story (a changed anchor, a departed user's UPN reused).
  - Classes are V(in_sync); V(value_differs); V(format_differs) (the same number written differently, for example
    C(+1 425 555 0100) and C(+14255550100), or with other digits such as fullwidth or Arabic-Indic ones);
    V(only_in_ad) (not synchronized yet, outside the sync scope, or its anchor changed);
    V(only_in_entra) (deleted or moved out of the sync scope in AD, under a base not searched, or its anchor changed);
    V(ambiguous) (two AD users claim one anchor; the row carries the cloud user of that anchor).
  - AD C(otherMobile) is reported from AD only. No Microsoft Graph API returns the cloud's alternate mobile phones, so it
    cannot be compared.
  - Both directories are read at the same time and streamed; memory grows with the number of users (see
    C(docs/drift-report.md) for the figures C(make bench) and C(make bench-memory) printed).
  - With O(state_file), a repeat run reads only what changed since the last one (AD C(uSNChanged) watermarks, the Graph
    users delta query) and gives the same report a full read would; RV(read) says how each directory was read and why
    a full read was needed.
  - The report is written to O(report_csv) and/or O(report_json) on the host that runs the module, also in check mode.
    Nothing changes in AD or Entra ID, so the task never reports a change.
author:
  - entraid.dirsync contributors (@entraid)
options:
  report_csv:
    description:
      - Path of the CSV report to write (replaced atomically, mode C(0600), as it holds personal data).
      - Columns C(UserPrincipalName), C(MobileInAD), C(MobileInEntra), C(OtherMobileInAD) (values separated by C(;)) come
        first, as in ADSyncTools' report, then C(Class), C(MatchedBy), C(UserPrincipalNameInEntra), C(DistinguishedName),
        C(EnabledInAD), C(ObjectGUID), C(ImmutableId), C(SID), C(EntraId), C(Note), C(HintMatchedBy), C(HintUserPrincipalName),
        C(HintId).
      - A missing directory (and its missing parents) is created with mode C(0700); an existing directory is left
        exactly as it is, never chmod-ed. Only a regular file (or a name that does not exist yet) is replaced; a device
        such as C(/dev/null), a FIFO or a directory at that path, or behind a symbolic link, is refused.
    type: path
  report_json:
    description:
      - Path of the JSON report to write (replaced atomically, mode C(0600)).
      - It has a header (tenant, time, search bases, counts, notes) and C(rows) with the same fields as the CSV.
      - A missing directory (and its missing parents) is created with mode C(0700); an existing directory is left
        exactly as it is, never chmod-ed. Only a regular file (or a name that does not exist yet) is replaced; a device
        such as C(/dev/null), a FIFO or a directory at that path, or behind a symbolic link, is refused.
    type: path
  report_in_sync:
    description:
      - Also list users whose numbers are in sync in the reports. They are always counted.
    type: bool
    default: false
  state_file:
    description:
      - Path of a private state file (mode C(0600); it holds the users' numbers) that makes repeat runs incremental.
      - The first run reads both directories in full and writes it. Later runs read from AD only the users whose
        C(uSNChanged) is above the watermark (changed, moved or deleted since) and from Graph the users delta query since
        the last delta link, apply those changes to the users kept in the file, and classify them as a full read would.
      - A directory is read in full again, and the reason returned in RV(read), when the file is missing, unreadable,
        for another tenant, O(search_bases) or O(ldap_filter), or older than 6 days (Graph's delta links expire after
        7); when the run is on another domain controller than the last one or the controller was restored from a
        backup (a new C(invocationId)); when an OU or container in the scope changed (a rename or move changes its
        users' DNs without changing them); when O(ldap_filter) tests a back-link such as C(memberOf); and when Graph
        answers that the delta link expired.
      - With O(ad_sources), each AD source has its own watermark and is read in full or incrementally on its own.
      - Use one state file per tenant and scope. One that group or others can write, or that another user owns, is
        refused, as it decides what the report says.
      - A missing directory is created with mode C(0700). The file is written in check mode too, like the reports.
    type: path
  full_read:
    description:
      - Read both directories in full even when O(state_file) would allow an incremental read; the state file is then
        written again.
    type: bool
    default: false
  max_differences:
    description:
      - How many differing users to return in RV(differences) (the first ones in report order). V(0) returns none.
      - The reports always list all of them.
    type: int
    default: 50
notes:
  - The Graph sign-in needs C(User.Read.All) (application or delegated); the AD bind account only needs to read users.
  - Synchronized Entra users from other forests or OUs not under O(search_bases) are reported as V(only_in_entra).
  - The CSV holds the values as they are. A spreadsheet may read a number starting with C(+) or C(=) as a formula;
    import the file with text columns.
seealso:
  - name: Drift report reference
    description: Columns, classes and the benchmark, in C(docs/drift-report.md) of the collection.
    link: https://github.com/entraid/dirsync/blob/main/docs/drift-report.md
extends_documentation_fragment:
  - entraid.dirsync.scope
  - entraid.dirsync.graph
  - entraid.dirsync.ad
  - entraid.dirsync._attributes
  - entraid.dirsync._attributes.info_module
  - entraid.dirsync._attributes.action_group_graph_ad
"""

EXAMPLES = r"""
- name: Write the drift report of the sync scope (connection options from module_defaults)
  module_defaults:
    group/entraid.dirsync.graph: "{{ entraid_graph }}"
    group/entraid.dirsync.ad: "{{ entraid_ad }}"
  entraid.dirsync.phone_compare:
    search_bases:
      - OU=Sync,OU=Corp,DC=contoso,DC=com
    report_csv: /var/lib/dirsync/drift.csv
    report_json: /var/lib/dirsync/drift.json
  register: drift

- name: Show the counts per class
  ansible.builtin.debug:
    var: drift.counts

- name: A nightly drift report that reads only what changed since the last night
  entraid.dirsync.phone_compare:
    search_bases:
      - OU=Sync,OU=Corp,DC=contoso,DC=com
    state_file: /var/lib/dirsync/drift-state.json
    report_csv: /var/lib/dirsync/drift.csv
  register: nightly

- name: Compare only the Sales department
  entraid.dirsync.phone_compare:
    tenant_id: 00000000-0000-0000-0000-000000000000
    client_id: 11111111-1111-1111-1111-111111111111
    client_secret: "{{ vault_graph_secret }}"
    ad_server: dc01.contoso.com
    ad_username: svc-dirsync@contoso.com
    ad_password: "{{ vault_ad_password }}"
    search_bases:
      - OU=Users,DC=contoso,DC=com
    ldap_filter: (department=Sales)
    max_differences: 10
  register: sales
"""

RETURN = r"""
tenant_id:
  description: The tenant that was compared.
  returned: success
  type: str
  sample: 00000000-0000-0000-0000-000000000000
ad_sources:
  description:
    - The AD sources that were read (O(ad_sources), or the one source of the O(ad_server) options), in order. Each row of the
      report names its user's source (C(ADSource)).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: The source's name.
      type: str
    domain:
      description: Its domain (default naming context).
      type: str
    search_bases:
      description: The search bases read in it.
      type: list
      elements: str
  sample:
    - name: contoso.com
      domain: DC=contoso,DC=com
      search_bases: [OU=Sync,DC=contoso,DC=com]
counts:
  description: Number of users per class (every class is present).
  returned: success
  type: dict
  sample:
    in_sync: 212
    value_differs: 21
    format_differs: 9
    only_in_ad: 4
    only_in_entra: 3
    ambiguous: 1
ad_users:
  description: Number of AD users read under O(search_bases).
  returned: success
  type: int
  sample: 247
entra_users:
  description: Number of synchronized Entra users read.
  returned: success
  type: int
  sample: 245
differences:
  description:
    - The first O(max_differences) users that are not in sync, in report order (class, then UPN).
    - Each has the report's fields.
  returned: success
  type: list
  elements: dict
  contains:
    UserPrincipalName:
      description: The AD user principal name (for V(only_in_entra), the on-premises UPN Entra knows).
      type: str
    MobileInAD:
      description: C(mobile) in AD, or null.
      type: str
    MobileInEntra:
      description: C(mobilePhone) in Entra ID, or null.
      type: str
    OtherMobileInAD:
      description: C(otherMobile) values in AD (not compared, see the module description).
      type: list
      elements: str
    Class:
      description: V(value_differs), V(format_differs), V(only_in_ad), V(only_in_entra) or V(ambiguous).
      type: str
    MatchedBy:
      description: V(anchor) for a paired user (the only key users are paired by); empty when not paired.
      type: str
    UserPrincipalNameInEntra:
      description: C(userPrincipalName) in Entra ID (it differs from the AD one when the UPN suffix is not verified).
      type: str
    DistinguishedName:
      description: The AD distinguished name (for V(only_in_entra), C(onPremisesDistinguishedName)).
      type: str
    EnabledInAD:
      description: Whether the AD account is enabled; null when the user is not in AD.
      type: bool
    ObjectGUID:
      description: The AD objectGUID.
      type: str
    ImmutableId:
      description: C(onPremisesImmutableId) in Entra ID, or for users only in AD the value Entra Connect would derive.
      type: str
    SID:
      description: The user's SID.
      type: str
    EntraId:
      description: The Entra object id.
      type: str
    Note:
      description: Why the user is in this class, in words.
      type: str
    HintMatchedBy:
      description:
        - For an unpaired user, the keys (V(sid), V(upn), comma separated) by which a user on the other side looks like
          the same person; several candidates are separated by C(;). Empty when there is no hint. A hint never pairs.
      type: str
    HintUserPrincipalName:
      description: The UPN of each hinted candidate on the other side (C(;) separated), or null.
      type: str
    HintId:
      description: The Entra object id (for an AD user) or the AD objectGUID (for an Entra user) of each candidate, or null.
      type: str
  sample:
    - UserPrincipalName: jdoe@contoso.com
      MobileInAD: "+1 425 555 0100"
      MobileInEntra: "+1 425 555 0199"
      OtherMobileInAD: []
      Class: value_differs
      MatchedBy: anchor
      UserPrincipalNameInEntra: jdoe@contoso.com
      DistinguishedName: CN=John Doe,OU=Sync,OU=Corp,DC=contoso,DC=com
      EnabledInAD: true
      ObjectGUID: 6f9619ff-8b86-d011-b42d-00c04fc964ff
      ImmutableId: /xmWb4aLEdC0LQDAT8lk/w==
      SID: S-1-5-21-1004336348-1177238915-682003330-1105
      EntraId: 2b4f7a1c-0000-4000-8000-000000000001
      Note: ""
      HintMatchedBy: ""
      HintUserPrincipalName: null
      HintId: null
differences_truncated:
  description: True when more users differ than RV(differences) lists.
  returned: success
  type: bool
  sample: false
read:
  description:
    - How each directory was read. Returned when O(state_file) is set.
  returned: when O(state_file) is set
  type: dict
  contains:
    state_file:
      description: Absolute path of the state file written.
      type: str
    ad:
      description: V(full) or V(incremental); V(mixed) when some AD sources were read in full and others incrementally.
      type: str
    ad_sources:
      description: V(full) or V(incremental) for each AD source, by name.
      type: dict
    entra:
      description: V(full) or V(incremental).
      type: str
    full_read_reasons:
      description: Why a directory was read in full, in words; empty after an incremental read of both.
      type: list
      elements: str
  sample:
    state_file: /var/lib/dirsync/drift-state.json
    ad: incremental
    ad_sources: {contoso.com: incremental}
    entra: incremental
    full_read_reasons: []
report_csv:
  description: Absolute path of the CSV report written, or null.
  returned: success
  type: str
  sample: /var/lib/dirsync/drift.csv
report_json:
  description: Absolute path of the JSON report written, or null.
  returned: success
  type: str
  sample: /var/lib/dirsync/drift.json
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.entraid.dirsync.plugins.module_utils import _drift, _drift_state, _files
from ansible_collections.entraid.dirsync.plugins.module_utils._ad import ad_argument_spec
from ansible_collections.entraid.dirsync.plugins.module_utils._ad_sources import ADSources
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput
from ansible_collections.entraid.dirsync.plugins.module_utils._graph import graph_argument_spec, graph_client_from_module
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_module


def _check_params(params):
    bases = _drift.check_scope(params)
    if params["max_differences"] < 0:
        raise InvalidInput("max_differences must be 0 or more, got %d." % params["max_differences"])
    return bases


def _prepare_reports(params):
    """Before anything is read: refuse a report path that is not a regular file, create missing directories 0700."""
    for option in ("report_csv", "report_json"):
        if params[option]:
            _files.writable_target(params[option], "report")
            # Also in check mode (the report is the point of the run); existing directories are never changed.
            _files.ensure_directory(params[option], "report")


def work(module):
    params = module.params
    bases = _check_params(params)
    _prepare_reports(params)
    if params["state_file"]:
        _drift_state.check_state_file(params["state_file"])
    include_in_sync = params["report_in_sync"]
    graph = graph_client_from_module(module)
    read = None
    with _drift.collector_paused():
        with ADSources(params, bases) as ad:
            if params["state_file"]:
                ad_users, entra_users, read = _drift_state.read_both(ad, graph, params, params["state_file"], full_read=params["full_read"])
            else:
                ad_users, entra_users = _drift.read_both(ad, graph, params)
            ad_sources, all_bases = ad.describe(), ad.bases
        drift = _drift.pair_and_classify(ad_users, entra_users, include_in_sync=include_in_sync)
        del ad_users, entra_users  # only the rows are needed from here on
    tenant_id = graph.tenant_id
    header = _drift.report_header(drift, tenant_id, all_bases, params["ldap_filter"], include_in_sync, ad_sources=ad_sources)
    # Written in check mode too: the report is the point of the run, and nothing in AD or Entra ID changes.
    csv_path = _drift.write_csv(params["report_csv"], drift.rows) if params["report_csv"] else None
    json_path = _drift.write_json(params["report_json"], header, drift.rows) if params["report_json"] else None
    differing = [row for row in drift.rows if row.Class != "in_sync"]
    limit = params["max_differences"]
    result = {} if read is None else {"read": read}
    result.update({
        "changed": False,
        "tenant_id": tenant_id,
        "ad_sources": ad_sources,
        "counts": drift.counts,
        "ad_users": drift.ad_users,
        "entra_users": drift.entra_users,
        "differences": [_drift.row_dict(row) for row in differing[:limit]],
        "differences_truncated": len(differing) > limit,
        "report_csv": csv_path,
        "report_json": json_path,
    })
    return result


def main():
    argument_spec = graph_argument_spec()
    argument_spec.update(ad_argument_spec())
    argument_spec.update(_drift.scope_argument_spec())
    argument_spec.update(
        report_csv=dict(type="path"),
        report_json=dict(type="path"),
        report_in_sync=dict(type="bool", default=False),
        max_differences=dict(type="int", default=50),
        state_file=dict(type="path"),
        full_read=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    run_module(module, work)


if __name__ == "__main__":
    main()

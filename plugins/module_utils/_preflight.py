# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks that the later steps of the procedure will be allowed, made before its first write.

A run that writes AD, turns the flag on and only then finds that it may not restart the sync job leaves the tenant
half done. Each check here reads only:

- ``token_problems(claims, required, global_admin)``: the permissions (``roles`` of an app-only token, ``scp`` of a
  delegated one) and, when asked, the Global Administrator role (``wids``) of the Graph sign-in.
- ``ad_write_problems(ad, bases, attributes)``: ``allowedAttributesEffective`` of one user under each search base, which
  AD computes from the bind account's effective rights on that object.
- ``cloud_sync_problems(graph, service_principal_id)``: the Cloud Sync jobs of the service principal can be read.
"""

from __future__ import annotations

from ansible_collections.entraid.dirsync.plugins.module_utils._ad import USER_FILTER
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, GraphError, InvalidInput

# Role template id of Global Administrator (the same in every tenant).
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"


def parse_requirements(required):
    """["User.Read.All|User.ReadWrite.All", ...] -> [frozenset of alternatives]; InvalidInput for blank entries."""
    parsed = []
    for item in required or ():
        alternatives = frozenset(part.strip().lower() for part in str(item).split("|") if part.strip())
        if not alternatives:
            raise InvalidInput("graph_permissions has an empty entry; give permission names such as Synchronization.ReadWrite.All "
                               "(alternatives separated by |).")
        parsed.append((item, alternatives))
    return parsed


def token_problems(claims, required, global_admin=False):
    """What the Graph sign-in lacks, as sentences (empty when nothing is missing or the token cannot be read)."""
    if not claims:
        return []
    delegated = "scp" in claims
    granted = {value.lower() for value in (claims.get("scp", "").split() if delegated else claims.get("roles") or ())}
    kind = "delegated permission (scp)" if delegated else "application permission (roles)"
    problems = ["the %s %s is not granted to the sign-in (it has: %s)" % (kind, item.replace("|", " or "),
                                                                          ", ".join(sorted(granted)) or "none")
                for item, alternatives in parse_requirements(required) if not alternatives & granted]
    if global_admin:
        if not delegated:
            problems.append("the sign-in is app-only, but directory synchronization features accept only a signed-in Global "
                            "Administrator")
        elif GLOBAL_ADMINISTRATOR not in (claims.get("wids") or ()):
            problems.append("the signed-in user %s does not hold the Global Administrator role"
                            % (claims.get("upn") or claims.get("preferred_username") or "?"))
    return problems


def ad_write_problems(ad, bases, attributes):
    """For one user under each base: the attributes the bind account may not write (``allowedAttributesEffective``)."""
    problems = []
    wanted = [name for name in attributes if name]
    for base in bases:
        sample = next(iter(ad.paged_search(base, USER_FILTER, ["allowedAttributesEffective"], page_size=1)), None)
        if sample is None:
            continue  # nothing to write under this base
        allowed = {value.lower() for value in sample.get("allowedattributeseffective") or ()}
        missing = [name for name in wanted if name.lower() not in allowed]
        if missing:
            problems.append("the AD bind account may not write %s on %s (under %s)" % (" and ".join(missing), sample["dn"], base))
    return problems


def cloud_sync_problems(graph, service_principal_id):
    """Whether the Cloud Sync jobs of ``service_principal_id`` can be read."""
    if not service_principal_id.strip():
        return ["cloud_sync_service_principal_id is empty"]
    try:
        jobs = graph.get("servicePrincipals/%s/synchronization/jobs" % service_principal_id.strip()).get("value") or []
    except GraphError as error:
        return ["the Cloud Sync jobs of service principal %s cannot be read: %s" % (service_principal_id, error)]
    if not jobs:
        return ["service principal %s has no synchronization job" % service_principal_id]
    return []


def raise_if(problems, what):
    if problems:
        raise DirsyncError("Preflight: %s cannot run: %s. Nothing was changed: fix the permissions, then run again."
                           % (what, "; ".join(problems)), problems=problems)

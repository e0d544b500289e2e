# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Directory synchronization features of a tenant (Graph ``directory/onPremisesSynchronization``).

Shared by ``dirsync_feature``, ``dirsync_feature_info`` and the ``dirsync_feature`` role:

- ``resolve_feature(name)`` / ``resolve_features(mapping)``: accept Graph names
  (``bypassDirSyncOverridesEnabled``), MSOnline names in any case (``BypassDirSyncOverrides``)
  and snake_case (``bypass_dir_sync_overrides``); return Graph names.
- ``read_features(client)``: the tenant's sync object id and every feature, as Graph returns them.
- ``plan_changes(current, desired)``: what differs.
- ``apply_features(client, desired, check_mode)``: read, plan, PATCH the whole ``features`` object.
"""

from __future__ import annotations

import re

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, GraphError, InvalidInput

SYNC_PATH = "directory/onPremisesSynchronization"

# Graph v1.0 onPremisesDirectorySynchronizationFeature properties.
FEATURES = (
    "allowOnPremUpdateOfOnPremisesObjectIdentifierEnabled",
    "blockCloudObjectTakeoverThroughHardMatchEnabled",
    "blockSoftMatchEnabled",
    "bypassDirSyncOverridesEnabled",
    "cloudPasswordPolicyForPasswordSyncedUsersEnabled",
    "concurrentCredentialUpdateEnabled",
    "concurrentOrgIdProvisioningEnabled",
    "deviceWritebackEnabled",
    "directoryExtensionsEnabled",
    "fopeConflictResolutionEnabled",
    "groupWriteBackEnabled",
    "passwordSyncEnabled",
    "passwordWritebackEnabled",
    "quarantineUponProxyAddressesConflictEnabled",
    "quarantineUponUpnConflictEnabled",
    "softMatchOnUpnEnabled",
    "synchronizeUpnForManagedUsersEnabled",
    "unifiedGroupWritebackEnabled",
    "userForcePasswordChangeOnLogonEnabled",
    "userWritebackEnabled",
)

# Names Set-MsolDirSyncFeature used that are not just the Graph name without "Enabled";
# old scripts carry them, so they are accepted too.
MSONLINE_ALIASES = {
    "DuplicateProxyAddressResiliency": "quarantineUponProxyAddressesConflictEnabled",
    "DuplicateUPNResiliency": "quarantineUponUpnConflictEnabled",
    "EnableSoftMatchOnUpn": "softMatchOnUpnEnabled",
    "EnforceCloudPasswordPolicyForPasswordSyncedUsers": "cloudPasswordPolicyForPasswordSyncedUsersEnabled",
}

# Microsoft: "not in use, updating it is not supported".
UNCHANGEABLE = {
    "passwordWritebackEnabled": "Microsoft Graph does not support updating it (password writeback is configured in Entra Connect or Cloud Sync)",
}

DELEGATED_ONLY_HINT = (
    "Use auth_method=password with username and password of a Global Administrator without multi-factor authentication, "
    "or auth_method=device_code with token_cache_path after an entraid.dirsync.sign_in task (works with MFA).")


def msonline_name(graph_name):
    """``bypassDirSyncOverridesEnabled`` -> ``BypassDirSyncOverrides``."""
    base = graph_name[:-len("Enabled")] if graph_name.endswith("Enabled") else graph_name
    return base[0].upper() + base[1:]


def snake_name(graph_name):
    """``bypassDirSyncOverridesEnabled`` -> ``bypass_dir_sync_overrides``."""
    base = graph_name[:-len("Enabled")] if graph_name.endswith("Enabled") else graph_name
    return re.sub(r"(?<!^)(?=[A-Z])", "_", base).lower()


def _key(name):
    # One comparable form for all spellings: no case, no separators, no trailing "enabled".
    key = re.sub(r"[\s_-]", "", name).lower()
    return key[:-len("enabled")] if key.endswith("enabled") else key


_LOOKUP = {_key(name): name for name in FEATURES}
_LOOKUP.update({_key(alias): name for alias, name in MSONLINE_ALIASES.items()})


def valid_names():
    """A readable list of the accepted names, one per feature, in all three spellings."""
    return "; ".join("%s (%s, %s)" % (name, msonline_name(name), snake_name(name)) for name in FEATURES)


def resolve_feature(name):
    """The Graph name for any accepted spelling of a feature; ``InvalidInput`` listing the valid ones otherwise."""
    graph_name = _LOOKUP.get(_key(name)) if isinstance(name, str) else None
    if graph_name is None:
        raise InvalidInput("Unknown directory synchronization feature %r. Use one of these names (Graph, MSOnline or snake_case spelling): %s."
                           % (name, valid_names()), valid_features=list(FEATURES))
    return graph_name


def resolve_features(mapping):
    """``{any spelling: bool-ish}`` -> ``{Graph name: bool}``; two spellings of one feature must agree."""
    resolved = {}
    given_as = {}
    for name, value in (mapping or {}).items():
        graph_name = resolve_feature(name)
        try:
            wanted = boolean(value, strict=True)
        except TypeError:
            raise InvalidInput("Feature %s must be true or false, got %r." % (name, value)) from None
        if graph_name in resolved and resolved[graph_name] != wanted:
            raise InvalidInput("Features %s and %s name the same feature (%s) with different values: keep one of them."
                               % (given_as[graph_name], name, graph_name))
        resolved[graph_name] = wanted
        given_as[graph_name] = name
    return resolved


def require_delegated(client):
    """Refuse app-only sign-ins before any call: the API accepts only a delegated Global Administrator."""
    if not client.is_delegated:
        raise InvalidInput("Directory synchronization features can only be read or changed by a signed-in Global Administrator "
                           "(delegated sign-in); auth_method=%s gives an application (app-only) token, which Microsoft Graph does not "
                           "accept for this API. %s" % (client.auth_method, DELEGATED_ONLY_HINT))


def _forbidden(error, write):
    permission = "OnPremDirectorySynchronization.%s.All" % ("ReadWrite" if write else "Read")
    return GraphError("Graph refused to %s the directory synchronization features (403 %s: %s). The signed-in user must be a Global "
                      "Administrator (the only role Microsoft supports for this API), and the app registration needs the delegated "
                      "permission %s with admin consent." % ("change" if write else "read", error.code or "Forbidden",
                                                             error.graph_message or "access denied", permission),
                      status=error.status, code=error.code, graph_message=error.graph_message, request_id=error.request_id)


def _call(action, write):
    try:
        return action()
    except GraphError as error:
        if error.status == 403:
            raise _forbidden(error, write) from None
        raise


def read_features(client):
    """``(sync object id, {Graph feature name: bool})`` of the signed-in tenant."""
    require_delegated(client)
    objects = (_call(lambda: client.get(SYNC_PATH), write=False) or {}).get("value") or []
    tenant_id = client.tenant_id
    if not objects:
        raise DirsyncError("Tenant %s has no directory synchronization (Graph lists no onPremisesSynchronization object), so it has no "
                           "synchronization features to read or change. Check tenant_id: it must be the tenant Entra Connect or Cloud "
                           "Sync synchronizes to." % tenant_id, tenant_id=tenant_id)
    # One object per tenant; prefer the one whose id is the tenant id when tenant_id is a GUID.
    chosen = next((item for item in objects if str(item.get("id", "")).lower() == str(tenant_id or "").lower()), objects[0])
    return chosen.get("id"), dict(chosen.get("features") or {})


def plan_changes(current, desired):
    """``[{feature, before, after}]`` for each desired feature whose current value differs (None when absent), sorted."""
    return [{"feature": name, "before": current.get(name), "after": value}
            for name, value in sorted(desired.items()) if current.get(name) != value]


def apply_features(client, desired, check_mode):
    """Bring the tenant's features to ``desired`` (Graph names -> bool).

    Returns the module result: ``changed``, ``tenant_id``, ``features`` (after), ``changes`` and
    ``diff`` (before/after features). Refuses to change an unchangeable feature before writing.
    """
    sync_id, before = read_features(client)
    changes = plan_changes(before, desired)
    refused = [change for change in changes if change["feature"] in UNCHANGEABLE]
    if refused:
        name = refused[0]["feature"]
        current = "true" if before.get(name) else "false"
        raise InvalidInput("%s cannot be changed: %s. It is %s in tenant %s: remove it from the requested features, or request %s."
                           % (name, UNCHANGEABLE[name], current, sync_id, current), tenant_id=sync_id, features=before)
    after = dict(before, **{change["feature"]: change["after"] for change in changes})
    if changes and not check_mode:
        # Microsoft's own example sends back the whole features object it read, with the change applied.
        _call(lambda: client.patch("%s/%s" % (SYNC_PATH, sync_id), {"features": after}), write=True)
    return {
        "changed": bool(changes),
        "tenant_id": sync_id,
        "features": after,
        "changes": changes,
        "diff": {"before": {"features": before}, "after": {"features": after}},
    }

"""The lab's control API (plain HTTP JSON on loopback): inspect and seed state, run sync
cycles, set faults, approve device codes. Every body is optional JSON; ``tenant`` defaults
to the first tenant of the configuration.
"""

from .http import HttpError, Response, Router
from .state import FEATURE_NAMES, User, check_options
from .sync_engine import SyncBusy

SYNC_WAIT_TIMEOUT = 3600


def _error(status, message, code="BadRequest"):
    return HttpError(status, code, message, kind="control")


class Control:
    """Routes of the control API over the emulator's parts."""

    def __init__(self, state, sync, faults, identity):
        self.state = state
        self.sync = sync
        self.faults = faults
        self.identity = identity
        self.router = Router()
        add = self.router.add
        add("GET", "/health", self.health)
        add("GET", "/state", self.dump)
        add("GET", "/sync", self.sync_status)
        add("POST", "/sync", self.run_sync)
        add("POST", "/features", self.set_features)
        add("GET", "/options", self.get_options)
        add("POST", "/options", self.set_options)
        add("POST", "/seed/users", self.seed_users)
        add("POST", "/seed/overrides", self.seed_overrides)
        add("POST", "/seed/delete", self.seed_delete)
        add("POST", "/delta/expire", self.expire_delta)
        add("GET", "/faults", self.list_faults)
        add("POST", "/faults", self.add_faults)
        add("DELETE", "/faults", self.clear_faults)
        add("DELETE", r"/faults/(?P<rule_id>\d+)", self.delete_fault)
        add("GET", "/device", self.device_codes)
        add("POST", "/device/approve", self.approve)
        add("POST", "/device/deny", self.deny)

    def _body(self, request):
        body = request.json()
        if not isinstance(body, dict):
            raise _error(400, "The request body must be a JSON object.")
        return body

    def _tenant(self, key):
        if key is None:
            return self.state.default
        tenant = self.state.tenant(key)
        if tenant is None:
            raise _error(404, "No tenant %s: use a tenant id or verified domain from the configuration." % key, "NotFound")
        return tenant

    def health(self, request):
        return Response(200, {"status": "ok", "tenants": [tenant.id for tenant in self.state.tenants]})

    def dump(self, request):
        key = request.arg("tenant")
        tenants = [self._tenant(key)] if key else self.state.tenants
        return Response(200, {"tenants": [tenant.dump() for tenant in tenants]})

    def sync_status(self, request):
        tenant = self._tenant(request.arg("tenant"))
        with tenant.lock:
            runs = [dict(run) for run in tenant.runs]
        return Response(200, {"tenant": tenant.id, "running": self.sync.running(tenant), "runs": runs})

    def run_sync(self, request):
        body = self._body(request)
        tenant = self._tenant(body.get("tenant"))
        try:
            run = self.sync.start(tenant, body.get("type", "delta"))
        except SyncBusy as exc:
            raise _error(409, str(exc), "Busy") from exc
        except ValueError as exc:
            raise _error(400, str(exc)) from exc
        if not body.get("wait", True):
            return Response(202, run)
        return Response(200, self.sync.wait(tenant, run["id"], SYNC_WAIT_TIMEOUT))

    def set_features(self, request):
        """Set features directly, as an administrator could in the portal; no Graph restrictions."""
        body = self._body(request)
        tenant = self._tenant(body.get("tenant"))
        features = body.get("features") or {}
        unknown = sorted(set(features) - set(FEATURE_NAMES))
        if unknown or not all(isinstance(value, bool) for value in features.values()):
            raise _error(400, "features must map known feature names to booleans; unknown: %s" % ", ".join(unknown))
        with tenant.lock:
            tenant.features.update(features)
            return Response(200, {"features": dict(tenant.features)})

    def get_options(self, request):
        tenant = self._tenant(request.arg("tenant"))
        with tenant.lock:
            return Response(200, {"tenant": tenant.id, "options": dict(tenant.options)})

    def set_options(self, request):
        """Choose the lab's behaviour where Microsoft documents none (docs/lab-emulator.md); lasts until the emulator restarts."""
        body = self._body(request)
        tenant = self._tenant(body.get("tenant"))
        try:
            options = check_options(body.get("options") or {})
        except ValueError as exc:
            raise _error(400, str(exc)) from exc
        with tenant.lock:
            tenant.options.update(options)
            return Response(200, {"tenant": tenant.id, "options": dict(tenant.options)})

    def seed_users(self, request):
        body = self._body(request)
        tenant = self._tenant(body.get("tenant"))
        created = []
        with tenant.lock:
            for data in body.get("users") or []:
                if not isinstance(data, dict) or not data.get("userPrincipalName"):
                    raise _error(400, "Each user needs at least a userPrincipalName.")
                private = ("alternateMobilePhones", "dirSyncOverrides", "password", "roles", "mfa_required")
                props = {key: value for key, value in data.items() if key not in private}
                user = User(props, alternate_mobile_phones=data.get("alternateMobilePhones"), overrides=data.get("dirSyncOverrides"),
                            password=data.get("password"), roles=data.get("roles"), mfa_required=data.get("mfa_required", False))
                try:
                    tenant.add_user(user)
                except ValueError as exc:
                    raise _error(409, "Cannot seed %s: %s. Users seeded before this one were kept." % (data["userPrincipalName"], exc),
                                 "Conflict") from exc
                created.append({"id": user.id, "userPrincipalName": user.props["userPrincipalName"]})
        return Response(200, {"created": created})

    def seed_overrides(self, request):
        """Set cloud values and record them as DirSyncOverrides, as MSOnline-era edits of synced users did."""
        body = self._body(request)
        tenant = self._tenant(body.get("tenant"))
        updated = []
        with tenant.lock:
            for item in body.get("overrides") or []:
                user = self._override_target(tenant, item)
                for name in ("mobilePhone", "alternateMobilePhones"):
                    if name in item:
                        user.set(name, item[name])
                        user.overrides.add(name)
                updated.append(user.dump())
        return Response(200, {"updated": updated})

    @staticmethod
    def _override_target(tenant, item):
        if not isinstance(item, dict):
            raise _error(400, "Each override must be an object.")
        if item.get("userPrincipalName"):
            user = tenant.find_user(item["userPrincipalName"])
        else:
            user = tenant.users.get(tenant.by_immutable.get(item.get("onPremisesImmutableId") or "", ""))
        if user is None:
            raise _error(404, "No user for override %r: name a userPrincipalName or onPremisesImmutableId of the tenant "
                              "(run a sync first for AD users)." % item, "NotFound")
        return user

    def seed_delete(self, request):
        body = self._body(request)
        tenant = self._tenant(body.get("tenant"))
        deleted, missing = [], []
        reason = body.get("reason", "changed")
        if reason not in ("changed", "deleted"):
            raise _error(400, "reason must be 'changed' (soft-deleted) or 'deleted' (permanently), not %r." % reason)
        with tenant.lock:
            for key in body.get("ids") or []:
                user = tenant.find_user(key)
                if user is None:
                    missing.append(key)
                else:
                    tenant.remove_user(user.id, reason)
                    deleted.append(user.id)
        return Response(200, {"deleted": deleted, "missing": missing})

    def expire_delta(self, request):
        """Expire every delta token issued so far, as Graph does after 7 days (the next use answers syncStateNotFound)."""
        tenant = self._tenant(self._body(request).get("tenant"))
        with tenant.lock:
            tenant.delta_generation += 1
        return Response(200, {"tenant": tenant.id, "delta_generation": tenant.delta_generation})

    def list_faults(self, request):
        return Response(200, {"rules": self.faults.dump()})

    def add_faults(self, request):
        body = request.json()
        specs = body.get("rules") if isinstance(body, dict) and "rules" in body else [body]
        return Response(200, {"rules": [self.faults.add(spec).dump() for spec in specs]})

    def clear_faults(self, request):
        return Response(200, {"removed": self.faults.remove()})

    def delete_fault(self, request, rule_id):
        removed = self.faults.remove(int(rule_id))
        if not removed:
            raise _error(404, "No fault rule %s: see GET /faults." % rule_id, "NotFound")
        return Response(200, {"removed": removed})

    def device_codes(self, request):
        return Response(200, {"pending": self.identity.devices.pending()})

    def approve(self, request):
        body = self._body(request)
        if not body.get("user_code") or not body.get("userPrincipalName"):
            raise _error(400, "Give user_code and userPrincipalName.")
        self.identity.approve(body["user_code"], body["userPrincipalName"])
        return Response(200, {"approved": body["user_code"]})

    def deny(self, request):
        body = self._body(request)
        if not body.get("user_code"):
            raise _error(400, "Give user_code.")
        self.identity.deny(body["user_code"])
        return Response(200, {"denied": body["user_code"]})

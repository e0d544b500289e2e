# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Device code sign-in on the controller; fills the token cache that modules use with auth_method=device_code.

A module runs without a terminal and cannot show a code to a person, so this runs as an action plugin
on the controller: it shows the code and the URL at once, waits for the sign-in and writes the cache.
"""

from __future__ import annotations

import datetime
import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.entraid.dirsync.plugins.module_utils._errors import AuthError
from ansible_collections.entraid.dirsync.plugins.module_utils._module import run_action
from ansible_collections.entraid.dirsync.plugins.module_utils._graph import graph_argument_spec
from ansible_collections.entraid.dirsync.plugins.module_utils._graph_settings import build_session, resolve_endpoints
from ansible_collections.entraid.dirsync.plugins.module_utils._sign_in import (
    auth_error_from_result,
    build_public_app,
    cached_account,
    check_token_cache_writable,
    graph_scopes,
    load_token_cache,
    save_token_cache,
    sign_in_connection_error,
)

try:
    import requests
except ImportError:
    requests = None

display = Display()

# Device codes usually live 15 minutes; waiting longer than the code lives is pointless.
DEFAULT_WAIT = 900


def _expires_on(result):
    seconds = int(result.get("expires_in") or 0)
    moment = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _claims_account(result):
    claims = result.get("id_token_claims") or {}
    return claims.get("preferred_username") or claims.get("upn") or claims.get("email"), claims.get("tid")


class ActionModule(ActionBase):
    """entraid.dirsync.sign_in (documented in plugins/modules/sign_in.py)."""

    TRANSFERS_FILES = False
    _requires_connection = False
    # Signing in changes nothing Ansible manages: it only fills the operator's token cache.
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        argument_spec = graph_argument_spec()
        argument_spec["token_cache_path"]["required"] = True
        argument_spec["wait_timeout"] = dict(type="int", default=DEFAULT_WAIT)
        params = self.validate_argument_spec(argument_spec=argument_spec)[1]
        return run_action(result, lambda: self._sign_in(params))

    def _sign_in(self, params):
        for name in ("tenant_id", "client_id"):
            if not params.get(name):
                raise AuthError("entraid.dirsync.sign_in needs tenant_id and client_id (env AZURE_TENANT_ID / AZURE_CLIENT_ID): "
                                "the tenant and the app registration (a public client) to sign in with.")
        if params["wait_timeout"] < 1:
            raise AuthError("wait_timeout must be a positive number of seconds, got %d." % params["wait_timeout"])
        cache_path = params["token_cache_path"]
        cache = load_token_cache(cache_path)
        check_token_cache_writable(cache_path)
        session = build_session(params)
        scopes = graph_scopes(params)
        try:
            app = build_public_app(params, cache, session)
            outcome = self._silent(app, scopes, params) or self._device_flow(app, scopes, params)
        except requests.RequestException as exc:
            raise sign_in_connection_error(exc, "authority_host", resolve_endpoints(params)[0], params) from None
        save_token_cache(cache, cache_path)
        outcome["token_cache_path"] = cache_path
        return outcome

    @staticmethod
    def _silent(app, scopes, params):
        """The cached sign-in when it still gives a token without a person; None when a new sign-in is needed."""
        account = cached_account(app, params.get("username"), params["token_cache_path"])
        if account is None:
            return None
        answer = app.acquire_token_silent_with_error(scopes, account)
        if not answer or "access_token" not in answer:
            # Expired or revoked: a new device code sign-in replaces it.
            display.vvv("entraid.dirsync.sign_in: the cached sign-in of %s cannot be used (%s); starting a device code sign-in"
                        % (account.get("username"), (answer or {}).get("error", "no token")))
            return None
        return {"changed": False, "account": account.get("username"), "tenant_id": account.get("realm") or params["tenant_id"],
                "expires_on": _expires_on(answer)}

    @staticmethod
    def _device_flow(app, scopes, params):
        flow = app.initiate_device_flow(scopes=scopes)
        if "user_code" not in flow:
            raise auth_error_from_result(flow, "device_code", params)
        wait = params["wait_timeout"]
        flow["expires_at"] = min(flow.get("expires_at") or time.time() + wait, time.time() + wait)
        # Shown on the controller's screen right away, while this task waits (stderr is not block-buffered).
        display.display("entraid.dirsync.sign_in: %s (waiting up to %d seconds)" % (flow["message"], int(flow["expires_at"] - time.time())),
                        stderr=True, screen_only=True)
        answer = app.acquire_token_by_device_flow(flow)
        if "access_token" not in answer:
            if answer.get("error") in ("authorization_pending", "slow_down"):
                raise AuthError("Nobody completed the device code sign-in within %d seconds: run the task again and enter the code "
                                "shown at %s, or raise wait_timeout." % (wait, flow.get("verification_uri", "the sign-in page")))
            if answer.get("error") == "authorization_declined":
                raise AuthError("The device code sign-in was declined: run the task again and accept it as the user who should sign in.")
            raise auth_error_from_result(answer, "device_code", params)
        account, tenant_id = _claims_account(answer)
        wanted = params.get("username")
        if wanted and account and account.lower() != wanted.lower():
            raise AuthError("The device code sign-in was completed as %s, but username is %s: run the task again and sign in as %s, "
                            "or change username." % (account, wanted, wanted))
        return {"changed": True, "account": account, "tenant_id": tenant_id or params["tenant_id"], "expires_on": _expires_on(answer)}

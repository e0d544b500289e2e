# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Microsoft Graph client shared by every Graph module.

- ``graph_argument_spec()``: the connection options (documented in the ``graph`` doc fragment).
- ``GraphClient``: one per module run; retries, token refresh on 401, paging, clear errors.
  It signs in through a TokenProvider of ``_sign_in.py``; ``_graph_settings.py`` holds what both share
  (endpoints per cloud, the requests session, the retry policy).
"""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlsplit

from ansible.module_utils.basic import env_fallback

from ansible_collections.entraid.dirsync.plugins.module_utils._errors import GraphError
from ansible_collections.entraid.dirsync.plugins.module_utils._graph_settings import (
    AUTH_METHODS,
    CLOUDS,
    DEFAULT_REQUEST_DEADLINE,
    RETRY_STATUSES,
    RetryPolicy,
    build_session,
    first_line,
    resolve_endpoints,
    retry_after_seconds,
)
from ansible_collections.entraid.dirsync.plugins.module_utils._sign_in import build_token_provider, decode_token_claims

try:
    import requests
except ImportError:
    requests = None

REFRESHABLE_401_CODES = ("InvalidAuthenticationToken", "ExpiredAuthenticationToken")


def graph_argument_spec():
    """The connection options every Graph module accepts (merge into the module's own spec)."""
    return dict(
        tenant_id=dict(type="str", no_log=False, fallback=(env_fallback, ["AZURE_TENANT_ID"])),
        client_id=dict(type="str", no_log=False, fallback=(env_fallback, ["AZURE_CLIENT_ID"])),
        auth_method=dict(type="str", default="auto", choices=list(AUTH_METHODS), fallback=(env_fallback, ["ENTRAID_AUTH_METHOD"])),
        client_secret=dict(type="str", no_log=True, fallback=(env_fallback, ["AZURE_CLIENT_SECRET"])),
        client_certificate_path=dict(type="path", fallback=(env_fallback, ["AZURE_CLIENT_CERTIFICATE_PATH"])),
        client_certificate_password=dict(type="str", no_log=True, fallback=(env_fallback, ["AZURE_CLIENT_CERTIFICATE_PASSWORD"])),
        username=dict(type="str", fallback=(env_fallback, ["AZURE_USERNAME"])),
        password=dict(type="str", no_log=True, fallback=(env_fallback, ["AZURE_PASSWORD"])),
        access_token=dict(type="str", no_log=True, fallback=(env_fallback, ["ENTRAID_ACCESS_TOKEN"])),
        managed_identity_client_id=dict(type="str", no_log=False),
        token_cache_path=dict(type="path", no_log=False, fallback=(env_fallback, ["ENTRAID_TOKEN_CACHE"])),
        cloud=dict(type="str", default="global", choices=list(CLOUDS) + ["custom"], fallback=(env_fallback, ["ENTRAID_CLOUD"])),
        authority_host=dict(type="str", fallback=(env_fallback, ["AZURE_AUTHORITY_HOST"])),
        graph_endpoint=dict(type="str", fallback=(env_fallback, ["ENTRAID_GRAPH_ENDPOINT"])),
        ca_bundle=dict(type="path", fallback=(env_fallback, ["ENTRAID_CA_BUNDLE"])),
        validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["ENTRAID_VALIDATE_CERTS"])),
        timeout=dict(type="int", default=30),
        max_retries=dict(type="int", default=5),
        request_deadline=dict(type="int", default=DEFAULT_REQUEST_DEADLINE),
    )


def _permission_hint(method, path):
    lower = path.lower()
    write = method != "GET"
    if lower.startswith("directory/onpremisessynchronization"):
        permission = "OnPremDirectorySynchronization.ReadWrite.All" if write else "OnPremDirectorySynchronization.Read.All"
        return ("Directory sync features need the delegated permission %s and a signed-in Global Administrator; application "
                "(app-only) permissions are not supported." % permission)
    if lower.startswith("serviceprincipals/") and "/synchronization" in lower:
        return "Grant the permission %s (admin consent)." % ("Synchronization.ReadWrite.All" if write else "Synchronization.Read.All")
    if lower.startswith("users"):
        if write:
            return ("Grant User-Phone.ReadWrite.All (or User.ReadWrite.All) with admin consent; a delegated sign-in also needs a role "
                    "such as User Administrator or Privileged Authentication Administrator.")
        return "Grant User.Read.All (admin consent)."
    if lower.startswith("organization"):
        return "Grant Organization.Read.All (admin consent)."
    return "The signed-in identity lacks a Graph permission or directory role for this call: see docs/sign-in.md."


def _hint(status, code, message, method, path):
    text = (message or "").lower()
    if status == 400 and (code == "Request_UnsupportedQuery" or "consistencylevel" in text):
        return "This query is an advanced query: send the header 'ConsistencyLevel: eventual' and $count=true."
    if status == 400 and "on-premises mastered" in text:
        return "The object is synchronized from Active Directory: change the value in AD (the cloud value is read-only)."
    if status == 400:
        return "Graph rejected the request: check the values passed to the task."
    if status == 401:
        return "The token was rejected even after a refresh: check that tenant_id, cloud and graph_endpoint belong together."
    if status == 403:
        return _permission_hint(method, path)
    if status == 404:
        return "The object does not exist: check the id or userPrincipalName and that tenant_id points at the right tenant."
    if status == 409:
        return "The object changed or is busy: run the task again."
    if status >= 500:
        return "Graph failed on its side: run the task again later."
    return "See the Graph error above."


def _parse_error(response):
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        inner = error.get("innerError") or error.get("innererror") or {}
        return error.get("code"), error.get("message"), inner.get("request-id") or response.headers.get("request-id")
    return None, first_line(response.text)[:200] or response.reason, response.headers.get("request-id")


class GraphClient:
    """Microsoft Graph over one requests.Session: retries, 401 refresh, paging, GraphError on failure."""

    def __init__(self, token_provider, graph_endpoint, session, max_retries=5, sleep=time.sleep, log=None,
                 api_version="v1.0", backoff=None, deadline=DEFAULT_REQUEST_DEADLINE, clock=time.monotonic, retry=None):
        self._provider = token_provider
        self.graph_endpoint = graph_endpoint.rstrip("/")
        self.base_url = "%s/%s" % (self.graph_endpoint, api_version)
        self._session = session
        self.retry = retry or RetryPolicy(max_retries=max_retries, deadline=deadline, sleep=sleep, log=log, backoff=backoff, clock=clock)
        self.max_retries = self.retry.max_retries
        self._log = self.retry.log
        self._token = None

    @classmethod
    def from_params(cls, params, **kwargs):
        """A client for ``params``; ``sleep``, ``log``, ``backoff`` and ``clock`` go to the retry policy it shares with the sign-in."""
        retry = RetryPolicy.from_params(params, **{name: kwargs.pop(name) for name in ("sleep", "log", "backoff", "clock") if name in kwargs})
        session = kwargs.pop("session", None) or build_session(params)
        provider = kwargs.pop("token_provider", None) or build_token_provider(params, session, retry=retry)
        return cls(provider, resolve_endpoints(params)[1], session, retry=retry, **kwargs)

    @classmethod
    def from_module(cls, module):
        """Build from a module's params (graph_argument_spec); warns where a setting weakens security."""
        if not module.params.get("validate_certs", True):
            module.warn("validate_certs=false: the TLS certificates of the identity platform and Graph are not checked. Use ca_bundle instead.")
        return cls.from_params(module.params, log=module.debug)

    def sign_in(self):
        """Get a token now (AuthError when the sign-in fails), before any request needs it."""
        if self._token is None:
            self._token = self._provider.get_token()

    @property
    def is_delegated(self):
        """True when calls act as a signed-in user (password, device code, or a token with scp)."""
        return self._provider.is_delegated

    @property
    def auth_method(self):
        return self._provider.auth_method

    @property
    def tenant_id(self):
        return self._provider.tenant_id

    def token_claims(self):
        """The claims of the access token in use (signs in when needed); {} when the token is not a readable JWT."""
        return decode_token_claims(self._provider.get_token())

    def _url(self, path):
        if "://" in path:
            # The bearer token must only ever go to the Graph endpoint (nextLinks are full URLs).
            if urlsplit(path)[:2] != urlsplit(self.graph_endpoint)[:2]:
                raise GraphError("Refusing to send the Graph token to %s, which is not graph_endpoint %s: check graph_endpoint/cloud."
                                 % (path.split("?")[0], self.graph_endpoint))
            return path
        return "%s/%s" % (self.base_url, path.lstrip("/"))

    def _label(self, url):
        path = url.split("?", 1)[0]
        prefix = self.base_url + "/"
        return path[len(prefix):] if path.startswith(prefix) else path

    def request(self, method, path, params=None, json=None, headers=None):
        """Send one Graph request; return the parsed JSON body (None when there is none, e.g. 204)."""
        method = method.upper()
        url = self._url(path)
        label = self._label(url)
        state = self.retry.start()
        refreshed = False
        default_timeout = getattr(self._session, "default_timeout", None)
        while True:
            if self._token is None:
                self._token = self._provider.get_token()
            send_headers = {"Accept": "application/json", "client-request-id": str(uuid.uuid4())}
            send_headers.update(headers or {})
            send_headers["Authorization"] = "Bearer " + self._token
            extra = {}
            if default_timeout:
                # No single answer may be awaited past the request's deadline either.
                extra["timeout"] = max(0.1, min(default_timeout, state.remaining()))
            try:
                response = self._session.request(method, url, params=params, json=json, headers=send_headers, **extra)
            except requests.exceptions.SSLError as exc:
                raise GraphError("Graph %s %s: the TLS certificate of %s could not be verified (%s). Set ca_bundle (ENTRAID_CA_BUNDLE) to the PEM "
                                 "of the issuing CA (corporate TLS inspection proxies need theirs)." % (method, label, self.graph_endpoint, exc)) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if state.wait(None, "Graph %s %s: %s" % (method, label, type(exc).__name__)):
                    continue
                raise GraphError("Graph %s %s could not be reached after %d attempts (gave up %s): %s. Check the network, proxy and graph_endpoint, "
                                 "or raise max_retries/timeout/request_deadline." % (method, label, state.retries + 1, state.gave_up, exc)) from None
            status = response.status_code
            if status == 401 and not refreshed and self._token_rejected(response):
                refreshed = True
                self._log("Graph %s %s: token rejected; refreshing it once" % (method, label))
                self._token = self._provider.get_token(force_refresh=True)
                continue
            if status in RETRY_STATUSES:
                if state.wait(retry_after_seconds(response), "Graph %s %s: HTTP %d" % (method, label, status)):
                    continue
                raise self._error(response, method, label, gave_up=state.gave_up)
            if status >= 400:
                raise self._error(response, method, label)
            return self._parse_body(response, method, label)

    @staticmethod
    def _token_rejected(response):
        code = _parse_error(response)[0]
        return code in REFRESHABLE_401_CODES or "invalid_token" in response.headers.get("WWW-Authenticate", "")

    @staticmethod
    def _parse_body(response, method, label):
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise GraphError("Graph %s %s returned HTTP %d with a body that is not JSON: %s. Check graph_endpoint points at Microsoft Graph."
                             % (method, label, response.status_code, first_line(response.text)[:200]), status=response.status_code) from None

    def _error(self, response, method, label, gave_up=None):
        status = response.status_code
        code, message, request_id = _parse_error(response)
        text = "Graph %s %s returned %d %s: %s" % (method, label, status, code or response.reason, message or "")
        if request_id:
            text += " (request-id %s)" % request_id
        if gave_up is not None:
            hint = ("Graph is %s and still was %s: wait and run again, reduce concurrency (forks, parallel tasks), or raise "
                    "max_retries/request_deadline." % ("throttling this app" if status == 429 else "unavailable", gave_up))
        else:
            hint = _hint(status, code, message, method, label)
        return GraphError("%s. %s" % (text.rstrip(". "), hint), status=status, code=code, graph_message=message, request_id=request_id)

    def get(self, path, params=None, headers=None):
        return self.request("GET", path, params=params, headers=headers)

    def patch(self, path, json, headers=None):
        return self.request("PATCH", path, json=json, headers=headers)

    def post(self, path, json=None, headers=None):
        return self.request("POST", path, json=json, headers=headers)

    def iter_pages(self, path, params=None, headers=None):
        """Yield each page's ``value`` list, following @odata.nextLink and resending ``headers`` on every page."""
        page = self.request("GET", path, params=params, headers=headers)
        while True:
            yield (page or {}).get("value", [])
            next_link = (page or {}).get("@odata.nextLink")
            if not next_link:
                return
            # nextLink already carries the query; ConsistencyLevel is not carried over by Graph.
            page = self.request("GET", next_link, headers=headers)

    def iter_items(self, path, params=None, headers=None):
        """Every item of every page."""
        for page in self.iter_pages(path, params=params, headers=headers):
            yield from page


def graph_client_from_module(module):
    """GraphClient for an AnsibleModule built with graph_argument_spec()."""
    return GraphClient.from_module(module)

# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Sign-in to Microsoft Entra ID with msal, for the Graph client (``_graph.py``) and the ``entraid.dirsync.sign_in`` action.

- ``build_token_provider(params)``: the TokenProvider for ``auth_method``; ``get_token(force_refresh)`` gives a bearer token.
- ``retry_sign_in``: msal calls retried with the Graph client's RetryPolicy.
- ``build_public_app``, ``load_token_cache``, ``check_token_cache_writable``, ``save_token_cache``, ``cached_account``,
  ``auth_error_from_result``, ``sign_in_connection_error``: reused by the sign-in action for the device code flow.
- ``AADSTS_HINTS``: what to do about each AADSTS error code.
"""

from __future__ import annotations

import base64
import json as _json
import os

from ansible_collections.entraid.dirsync.plugins.module_utils import _files
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import AuthError, DirsyncError, InvalidInput
from ansible_collections.entraid.dirsync.plugins.module_utils._graph_settings import (
    AUTH_METHODS,
    RETRY_STATUSES,
    RetryPolicy,
    build_session,
    first_line,
    require_libs,
    resolve_endpoints,
    retry_after_seconds,
)

try:
    import requests
except ImportError:
    requests = None

try:
    import msal
except ImportError:
    msal = None

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
except ImportError:
    x509 = None

DELEGATED_METHODS = ("password", "device_code")

# The identity platform's "transient error, try again" (sent with 429, sometimes with 400).
TRANSIENT_AADSTS = (90033,)

SIGN_IN_HINT = "run the entraid.dirsync.sign_in action (device code sign-in) with the same token_cache_path, client_id and tenant_id first"

# AADSTS code -> what to do. Messages never repeat credentials.
AADSTS_HINTS = {
    50076: "Multi-factor authentication is required, which auth_method=password cannot do: use auth_method=device_code and " + SIGN_IN_HINT + ".",
    50079: "The user must register for multi-factor authentication: sign in once interactively, then use auth_method=device_code.",
    50158: "An external security challenge (Conditional Access) is required: use auth_method=device_code and " + SIGN_IN_HINT + ".",
    53003: "Conditional Access blocked the sign-in: ask an administrator which policy applies, or sign in with device code from an allowed device.",
    50126: "The username or password is wrong: check username/password (AZURE_USERNAME/AZURE_PASSWORD).",
    50034: "The user does not exist in this tenant: check username and tenant_id.",
    50053: "The account is locked after too many failed sign-ins: wait, or ask an administrator to unlock it.",
    50057: "The user account is disabled: use an enabled account.",
    7000215: "The client secret is wrong: set client_secret to the secret's Value (not its Secret ID) from the app registration.",
    7000222: "The client secret has expired: create a new secret in the app registration and update client_secret.",
    700016: "No application with this client_id exists in the tenant: check client_id, tenant_id and cloud.",
    90002: "The tenant was not found: check tenant_id and cloud.",
    900023: "tenant_id is not a valid tenant id or domain: check tenant_id.",
    700027: "The certificate is not accepted: upload its public certificate to the app registration (Certificates & secrets).",
    500011: "Microsoft Graph is unknown to this tenant/cloud: check cloud or graph_endpoint.",
    65001: "The application has no consent for the requested permissions: grant admin consent in the app registration.",
    7000218: "Password and device code sign-in need a public client: enable 'Allow public client flows' in the app registration.",
    70008: "The cached sign-in has expired: " + SIGN_IN_HINT + ".",
    700082: "The cached sign-in has expired after inactivity: " + SIGN_IN_HINT + ".",
    50173: "The cached sign-in was revoked (password changed?): " + SIGN_IN_HINT + ".",
}


def graph_scopes(params):
    """The scope list for Microsoft Graph in the configured cloud."""
    return ["%s/.default" % resolve_endpoints(params)[1]]


def infer_auth_method(params):
    """Return the sign-in method: ``auth_method`` itself, or for ``auto`` the first credential given.

    Precedence for ``auto``: access_token, client_secret, client_certificate_path, username+password,
    token_cache_path (device code sign-in done earlier), managed_identity_client_id.
    Raises ``InvalidInput`` when the chosen method lacks what it needs.
    """
    method = params.get("auth_method") or "auto"
    if method == "auto":
        if params.get("access_token"):
            method = "access_token"
        elif params.get("client_secret"):
            method = "client_secret"
        elif params.get("client_certificate_path"):
            method = "client_certificate"
        elif params.get("username") and params.get("password"):
            method = "password"
        elif params.get("token_cache_path"):
            method = "device_code"
        elif params.get("managed_identity_client_id"):
            method = "managed_identity"
        else:
            raise InvalidInput(
                "No Graph credentials were given. Set one of: client_id+tenant_id with client_secret (AZURE_CLIENT_SECRET) "
                "or client_certificate_path (AZURE_CLIENT_CERTIFICATE_PATH); username+password; token_cache_path after "
                "running entraid.dirsync.sign_in; access_token (ENTRAID_ACCESS_TOKEN); or auth_method=managed_identity.")
    needs = {
        "client_secret": ("tenant_id", "client_id", "client_secret"),
        "client_certificate": ("tenant_id", "client_id", "client_certificate_path"),
        "password": ("tenant_id", "client_id", "username", "password"),
        "device_code": ("tenant_id", "client_id", "token_cache_path"),
        "managed_identity": (),
        "access_token": ("access_token",),
    }
    if method not in needs:
        raise InvalidInput("auth_method must be one of %s, got %r." % (", ".join(AUTH_METHODS), method))
    missing = [name for name in needs[method] if not params.get(name)]
    if missing:
        raise InvalidInput("auth_method=%s needs %s; set %s (module options, module_defaults or environment variables)."
                           % (method, ", ".join(missing), "them" if len(missing) > 1 else "it"))
    return method


def _scrub(text, secrets):
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "********")
    return text


def _secrets(params):
    return [params.get(name) for name in ("client_secret", "client_certificate_password", "password", "access_token")]


def auth_error_from_result(result, auth_method, params=None):
    """Turn an msal error dict (error, error_description, error_codes) into an AuthError that says what to do."""
    result = result or {}
    codes = result.get("error_codes") or []
    description = first_line(result.get("error_description"))
    hint = next((AADSTS_HINTS[code] for code in codes if code in AADSTS_HINTS), None)
    if hint is None:
        hint = "Check tenant_id, client_id, the credentials for auth_method=%s and cloud/authority_host." % auth_method
        if result.get("error") == "invalid_grant" and auth_method == "device_code":
            hint = "The cached sign-in can no longer be used: " + SIGN_IN_HINT + "."
    msg = "Sign-in to Microsoft Entra ID (auth_method=%s) failed: %s%s. %s" % (
        auth_method, result.get("error") or "unknown_error", ": " + description if description else "", hint)
    return AuthError(_scrub(msg, _secrets(params or {})), error=result.get("error"), error_codes=codes)


def sign_in_connection_error(exc, what, url, params, gave_up=None):
    hint = "Check the network, proxy settings and %s." % what
    if requests is not None and isinstance(exc, requests.exceptions.SSLError):
        hint = ("The TLS certificate of %s could not be verified: set ca_bundle (ENTRAID_CA_BUNDLE) to the PEM of the CA that "
                "issued it (corporate TLS inspection proxies need their CA), or validate_certs=false only for tests." % url)
    elif gave_up:
        hint = "It failed on every attempt, %s. %s Raise max_retries/request_deadline/timeout if the network is slow." % (gave_up, hint)
    return AuthError(_scrub("Could not reach the identity platform at %s: %s. %s" % (url, exc, hint), _secrets(params)))


def _transient_sign_in(result, status):
    """True when msal's error ``result`` (with the HTTP ``status`` it came with) is worth retrying."""
    codes = (result or {}).get("error_codes") or []
    return status in RETRY_STATUSES or (result or {}).get("error") == "temporarily_unavailable" or any(
        code in TRANSIENT_AADSTS for code in codes)


def sign_in_fault_error(auth_method, url, status, result, gave_up, params):
    """The AuthError for a sign-in the identity platform kept refusing with a transient fault (429 or 5xx)."""
    result = result or {}
    description = first_line(result.get("error_description"))
    detail = "HTTP %s%s%s" % (status or "error", " " + result["error"] if result.get("error") else "",
                              ": " + description if description else "")
    if status is None or status < 500:
        msg = ("The identity platform throttled the sign-in (auth_method=%s) at %s: %s; it still did %s. Wait and run again, "
               "sign in less often (fewer forks or tenants at once), or raise max_retries/request_deadline." % (auth_method, url, detail, gave_up))
    else:
        msg = ("The identity platform was unavailable for the sign-in (auth_method=%s) at %s: %s; it still was %s. This is a "
               "transient fault on Microsoft's side: wait and run again, or raise max_retries/request_deadline." % (auth_method, url, detail, gave_up))
    return AuthError(_scrub(msg, _secrets(params)), status=status, error=result.get("error"), error_codes=result.get("error_codes") or [])


def retry_sign_in(call, params, auth_method, session, retry, http_cache=None, url=None, what="authority_host"):
    """Run ``call()`` (an msal call) with the retry policy of Graph calls; return its result.

    Retried: connection errors and timeouts, HTTP 429 and 502/503/504 (msal raises MsalServiceError for 5xx and returns
    429 as an error result), and AADSTS90033. msal answers an identical request from its own cache for a while after such
    a fault (400 for 60 s, 429/5xx for Retry-After), so that cache (``http_cache``) is emptied before each retry: the
    retry really reaches the service. Anything else (wrong secret...) is returned or raised at once.
    """
    url = url or resolve_endpoints(params)[0]
    state = retry.start()
    while True:
        if http_cache is not None and state.retries:
            http_cache.clear()
        fault = None
        session.last_response = None
        try:
            result = call()
        except requests.exceptions.SSLError as exc:
            raise sign_in_connection_error(exc, what, url, params) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            fault = exc
            result = None
        except msal.exceptions.MsalServiceError:
            last = getattr(session, "last_response", None)
            status = getattr(last, "status_code", None)
            if status not in RETRY_STATUSES:
                raise
            result = {"error": None}
        else:
            last = getattr(session, "last_response", None)
            status = getattr(last, "status_code", None)
            if not isinstance(result, dict) or "access_token" in result or "error" not in result or not _transient_sign_in(result, status):
                return result
        last = getattr(session, "last_response", None)
        status = None if fault is not None else getattr(last, "status_code", None)
        asked = retry_after_seconds(last) if fault is None and last is not None else None
        what = "Sign-in (auth_method=%s) at %s: %s" % (auth_method, url, type(fault).__name__ if fault is not None else "HTTP %s" % status)
        if state.wait(asked, what):
            continue
        if fault is not None:
            raise sign_in_connection_error(fault, what, url, params, gave_up=state.gave_up) from None
        raise sign_in_fault_error(auth_method, url, status, result if result.get("error") else None, state.gave_up, params) from None


def load_certificate_credential(path, password=None):
    """Read a PEM with a private key and its certificate; return msal's {"private_key", "thumbprint"}."""
    require_libs(cryptography=x509)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise AuthError("Cannot read client_certificate_path %s: %s. Give a readable PEM file with the private key and the certificate." % (path, exc))
    try:
        certificate = x509.load_pem_x509_certificate(data)
    except ValueError:
        raise AuthError("client_certificate_path %s holds no PEM certificate: it must contain the private key AND the certificate "
                        "(-----BEGIN CERTIFICATE-----)." % path) from None
    try:
        key = serialization.load_pem_private_key(data, password.encode("utf-8") if password else None)
    except TypeError:
        raise AuthError("The private key in %s is encrypted: set client_certificate_password (AZURE_CLIENT_CERTIFICATE_PASSWORD)." % path) from None
    except ValueError:
        raise AuthError("Cannot load the private key from %s: it is missing, or client_certificate_password is wrong." % path) from None
    # msal gets the key unencrypted in memory, so the password never travels further.
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    thumbprint = certificate.fingerprint(hashes.SHA1()).hex().upper()  # nosec - SHA-1 thumbprint is what Entra's x5t names
    return {"private_key": pem.decode("ascii"), "thumbprint": thumbprint}


def _app_kwargs(params, session, cache, http_cache=None):
    authority_host = resolve_endpoints(params)[0]
    kwargs = dict(authority="%s/%s" % (authority_host, params["tenant_id"]), http_client=session, token_cache=cache, http_cache=http_cache)
    if (params.get("cloud") or "global") == "custom":
        # Microsoft's instance discovery does not know a custom host (a sovereign stack or the lab).
        kwargs["instance_discovery"] = False
    return kwargs


def _build_app(factory, params, session, cache, retry=None, http_cache=None, auth_method=None, **extra):
    """The msal application; its discovery of the authority (at construction) is retried like any sign-in call."""
    if http_cache is None:
        http_cache = {}
    kwargs = _app_kwargs(params, session, cache, http_cache)
    retry = retry or RetryPolicy.from_params(params)
    try:
        return retry_sign_in(lambda: factory(params["client_id"], **dict(kwargs, **extra)), params,
                             auth_method or params.get("auth_method") or "auto", session, retry, http_cache,
                             url=kwargs["authority"], what="authority_host/tenant_id")
    except (ValueError, RuntimeError, requests.RequestException, msal.exceptions.MsalServiceError) as exc:
        raise sign_in_connection_error(exc, "authority_host/tenant_id", kwargs["authority"], params) from None


def build_public_app(params, cache, session=None, retry=None, http_cache=None):
    """msal.PublicClientApplication for password/device code flows, honouring cloud, ca_bundle, validate_certs."""
    require_libs(requests=requests, msal=msal)
    missing = [name for name in ("tenant_id", "client_id") if not params.get(name)]
    if missing:
        raise InvalidInput("Sign-in needs %s (env AZURE_TENANT_ID / AZURE_CLIENT_ID)." % " and ".join(missing))
    return _build_app(msal.PublicClientApplication, params, session or build_session(params), cache, retry=retry, http_cache=http_cache)


def load_token_cache(path):
    """A msal.SerializableTokenCache loaded from ``path`` (empty when the file does not exist yet)."""
    require_libs(msal=msal)
    cache = msal.SerializableTokenCache()
    path = os.path.expanduser(path)
    if os.path.exists(path):
        try:
            with open(path, "r", encoding="utf-8") as handle:
                cache.deserialize(handle.read())
        except (OSError, ValueError) as exc:
            raise AuthError("Cannot read the token cache %s: %s. Delete it and %s." % (path, exc, SIGN_IN_HINT)) from None
    return cache


def save_token_cache(cache, path):
    """Write ``cache`` to ``path`` atomically with mode 0600 when it changed; return True if written."""
    if not cache.has_state_changed:
        return False
    path = check_token_cache_writable(path)
    try:
        _files.atomic_write(path, lambda handle: handle.write(cache.serialize()), what="token cache")
    except DirsyncError as error:
        raise _token_cache_error(path, error.details.get("reason", error)) from None
    cache.has_state_changed = False
    return True


def _token_cache_error(path, reason):
    return AuthError("Cannot save the token cache (token_cache_path) %s: %s. Make its directory writable by the user running Ansible "
                     "and check free space, or set token_cache_path to a writable location." % (path, reason), token_cache_path=path)


def check_token_cache_writable(path):
    """Create the directory of the token cache ``path`` (mode 0700) and check it is writable; return the absolute path.

    The sign-in action calls this before showing a device code, so nobody signs in for a cache that cannot be saved.
    """
    path = os.path.abspath(os.path.expanduser(path))
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except FileExistsError:
        raise _token_cache_error(path, "%s is a file, not a directory" % directory) from None
    except OSError as exc:
        raise _token_cache_error(path, exc.strerror or exc) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise _token_cache_error(path, "the directory %s is not writable" % directory)
    return path


def decode_token_claims(token):
    """The claims of a JWT access token without verifying it (only to read scp/roles/tid); {} if not a JWT."""
    parts = (token or "").split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = _json.loads(base64.urlsafe_b64decode(payload.encode("ascii")).decode("utf-8"))
    except (ValueError, UnicodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


class TokenProvider:
    """Seam between GraphClient and a sign-in method: ``get_token(force_refresh)`` returns a bearer token."""

    auth_method = None
    is_delegated = False

    def __init__(self, params, session=None, retry=None):
        self.params = params
        self._session = session
        self.retry = retry or RetryPolicy.from_params(params)
        # msal's own record of recent failures; emptied before a retry so that the retry reaches the service.
        self._http_cache = {}

    def _retrying(self, call):
        return retry_sign_in(call, self.params, self.auth_method, self._session, self.retry, self._http_cache)

    @property
    def tenant_id(self):
        return self.params.get("tenant_id")

    def get_token(self, force_refresh=False):
        raise NotImplementedError

    def _checked(self, result):
        if not result or "access_token" not in result:
            raise auth_error_from_result(result, self.auth_method, self.params)
        return result["access_token"]


class AccessTokenProvider(TokenProvider):
    """A ready token: nothing to refresh."""

    auth_method = "access_token"

    def __init__(self, params, retry=None):
        super().__init__(params, retry=retry)
        self._claims = decode_token_claims(params["access_token"])

    @property
    def is_delegated(self):
        # A token that cannot be decoded is left to Graph to judge.
        return "scp" in self._claims or not self._claims

    @property
    def tenant_id(self):
        return self.params.get("tenant_id") or self._claims.get("tid")

    def get_token(self, force_refresh=False):
        if force_refresh:
            raise AuthError("Microsoft Graph rejected the given access_token (expired or invalid) and a ready token cannot be refreshed: "
                            "supply a new token, or use another auth_method so the collection can refresh it.")
        return self.params["access_token"]


class ConfidentialProvider(TokenProvider):
    """Client credentials (app-only) with a secret or a certificate."""

    def __init__(self, params, session, auth_method, retry=None):
        super().__init__(params, session, retry)
        self.auth_method = auth_method
        if auth_method == "client_secret":
            credential = params["client_secret"]
        else:
            credential = load_certificate_credential(params["client_certificate_path"], params.get("client_certificate_password"))
        self._scopes = graph_scopes(params)
        self._app = _build_app(msal.ConfidentialClientApplication, params, session, None, retry=self.retry, http_cache=self._http_cache,
                               auth_method=auth_method, client_credential=credential)

    def get_token(self, force_refresh=False):
        if force_refresh:
            # acquire_token_for_client answers from its cache first; drop the rejected token.
            self._app.remove_tokens_for_client()
        try:
            return self._checked(self._retrying(lambda: self._app.acquire_token_for_client(self._scopes)))
        except (requests.RequestException, msal.exceptions.MsalServiceError) as exc:
            raise sign_in_connection_error(exc, "authority_host", resolve_endpoints(self.params)[0], self.params) from None


def cached_account(app, username, cache_path):
    """The one account of the token cache to use (None when it has none); shared by modules and sign_in."""
    accounts = app.get_accounts(username=username or None)
    if len(accounts) > 1:
        if username:
            # Same name, different accounts: the user was deleted and created again since the sign-in.
            raise AuthError("The token cache %s holds sign-ins of several different accounts named %s: it is stale. "
                            "Delete the file and sign in again." % (cache_path, username))
        names = ", ".join(sorted(account.get("username", "?") for account in accounts))
        raise AuthError("The token cache %s holds sign-ins for several users (%s): set username to choose one." % (cache_path, names))
    return accounts[0] if accounts else None


class PublicProvider(TokenProvider):
    """Delegated: username/password (ROPC) or the token cache written by the sign-in action (device code)."""

    is_delegated = True

    def __init__(self, params, session, auth_method, retry=None):
        super().__init__(params, session, retry)
        self.auth_method = auth_method
        self._cache_path = params.get("token_cache_path")
        self._cache = load_token_cache(self._cache_path) if self._cache_path else msal.SerializableTokenCache()
        self._scopes = graph_scopes(params)
        self._app = build_public_app(params, self._cache, session, retry=self.retry, http_cache=self._http_cache)

    def _account(self):
        return cached_account(self._app, self.params.get("username"), self._cache_path)

    def get_token(self, force_refresh=False):
        try:
            token = self._checked(self._retrying(lambda: self._acquire(force_refresh)))
        except (requests.RequestException, msal.exceptions.MsalServiceError) as exc:
            raise sign_in_connection_error(exc, "authority_host", resolve_endpoints(self.params)[0], self.params) from None
        if self._cache_path:
            save_token_cache(self._cache, self._cache_path)
        return token

    def _acquire(self, force_refresh):
        """msal's result: a token, or the error to judge (transient ones are retried by ``get_token``)."""
        account = self._account()
        result = None
        if account:
            result = self._app.acquire_token_silent_with_error(self._scopes, account, force_refresh=force_refresh)
            if result and ("access_token" in result or _transient_sign_in(result, getattr(self._session, "last_response", None)
                                                                          and self._session.last_response.status_code)):
                return result
        if self.auth_method == "password":
            return self._app.acquire_token_by_username_password(self.params["username"], self.params["password"], self._scopes)
        if result:
            return result
        who = " for %s" % self.params["username"] if self.params.get("username") else ""
        raise AuthError("The token cache %s holds no sign-in%s for client_id %s; a module cannot show a device code: %s."
                        % (self._cache_path, who, self.params["client_id"], SIGN_IN_HINT))


class ManagedIdentityProvider(TokenProvider):
    """System- or user-assigned managed identity of the Azure host running the module."""

    auth_method = "managed_identity"

    def __init__(self, params, session, retry=None):
        super().__init__(params, session, retry)
        self._client = self._new_client()

    def _new_client(self):
        client_id = self.params.get("managed_identity_client_id")
        identity = msal.UserAssignedManagedIdentity(client_id=client_id) if client_id else msal.SystemAssignedManagedIdentity()
        return msal.ManagedIdentityClient(identity, http_client=self._session, http_cache=self._http_cache)

    @property
    def tenant_id(self):
        return self.params.get("tenant_id") or decode_token_claims(self.get_token()).get("tid")

    def get_token(self, force_refresh=False):
        if force_refresh:
            # A fresh client has an empty cache, so the rejected token is not handed out again.
            self._client = self._new_client()
        try:
            return self._checked(self._retrying(lambda: self._client.acquire_token_for_client(resource=resolve_endpoints(self.params)[1])))
        except (ValueError, requests.RequestException, msal.exceptions.MsalServiceError) as exc:
            raise AuthError("Managed identity sign-in failed: %s. Run the module on an Azure host with a managed identity enabled "
                            "(set managed_identity_client_id for a user-assigned one), or use another auth_method." % exc) from None


def build_token_provider(params, session=None, retry=None):
    """The TokenProvider for ``params`` (see ``infer_auth_method``); sign-in faults are retried with ``retry``."""
    method = infer_auth_method(params)
    resolve_endpoints(params)
    retry = retry or RetryPolicy.from_params(params)
    if method == "access_token":
        return AccessTokenProvider(params, retry=retry)
    require_libs(requests=requests, msal=msal)
    session = session or build_session(params)
    if method in ("client_secret", "client_certificate"):
        return ConfidentialProvider(params, session, method, retry=retry)
    if method in DELEGATED_METHODS:
        return PublicProvider(params, session, method, retry=retry)
    return ManagedIdentityProvider(params, session, retry=retry)

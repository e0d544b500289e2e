"""The Microsoft identity platform, as far as MSAL Python needs it against a local authority.

Discovery (openid-configuration, keys, userrealm), the v2.0 token endpoint (client credentials
with secret or certificate assertion, ROPC, device code, refresh token) and the device code
endpoint. Errors use the identity platform's body (``error``, ``error_description`` starting
with ``AADSTSnnnnn:``, ``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id``).
"""

import hmac
import re
import secrets
import string
import threading
import time
from urllib.parse import urlsplit

import jwt

from .http import HttpError, Response, Router
from .tokens import thumbprints

MULTI_TENANT = ("organizations", "common")
OIDC_SCOPES = ("openid", "profile", "offline_access", "email")
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_CODE_LIFETIME = 900


def oauth_error(status, error, aadsts, description, **extra):
    """An identity-platform error: ``error_description`` is ``AADSTSnnnnn: description``."""
    body = {"error_codes": [aadsts]}
    body.update(extra)
    return HttpError(status, error, "AADSTS%d: %s" % (aadsts, description), kind="oauth", extra=body)


def invalid_client_credentials():
    return oauth_error(401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")


class DeviceCodes:
    """Pending device code sign-ins; approved or denied through the control API."""

    def __init__(self):
        self._codes = {}
        self._lock = threading.Lock()

    def create(self, client_id, tenant, resource, scope):
        device_code = secrets.token_urlsafe(32)
        user_code = "".join(secrets.choice(string.ascii_uppercase + string.digits) for dummy in range(9))
        with self._lock:
            self._codes[device_code] = {"device_code": device_code, "user_code": user_code, "client_id": client_id,
                                        "tenant": tenant.id if tenant else None, "resource": resource, "scope": scope,
                                        "expires_at": time.time() + DEVICE_CODE_LIFETIME, "status": "pending", "user": None}
        return device_code, user_code

    def get(self, device_code):
        with self._lock:
            entry = self._codes.get(device_code)
            return dict(entry) if entry else None

    def consume(self, device_code):
        with self._lock:
            self._codes.pop(device_code, None)

    def pending(self):
        now = time.time()
        with self._lock:
            return [{key: entry[key] for key in ("user_code", "client_id", "tenant", "scope", "status")}
                    for entry in self._codes.values() if entry["expires_at"] > now]

    def decide(self, user_code, status, user=None):
        """Approve (with the signed-in ``(tenant_id, user_id)``) or deny a pending code; False if unknown."""
        with self._lock:
            for entry in self._codes.values():
                if entry["user_code"] == user_code.upper() and entry["status"] == "pending":
                    entry["status"] = status
                    entry["user"] = user
                    return True
        return False


class Identity:
    """Routes of the identity platform. ``base()`` is the public https URL (host and port)."""

    def __init__(self, state, tokens, audiences, base, public_host):
        self.state = state
        self.tokens = tokens
        self.audiences = list(audiences)
        self.base = base
        self.public_host = public_host
        self.devices = DeviceCodes()
        self.router = Router()
        seg = r"/(?P<segment>[^/]+)"
        self.router.add("GET", seg + r"/v2\.0/\.well-known/openid-configuration", self.openid_configuration)
        self.router.add("GET", seg + r"/discovery/v2\.0/keys", self.keys)
        self.router.add("GET", r"/common/userrealm/(?P<username>[^/]+)", self.user_realm)
        self.router.add("GET", r"/(?:common|organizations)/discovery/instance", self.instance_discovery)
        self.router.add("POST", seg + r"/oauth2/v2\.0/token", self.token)
        self.router.add("POST", seg + r"/oauth2/v2\.0/devicecode", self.device_code)
        self.router.add("GET", r"/devicelogin", self.device_login_page)

    # Tenants and apps
    def _tenant(self, segment):
        """(tenant or None for organizations/common, segment); 400 AADSTS90002 for an unknown tenant."""
        if segment.lower() in MULTI_TENANT:
            return None
        tenant = self.state.tenant(segment)
        if tenant is None:
            raise oauth_error(400, "invalid_request", 90002, "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are "
                              "signing into the correct cloud. Check with your subscription administrator, this may happen if there are "
                              "no active subscriptions for the tenant." % segment)
        return tenant

    def _app(self, client_id, tenant):
        """(home tenant, app) of a client id; AADSTS700016 when no tenant registers it."""
        if not client_id:
            raise oauth_error(400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
        candidates = [tenant] if tenant is not None else self.state.tenants
        for candidate in candidates:
            app = candidate.apps.get(client_id.lower())
            if app is not None:
                return candidate, app
        where = tenant.display_name if tenant is not None else "organizations"
        raise oauth_error(400, "unauthorized_client", 700016, "Application with identifier '%s' was not found in the directory '%s'. This can "
                          "happen if the application has not been installed by the administrator of the tenant or consented to by any user "
                          "in the tenant. You may have sent your authentication request to the wrong tenant." % (client_id, where))

    def _token_endpoints(self, tenant, segment):
        names = {segment}
        if tenant is not None:
            names.add(tenant.id)
            names.update(tenant.verified_domains)
        return ["%s/%s/oauth2/v2.0/token" % (self.base(), name) for name in names]

    def _authenticate_client(self, form, app, tenant, segment, required):
        """Check the client secret or certificate assertion; raise when missing and ``required``."""
        assertion = form.get("client_assertion")
        secret = form.get("client_secret")
        if assertion:
            if form.get("client_assertion_type") != ASSERTION_TYPE:
                raise oauth_error(400, "invalid_request", 70002, "The client_assertion_type must be '%s'." % ASSERTION_TYPE)
            self._check_assertion(assertion, app, tenant, segment)
        elif secret is not None:
            expected = app.get("client_secret")
            if not expected or not hmac.compare_digest(secret.encode("utf-8"), expected.encode("utf-8")):
                raise oauth_error(401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request "
                                  "is the client secret value, not the client secret ID, for a secret added to app '%s'." % app["client_id"])
        elif required:
            raise invalid_client_credentials()

    def _check_assertion(self, assertion, app, tenant, segment):
        if not app.get("certificate_pem"):
            raise oauth_error(401, "invalid_client", 700027, "Client assertion failed signature validation. No certificate is registered on "
                              "application '%s'." % app["client_id"])
        cert, sha1, sha256 = thumbprints(app["certificate_pem"])
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError as exc:
            raise oauth_error(401, "invalid_client", 50027, "JWT token is invalid or malformed.") from exc
        # MSAL pads its base64url thumbprints; compare without padding.
        if header.get("x5t", sha1).rstrip("=") != sha1 or header.get("x5t#S256", sha256).rstrip("=") != sha256:
            raise oauth_error(401, "invalid_client", 700027, "The certificate with identifier used to sign the client assertion is not "
                              "registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s']"
                              % header.get("x5t#S256", header.get("x5t")))
        try:
            claims = jwt.decode(assertion, cert.public_key(), algorithms=["RS256", "PS256"], audience=self._token_endpoints(tenant, segment),
                                options={"require": ["exp", "aud", "iss", "sub"]})
        except jwt.ExpiredSignatureError as exc:
            raise oauth_error(401, "invalid_client", 700024, "Client assertion is not within its valid time range.") from exc
        except jwt.InvalidAudienceError as exc:
            raise oauth_error(401, "invalid_client", 50012, "Client assertion audience claim does not match Realm issuer.") from exc
        except jwt.PyJWTError as exc:
            raise oauth_error(401, "invalid_client", 700027, "Client assertion failed signature validation. %s" % exc) from exc
        if claims["iss"].lower() != app["client_id"].lower() or claims["sub"].lower() != app["client_id"].lower():
            raise oauth_error(401, "invalid_client", 700021, "Client assertion application identifier doesn't match 'client_id' parameter.")

    def _resource(self, scope, tenant, app_only=False):
        """The one resource the scopes name; AADSTS500011 when it is not Graph."""
        resources = set()
        for item in scope.split():
            if item.lower() in OIDC_SCOPES:
                continue
            if app_only and not item.endswith("/.default"):
                raise oauth_error(400, "invalid_scope", 1002012, "The provided value for scope %s is not valid. Client credential flows must "
                                  "have a scope value with /.default suffixed to the resource identifier (application ID URI)." % item)
            resource = item.rpartition("/")[0] if "/" in item else self.audiences[0]
            resources.add(resource)
        if len(resources) > 1:
            raise oauth_error(400, "invalid_scope", 28000, "Provided value for the input parameter scope is not valid because it contains "
                              "more than one resource. Scope %s is not valid." % scope)
        resource = resources.pop() if resources else self.audiences[0]
        for audience in self.audiences:
            if audience.rstrip("/").lower() == resource.rstrip("/").lower():
                return audience
        where = tenant.display_name if tenant is not None else "organizations"
        raise oauth_error(400, "invalid_resource", 500011, "The resource principal named %s was not found in the tenant named %s. This can "
                          "happen if the application has not been installed by the administrator of the tenant or consented to by any "
                          "user in the tenant. You might have sent your authentication request to the wrong tenant." % (resource, where))

    # Discovery
    def openid_configuration(self, request, segment):
        tenant = self._tenant(segment)
        path_tenant = tenant.id if tenant is not None else segment
        issuer_tenant = tenant.id if tenant is not None else "{tenantid}"
        base = "%s/%s" % (self.base(), path_tenant)
        return Response(200, {
            "issuer": "%s/%s/v2.0" % (self.base(), issuer_tenant),
            "authorization_endpoint": base + "/oauth2/v2.0/authorize",
            "token_endpoint": base + "/oauth2/v2.0/token",
            "device_authorization_endpoint": base + "/oauth2/v2.0/devicecode",
            "end_session_endpoint": base + "/oauth2/v2.0/logout",
            "jwks_uri": base + "/discovery/v2.0/keys",
            "userinfo_endpoint": self.base() + "/oidc/userinfo",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "name", "oid", "preferred_username", "tid", "ver"],
            "tenant_region_scope": "NA", "cloud_instance_name": self.public_host, "cloud_graph_host_name": self.public_host,
            "msgraph_host": self.public_host, "request_uri_parameter_supported": False,
        })

    def keys(self, request, segment):
        self._tenant(segment)
        return Response(200, self.tokens.jwks())

    def instance_discovery(self, request):
        """Microsoft's instance discovery, which MSAL asks for its known hosts (account aliases)."""
        endpoint = request.arg("authorization_endpoint") or ""
        host = urlsplit(endpoint).hostname or self.public_host
        global_hosts = ["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"]
        aliases = global_hosts if host in global_hosts else [host]
        return Response(200, {"tenant_discovery_endpoint": "https://%s/common/v2.0/.well-known/openid-configuration" % host,
                              "api-version": "1.1",
                              "metadata": [{"preferred_network": aliases[0], "preferred_cache": aliases[1] if len(aliases) > 1 else aliases[0],
                                            "aliases": aliases},
                                           {"preferred_network": self.public_host, "preferred_cache": self.public_host,
                                            "aliases": [self.public_host]}]})

    def user_realm(self, request, username):
        domain = username.rpartition("@")[2]
        tenant = self.state.tenant(domain) if domain else None
        if tenant is None:
            return Response(200, {"ver": "1.0", "account_type": "Unknown", "cloud_instance_name": self.public_host})
        return Response(200, {"ver": "1.0", "account_type": "Managed", "domain_name": domain, "cloud_instance_name": self.public_host,
                              "cloud_audience_urn": "urn:federation:MicrosoftOnline"})

    def device_login_page(self, request):
        return Response(200, "Lab device login: approve a code with POST /device/approve on the emulator's control port.\n")

    # Token endpoint
    def token(self, request, segment):
        tenant = self._tenant(segment)
        form = request.form()
        grant = form.get("grant_type")
        handlers = {"client_credentials": self._client_credentials, "password": self._password,
                    DEVICE_GRANT: self._device_grant, "refresh_token": self._refresh}
        if not grant:
            raise oauth_error(400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
        if grant not in handlers:
            raise oauth_error(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '%s'." % grant)
        return Response(200, handlers[grant](request, form, tenant, segment), {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    def _client_credentials(self, request, form, tenant, segment):
        if tenant is None:
            raise oauth_error(400, "invalid_request", 50059, "No tenant-identifying information found in either the request or implied by "
                              "any provided credentials. Use a tenant id or verified domain in the authority, not '%s'." % segment)
        _home, app = self._app(form.get("client_id"), tenant)
        self._authenticate_client(form, app, tenant, segment, required=True)
        resource = self._resource(form.get("scope", ""), tenant, app_only=True)
        body = self.tokens.issue(tenant.id, app, resource, lifetime_override=request.token_lifetime)
        body["scope"] = form.get("scope", "")
        return body

    def _delegated(self, request, form, tenant_id, app, user, resource):
        body = self.tokens.issue(tenant_id, app, resource, user=user, lifetime_override=request.token_lifetime,
                                 client_info=form.get("client_info") == "1")
        body["scope"] = form.get("scope") or "%s/.default" % resource
        return body

    def _public_app(self, form, tenant, segment):
        _home, app = self._app(form.get("client_id"), tenant)
        if not app.get("public_client"):
            # Entra refuses public client flows for an app that does not allow them, asking for a credential.
            self._authenticate_client(form, app, tenant, segment, required=True)
        return app

    def _password(self, request, form, tenant, segment):
        app = self._public_app(form, tenant, segment)
        resource = self._resource(form.get("scope", ""), tenant)
        username = form.get("username") or ""
        if tenant is None:
            user_tenant, user = self.state.tenant_of_upn(username)
        else:
            user_tenant = tenant
            with tenant.lock:
                user = tenant.find_user(username)
        password = form.get("password") or ""
        if user is None or not user.password or not hmac.compare_digest(password.encode("utf-8"), user.password.encode("utf-8")):
            raise oauth_error(400, "invalid_grant", 50126, "Error validating credentials due to invalid username or password.")
        if user.mfa_required:
            raise oauth_error(400, "invalid_grant", 50076, "Due to a configuration change made by your administrator, or because you moved "
                              "to a new location, you must use multi-factor authentication to access '%s'." % resource, suberror="basic_action")
        return self._delegated(request, form, user_tenant.id, app, user, resource)

    def _device_grant(self, request, form, tenant, segment):
        entry = self.devices.get(form.get("device_code") or "")
        if entry is None or entry["client_id"].lower() != (form.get("client_id") or "").lower():
            raise oauth_error(400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
        app = self._public_app(form, tenant, segment)
        if entry["expires_at"] <= time.time():
            self.devices.consume(entry["device_code"])
            raise oauth_error(400, "expired_token", 70020, "The provided value for the input parameter 'device_code' is not valid. This "
                              "device code has expired.")
        if entry["status"] == "pending":
            raise oauth_error(400, "authorization_pending", 70016, "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
        self.devices.consume(entry["device_code"])
        if entry["status"] == "denied":
            raise oauth_error(400, "authorization_declined", 70000, "The user declined the authorization request.")
        tenant_id, user_id = entry["user"]
        if entry["tenant"] not in (None, tenant_id):
            raise oauth_error(400, "invalid_grant", 50020, "User account from identity provider does not exist in tenant '%s' and cannot "
                              "access the application '%s' in that tenant." % (entry["tenant"], app["client_id"]))
        user_tenant = self.state.tenant(tenant_id)
        with user_tenant.lock:
            user = user_tenant.users.get(user_id)
        if user is None:
            raise oauth_error(400, "invalid_grant", 50034, "The user account does not exist in the directory.")
        return self._delegated(request, form, user_tenant.id, app, user, entry["resource"])

    def _refresh(self, request, form, tenant, segment):
        grant = self.tokens.redeem_refresh(form.get("refresh_token") or "")
        if grant is None or grant["client_id"].lower() != (form.get("client_id") or "").lower():
            raise oauth_error(400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
        app = self._public_app(form, tenant, segment)
        user_tenant = self.state.tenant(grant["tenant"])
        if tenant is not None and tenant is not user_tenant:
            raise oauth_error(400, "invalid_grant", 50020, "The refresh token was issued for another tenant.")
        with user_tenant.lock:
            user = user_tenant.users.get(grant["user_id"])
        if user is None:
            raise oauth_error(400, "invalid_grant", 50034, "The user account does not exist in the directory.")
        resource = self._resource(form["scope"], user_tenant) if form.get("scope") else grant["resource"]
        return self._delegated(request, form, user_tenant.id, app, user, resource)

    def device_code(self, request, segment):
        tenant = self._tenant(segment)
        form = request.form()
        app = self._public_app(form, tenant, segment)
        scope = form.get("scope", "")
        resource = self._resource(scope, tenant)
        device_code, user_code = self.devices.create(app["client_id"], tenant, resource, scope)
        uri = "%s/devicelogin" % self.base()
        return Response(200, {"device_code": device_code, "user_code": user_code, "verification_uri": uri,
                              "expires_in": DEVICE_CODE_LIFETIME, "interval": 1,
                              "message": "To sign in, use a web browser to open the page %s and enter the code %s to authenticate." % (uri, user_code)})

    def approve(self, user_code, username):
        """Control API: sign ``username`` in on a pending device code."""
        tenant, user = self.state.tenant_of_upn(username)
        if user is None:
            raise HttpError(404, "NotFound", "No user %s in any tenant: approve with a sign-in account from the configuration." % username,
                            kind="control")
        if not self.devices.decide(user_code, "approved", (tenant.id, user.id)):
            raise HttpError(404, "NotFound", "No pending device code %s: see GET /device." % user_code, kind="control")

    def deny(self, user_code):
        if not self.devices.decide(user_code, "denied"):
            raise HttpError(404, "NotFound", "No pending device code %s: see GET /device." % user_code, kind="control")


def is_identity_path(path):
    """True for paths the identity platform serves (errors there use the OAuth body)."""
    return re.match(r"^/(v1\.0|beta)/", path) is None

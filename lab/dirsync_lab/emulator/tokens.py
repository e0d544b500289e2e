"""Token signing and checking: the emulator's own RSA key, JWKS, access/id/refresh tokens.

Access tokens look like Entra's v1 tokens for Graph (``iss`` https://sts.windows.net/{tid}/),
signed RS256 with a ``kid`` published at ``/{tenant}/discovery/v2.0/keys``.
"""

import base64
import hashlib
import os
import secrets
import threading
import time
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .http import HttpError
from .state import ROLE_TEMPLATE_IDS


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_uint(value):
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def load_or_create_key(path):
    """Load the signing key PEM at ``path``; create a 2048-bit RSA key there if it is missing."""
    if os.path.exists(path):
        with open(path, "rb") as handle:
            return serialization.load_pem_private_key(handle.read(), password=None)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return key


def graph_unauthorized(message):
    return HttpError(401, "InvalidAuthenticationToken", message, headers={"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'})


class TokenService:
    """Issues and validates the tokens of every tenant (one signing key for the whole emulator)."""

    def __init__(self, signing_key_path, token_lifetime=3600):
        self.key = load_or_create_key(signing_key_path)
        public_der = self.key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = b64url(hashlib.sha1(public_der).digest())  # nosec - a key id, not a security hash
        self.token_lifetime = int(token_lifetime)
        # Set by the server once it knows its port: https://<public_host>[:port]
        self.public_base = "https://localhost"
        self._refresh = {}
        self._lock = threading.Lock()

    def jwks(self):
        numbers = self.key.public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": self.kid,
                          "n": b64url_uint(numbers.n), "e": b64url_uint(numbers.e)}]}

    def sign(self, claims):
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid, "typ": "JWT"})

    def issue(self, tenant_id, app, resource, user=None, lifetime_override=None, client_info=False):
        """Return the token endpoint's success body for ``app`` (and ``user`` for delegated flows).

        ``lifetime_override`` (a fault) shortens the real ``exp`` while ``expires_in`` keeps
        reporting the normal lifetime, as a token revoked or expired server-side would look.
        """
        now = int(time.time())
        lifetime = self.token_lifetime
        exp = now + (int(lifetime_override) if lifetime_override is not None else lifetime)
        claims = {
            "aud": resource, "iss": "https://sts.windows.net/%s/" % tenant_id, "iat": now, "nbf": now, "exp": exp,
            "tid": tenant_id, "appid": app["client_id"], "app_displayname": app.get("display_name", ""),
            "ver": "1.0", "uti": b64url(os.urandom(16)),
        }
        if user is None:
            claims.update({"oid": app["service_principal_id"], "sub": app["service_principal_id"], "idtyp": "app",
                           "roles": list(app.get("application_permissions", []))})
            # Directory roles assigned to the app's service principal, as Entra puts them in app tokens.
            roles = [ROLE_TEMPLATE_IDS[name] for name in app.get("directory_roles", []) if name in ROLE_TEMPLATE_IDS]
            if roles:
                claims["wids"] = roles
        else:
            claims.update({"oid": user.id, "sub": user.id, "upn": user.props["userPrincipalName"], "unique_name": user.props["userPrincipalName"],
                           "name": user.props.get("displayName") or "", "idtyp": "user", "scp": " ".join(app.get("delegated_permissions", [])),
                           "wids": user.role_ids()})
        body = {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": self.sign(claims)}
        if user is not None:
            body["refresh_token"] = self._new_refresh(tenant_id, app["client_id"], user.id, resource)
            body["id_token"] = self.sign({
                "aud": app["client_id"], "iss": "%s/%s/v2.0" % (self.public_base, tenant_id), "iat": now, "nbf": now,
                "exp": now + 3600, "tid": tenant_id, "oid": user.id, "sub": user.id, "ver": "2.0",
                "preferred_username": user.props["userPrincipalName"], "name": user.props.get("displayName") or "",
            })
            if client_info:
                body["client_info"] = b64url(('{"uid":"%s","utid":"%s"}' % (user.id, tenant_id)).encode("ascii"))
        return body

    def _new_refresh(self, tenant_id, client_id, user_id, resource):
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._refresh[token] = {"tenant": tenant_id, "client_id": client_id, "user_id": user_id, "resource": resource}
        return token

    def redeem_refresh(self, token):
        """The grant a refresh token stands for (single use, as rotation in Entra), or None."""
        with self._lock:
            return self._refresh.pop(token, None)

    def check_access_token(self, authorization, audiences):
        """Claims of a valid bearer token from an Authorization header, else a Graph 401."""
        if not authorization or not authorization.lower().startswith("bearer ") or not authorization[7:].strip():
            raise graph_unauthorized("Access token is empty.")
        token = authorization[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise graph_unauthorized("IDX14100: JWT is not well formed.") from exc
        if header.get("kid") != self.kid:
            raise graph_unauthorized("Access token validation failure. Invalid signing key.")
        try:
            return jwt.decode(token, self.key.public_key(), algorithms=["RS256"], audience=list(audiences),
                              options={"require": ["exp", "aud", "tid"]}, leeway=0)
        except jwt.ExpiredSignatureError as exc:
            raise graph_unauthorized("Lifetime validation failed, the token is expired.") from exc
        except jwt.InvalidAudienceError as exc:
            raise graph_unauthorized("Access token validation failure. Invalid audience.") from exc
        except jwt.PyJWTError as exc:
            raise graph_unauthorized("Access token validation failure. Signature validation failed.") from exc


def thumbprints(cert_pem):
    """(certificate, sha1 x5t, sha256 x5t#S256) of a PEM certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode("ascii") if isinstance(cert_pem, str) else cert_pem)
    return cert, b64url(cert.fingerprint(hashes.SHA1())), b64url(cert.fingerprint(hashes.SHA256()))  # nosec - certificate thumbprints


def new_guid():
    return str(uuid.uuid4())

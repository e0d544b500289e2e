"""Helpers for test_graph.py: JWT-shaped tokens and a minimal identity platform on the fake server."""

import base64
import json


def make_jwt(claims):
    """An unsigned-looking JWT: enough for code that only reads claims."""
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode("utf-8")).decode("ascii").rstrip("=")
    return "%s.%s.%s" % (part({"alg": "RS256", "typ": "JWT"}), part(claims), "c2ln")


def identity_platform(server, tenant="contoso-tenant", tokens=None, error=None, graph=None):
    """Serve openid-configuration and a token endpoint for ``tenant`` (client credentials); other paths go to ``graph``.

    ``tokens`` is a list of access tokens handed out in order; ``error`` an OAuth error body for the token endpoint.
    """
    issued = list(tokens or [])

    def handler(request):
        if request.path == "/%s/v2.0/.well-known/openid-configuration" % tenant:
            base = "%s/%s" % (server.url, tenant)
            return 200, {}, {"authorization_endpoint": base + "/oauth2/v2.0/authorize", "token_endpoint": base + "/oauth2/v2.0/token",
                             "device_authorization_endpoint": base + "/oauth2/v2.0/devicecode", "issuer": base + "/v2.0"}
        if request.path == "/%s/oauth2/v2.0/token" % tenant:
            if error:
                return 401, {}, error
            return 200, {}, {"token_type": "Bearer", "expires_in": 3600, "access_token": issued.pop(0)}
        return graph(request)

    server.handler = handler
    return server

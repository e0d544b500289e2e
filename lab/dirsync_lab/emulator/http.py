"""HTTP primitives shared by every part of the emulator: requests, responses, routing, errors.

Handlers are plain functions ``handler(request, **url_groups) -> Response``. They raise
``HttpError`` for failures; the server renders it in the format of the part that raised it
(Graph error body, OAuth error body, or plain control-API JSON).
"""

import datetime
import json
import re
import uuid
from urllib.parse import parse_qs, urlsplit


class Request:
    """One parsed HTTP request."""

    def __init__(self, method, target, headers, body, scheme="https", host="localhost"):
        self.method = method.upper()
        split = urlsplit(target)
        self.path = split.path
        self.raw_query = split.query
        # parse_qs keeps "$select" etc. as keys; each value is a list.
        self.query = parse_qs(split.query, keep_blank_values=True)
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body or b""
        self.scheme = scheme
        self.host = host
        self.request_id = str(uuid.uuid4())
        self.client_request_id = self.headers.get("client-request-id") or str(uuid.uuid4())
        # Set by a token_lifetime fault: the real lifetime (seconds) of tokens issued for this request.
        self.token_lifetime = None

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def arg(self, name, default=None):
        """First value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def json(self):
        if not self.body:
            return {}
        try:
            return json.loads(self.body.decode("utf-8"))
        except ValueError as exc:
            raise HttpError(400, "BadRequest", "Invalid JSON body: %s" % exc) from exc

    def form(self):
        """application/x-www-form-urlencoded body as a dict of single values."""
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {k: v[0] for k, v in parsed.items()}

    @property
    def base_url(self):
        return "%s://%s" % (self.scheme, self.host)


class Response:
    """What a handler returns. ``body`` is a dict/list (sent as JSON), bytes, str or None."""

    def __init__(self, status=200, body=None, headers=None):
        self.status = status
        self.body = body
        self.headers = dict(headers or {})

    def encode(self):
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            self.headers.setdefault("Content-Type", "text/plain; charset=utf-8")
            return self.body.encode("utf-8")
        self.headers.setdefault("Content-Type", "application/json; charset=utf-8")
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")


class HttpError(Exception):
    """A failure with an HTTP status, an error code and a message.

    ``kind`` selects the body format: ``graph`` (Graph's error object with innerError and
    request ids), ``oauth`` (``error``/``error_description``/``error_codes`` as the identity
    platform answers) or ``control`` (plain ``{"error": message}``).
    """

    def __init__(self, status, code, message, kind="graph", headers=None, extra=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.kind = kind
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def to_response(self, request):
        now = datetime.datetime.now(datetime.timezone.utc)
        headers = dict(self.headers)
        headers.setdefault("request-id", request.request_id)
        headers.setdefault("client-request-id", request.client_request_id)
        if self.kind == "oauth":
            body = {
                "error": self.code,
                "error_description": self.message,
                "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ"),
                "trace_id": request.request_id,
                "correlation_id": request.client_request_id,
            }
            body.update(self.extra)
        elif self.kind == "control":
            body = {"error": self.message, "code": self.code}
        else:
            body = {
                "error": {
                    "code": self.code,
                    "message": self.message,
                    "innerError": {
                        "date": now.strftime("%Y-%m-%dT%H:%M:%S"),
                        "request-id": request.request_id,
                        "client-request-id": request.client_request_id,
                    },
                }
            }
        return Response(self.status, body, headers)


class Router:
    """Maps (method, path regex) to handlers. Patterns are full-match, case-insensitive."""

    def __init__(self):
        self._routes = []

    def add(self, method, pattern, handler):
        self._routes.append((method.upper(), re.compile(pattern, re.IGNORECASE), handler))

    def route(self, method, pattern):
        """Decorator form of ``add``."""
        def decorate(handler):
            self.add(method, pattern, handler)
            return handler
        return decorate

    def include(self, other):
        self._routes.extend(other._routes)  # pylint: disable=protected-access

    def dispatch(self, request):
        """Return ``(handler, groups)``; raise HttpError 404/405 when nothing matches."""
        path_matched = False
        for method, regex, handler in self._routes:
            match = regex.fullmatch(request.path)
            if not match:
                continue
            path_matched = True
            if method == request.method:
                return handler, match.groupdict()
        if path_matched:
            raise HttpError(405, "Request_BadRequest", "The HTTP method '%s' is not allowed for %s." % (request.method, request.path))
        raise HttpError(404, "Request_ResourceNotFound", "Resource not found for the segment '%s'." % request.path.rsplit("/", 1)[-1])

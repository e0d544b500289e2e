"""Sign-in faults are retried like Graph calls and named truthfully; every request is bounded by request_deadline."""

import pytest
import requests
import yaml

from ansible_collections.entraid.dirsync.plugins.doc_fragments.graph import ModuleDocFragment
from ansible_collections.entraid.dirsync.plugins.module_utils import _graph, _graph_settings, _sign_in
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import AuthError, GraphError, InvalidInput

from ansible_collections.entraid.dirsync.tests.unit.plugins.module_utils.graph_fakes import make_jwt

SECRET = "s3cr3t-Value~xyz"
TENANT = "contoso-tenant"
TOKEN_PATH = "/%s/oauth2/v2.0/token" % TENANT
DISCOVERY_PATH = "/%s/v2.0/.well-known/openid-configuration" % TENANT
OK = (200, {}, {"value": [{"id": "1"}]})
TRANSIENT = {"error": "temporarily_unavailable", "error_codes": [90033],
             "error_description": "AADSTS90033: A transient error has occurred. Please try again.\r\nTrace ID: t"}


class Clock:
    """A fake clock that sleeping moves forward."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def token_answer():
    return 200, {}, {"token_type": "Bearer", "expires_in": 3600, "access_token": make_jwt({"tid": TENANT, "roles": ["User.Read.All"]})}


def platform(server, token_answers, discovery_answers=()):
    """The identity platform on ``server``: discovery (after ``discovery_answers``), the token endpoint answering
    ``token_answers`` in order (then tokens), and Graph answering OK."""
    tokens = list(token_answers)
    discoveries = list(discovery_answers)

    def handler(request):
        if request.path == DISCOVERY_PATH:
            if discoveries:
                return discoveries.pop(0)
            base = "%s/%s" % (server.url, TENANT)
            return 200, {}, {"authorization_endpoint": base + "/oauth2/v2.0/authorize", "token_endpoint": base + "/oauth2/v2.0/token",
                             "issuer": base + "/v2.0"}
        if request.path == TOKEN_PATH:
            return tokens.pop(0) if tokens else token_answer()
        return OK

    server.handler = handler


def params(server, pki, **extra):
    values = dict(cloud="custom", authority_host=server.url, graph_endpoint=server.url, ca_bundle=pki["ca"], tenant_id=TENANT,
                  client_id="app-1", client_secret=SECRET, timeout=10, max_retries=3)
    values.update(extra)
    return values


def client(server, pki, clock=None, **extra):
    clock = clock or Clock()
    graph = _graph.GraphClient.from_params(params(server, pki, **extra), sleep=clock.sleep, clock=clock)
    return graph, clock


def token_requests(server):
    return [r for r in server.requests if r.path == TOKEN_PATH]


# --- transient faults are retried until they pass --------------------------------------------

def test_token_endpoint_503_is_retried_and_each_retry_reaches_the_service(https_server, pki):
    # msal keeps a 5xx answer for a while and would hand it back to an identical request: the retry must not see that copy.
    platform(https_server, [(503, {}, b"Service Unavailable"), (503, {}, b"")])
    graph, clock = client(https_server, pki)
    assert graph.get("users") == OK[2]
    assert len(token_requests(https_server)) == 3 and len(clock.sleeps) == 2


def test_token_endpoint_429_waits_for_retry_after(https_server, pki):
    platform(https_server, [(429, {"Retry-After": "7"}, TRANSIENT)])
    graph, clock = client(https_server, pki)
    assert graph.get("users") == OK[2]
    assert clock.sleeps == [7.0] and len(token_requests(https_server)) == 2


def test_aadsts90033_with_http_400_is_retried(https_server, pki):
    # msal remembers a 400 for 60 s; the retry still goes to the service.
    platform(https_server, [(400, {}, TRANSIENT)])
    graph, clock = client(https_server, pki)
    assert graph.get("users") == OK[2]
    assert len(token_requests(https_server)) == 2 and len(clock.sleeps) == 1


def test_dropped_connection_at_the_token_endpoint_is_retried(https_server, pki):
    platform(https_server, [])
    graph, clock = client(https_server, pki)
    session = graph._session
    real = session.request
    drops = [requests.ConnectionError("Connection aborted: RemoteDisconnected")]

    def flaky(method, url, **kwargs):
        if url.endswith(TOKEN_PATH) and drops:
            raise drops.pop(0)
        return real(method, url, **kwargs)

    session.request = flaky
    assert graph.get("users") == OK[2]
    assert len(clock.sleeps) == 1 and len(token_requests(https_server)) == 1


def test_authority_discovery_503_is_retried(https_server, pki):
    platform(https_server, [], discovery_answers=[(503, {}, b"")])
    graph, clock = client(https_server, pki)
    assert graph.get("users") == OK[2]
    assert len(clock.sleeps) == 1


# --- faults that last are named, not blamed on the credentials -------------------------------

def test_lasting_503_names_the_outage_not_the_credentials(https_server, pki):
    platform(https_server, [(503, {}, b"")] * 10)
    graph, clock = client(https_server, pki, max_retries=2)
    with pytest.raises(AuthError) as caught:
        graph.get("users")
    message = str(caught.value)
    assert message.startswith("The identity platform was unavailable for the sign-in (auth_method=client_secret) at %s: HTTP 503"
                              % https_server.url)
    assert "after 2 retries (max_retries)" in message and "tenant_id" not in message
    assert len(token_requests(https_server)) == 3 and caught.value.details["status"] == 503


def test_lasting_429_says_throttled_not_check_tenant_id(https_server, pki):
    platform(https_server, [(429, {"Retry-After": "1"}, TRANSIENT)] * 10)
    graph, clock = client(https_server, pki, max_retries=2)
    with pytest.raises(AuthError) as caught:
        graph.get("users")
    message = str(caught.value)
    assert message.startswith("The identity platform throttled the sign-in (auth_method=client_secret)")
    assert "temporarily_unavailable: AADSTS90033" in message and "Check tenant_id" not in message
    assert "Trace ID" not in message and SECRET not in message
    assert clock.sleeps == [1.0, 1.0]


def test_lasting_dropped_connections_say_unreachable_after_retries(https_server, pki):
    platform(https_server, [])
    graph, clock = client(https_server, pki, max_retries=2)
    session = graph._session
    real = session.request

    def dropping(method, url, **kwargs):
        if url.endswith(TOKEN_PATH):
            raise requests.ConnectionError("Connection aborted: RemoteDisconnected")
        return real(method, url, **kwargs)

    session.request = dropping
    with pytest.raises(AuthError, match="Could not reach the identity platform at .*failed on every attempt, after 2 retries"):
        graph.get("users")
    assert len(clock.sleeps) == 2


def test_wrong_secret_is_not_retried(https_server, pki):
    platform(https_server, [(401, {}, {"error": "invalid_client", "error_codes": [7000215],
                                       "error_description": "AADSTS7000215: Invalid client secret provided."})])
    graph, clock = client(https_server, pki)
    with pytest.raises(AuthError, match="secret's Value"):
        graph.get("users")
    assert clock.sleeps == [] and len(token_requests(https_server)) == 1


# --- request_deadline ------------------------------------------------------------------------

def test_deadline_caps_total_waiting_on_retry_after_for_graph(https_server, pki):
    clock = Clock()
    session = _graph_settings.build_session({"ca_bundle": pki["ca"], "timeout": 10})
    provider = _sign_in.AccessTokenProvider({"access_token": "t0ken"})
    graph = _graph.GraphClient(provider, https_server.url, session, max_retries=5, sleep=clock.sleep, clock=clock, deadline=100)
    throttled = (429, {"Retry-After": "300"}, {"error": {"code": "TooManyRequests", "message": "Too many requests"}})
    https_server.respond([(429, {"Retry-After": "30"}, throttled[2])] * 3 + [throttled] * 3)
    with pytest.raises(GraphError) as caught:
        graph.get("users")
    # 30 + 30 + 30, then Graph asks for 300 s more: 5 retries of 300 s would have been 25 minutes.
    assert clock.sleeps == [30.0, 30.0, 30.0] and sum(clock.sleeps) <= 100
    assert "after 3 retries, and waiting 300.0 s more as Retry-After asks would pass request_deadline (100 s)" in str(caught.value)


def test_deadline_caps_sign_in_waiting(https_server, pki):
    platform(https_server, [(429, {"Retry-After": "40"}, TRANSIENT)] * 10)
    graph, clock = client(https_server, pki, max_retries=5, request_deadline=100)
    with pytest.raises(AuthError, match="throttled the sign-in.*after 2 retries, and waiting 40.0 s more as Retry-After asks "
                                        r"would pass request_deadline \(100 s\)"):
        graph.get("users")
    assert clock.sleeps == [40.0, 40.0]


def test_each_answer_is_awaited_at_most_until_the_deadline(https_server, pki):
    clock = Clock()
    session = _graph_settings.build_session({"ca_bundle": pki["ca"], "timeout": 30})
    seen = []
    real = session.request

    def recording(method, url, **kwargs):
        seen.append(kwargs.get("timeout"))
        clock.now += 8  # each answer takes 8 s
        return real(method, url, **kwargs)

    session.request = recording
    https_server.respond([(503, {}, b"")] * 2 + [OK])
    graph = _graph.GraphClient(_sign_in.AccessTokenProvider({"access_token": "t0ken"}), https_server.url, session,
                               sleep=clock.sleep, clock=clock, deadline=20, backoff=_graph_settings.BackoffIterator(1, 1, 1, jitter=False))
    assert graph.get("users") == OK[2]
    assert seen[0] == 20 and seen[1] == pytest.approx(11) and seen[2] == pytest.approx(2)


def test_request_deadline_is_an_option_with_a_documented_default():
    spec = _graph.graph_argument_spec()
    assert spec["request_deadline"] == {"type": "int", "default": 300}
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]["request_deadline"]
    assert documented["type"] == "int" and documented["default"] == 300


# --- options checked before anything connects ------------------------------------------------

@pytest.mark.parametrize("name, value, expected", [
    ("timeout", -1, "timeout must be a number of seconds of at least 1, got -1."),
    ("timeout", 0, "timeout must be a number of seconds of at least 1, got 0."),
    ("max_retries", -1, "max_retries must be 0 or more, got -1."),
    ("request_deadline", 0, "request_deadline must be a number of seconds of at least 1, got 0."),
])
def test_bad_numbers_are_refused_before_connecting(https_server, pki, name, value, expected):
    platform(https_server, [])
    with pytest.raises(InvalidInput) as caught:
        _graph.GraphClient.from_params(params(https_server, pki, **{name: value}))
    assert str(caught.value) == expected
    assert https_server.requests == []

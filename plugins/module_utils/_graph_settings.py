# -*- coding: utf-8 -*-
# Copyright (c) entraid.dirsync contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the sign-in (``_sign_in.py``) and the Graph client (``_graph.py``) share, configured from the connection options.

- ``resolve_endpoints(params)``: the authority host and Graph endpoint of the cloud.
- ``build_session(params)``: the requests.Session both send through (ca_bundle, validate_certs, timeout).
- ``RetryPolicy``: when a call to the identity platform or Graph is retried, and when it gives up.
"""

from __future__ import annotations

import email.utils
import os
import random
import time
from urllib.parse import urlsplit

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.entraid.dirsync.plugins.module_utils._errors import InvalidInput

try:
    import requests
except ImportError:
    requests = None

AUTH_METHODS = ("auto", "client_secret", "client_certificate", "password", "device_code", "managed_identity", "access_token")

# cloud -> (authority host, Graph endpoint)
CLOUDS = {
    "global": ("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    "usgov": ("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    "usgov_dod": ("https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    "china": ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}

RETRY_STATUSES = (429, 502, 503, 504)
# A Retry-After beyond this is treated as this: a broken header must not hang a play for hours.
MAX_RETRY_AFTER = 300.0
# Seconds one request (to Graph, or one sign-in) may take in all, retries and their waits included.
DEFAULT_REQUEST_DEADLINE = 300


def check_graph_params(params):
    """Check the numeric connection options before anything connects (a negative timeout would surface as a network error)."""
    for name, low, what in (("timeout", 1, "a number of seconds of at least 1"), ("max_retries", 0, "0 or more"),
                            ("request_deadline", 1, "a number of seconds of at least 1")):
        value = params.get(name)
        if value is not None and value < low:
            raise InvalidInput("%s must be %s, got %s." % (name, what, value))


def _https_url(value, option):
    url = value.strip().rstrip("/")
    if not url.startswith("https://") or not urlsplit(url).hostname:
        raise InvalidInput("%s must be an https:// URL such as https://login.microsoftonline.com, got %r." % (option, value))
    return url


def resolve_endpoints(params):
    """Return ``(authority_host, graph_endpoint)`` for ``params['cloud']``, both without a trailing slash."""
    cloud = params.get("cloud") or "global"
    if cloud == "custom":
        missing = [name for name in ("authority_host", "graph_endpoint") if not params.get(name)]
        if missing:
            raise InvalidInput("cloud=custom needs %s (env AZURE_AUTHORITY_HOST / ENTRAID_GRAPH_ENDPOINT)." % " and ".join(missing))
        return _https_url(params["authority_host"], "authority_host"), _https_url(params["graph_endpoint"], "graph_endpoint")
    if cloud not in CLOUDS:
        raise InvalidInput("cloud must be one of %s, got %r." % (", ".join(list(CLOUDS) + ["custom"]), cloud))
    endpoints = CLOUDS[cloud]
    # Azure tooling often exports AZURE_AUTHORITY_HOST; only a conflicting value is a mistake.
    for option, expected in zip(("authority_host", "graph_endpoint"), endpoints):
        given = params.get(option)
        if given and given.strip().rstrip("/").lower() != expected:
            raise InvalidInput("%s=%s does not belong to cloud=%s (which uses %s): set cloud=custom to use your own endpoints, or remove %s."
                               % (option, given, cloud, expected, option))
    return endpoints


def require_libs(**libs):
    """Raise InvalidInput for the first of ``libs`` (name=imported module, None when missing) that is not installed."""
    for name, lib in libs.items():
        if lib is None:
            raise InvalidInput(missing_required_lib(name))


def build_session(params):
    """A requests.Session that applies ca_bundle/validate_certs and timeout to EVERY request.

    REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override ``Session.verify`` inside requests; only a
    per-request ``verify=`` wins over them, so it is injected here (for msal too).
    """
    require_libs(requests=requests)
    check_graph_params(params)
    verify = True
    if not params.get("validate_certs", True):
        verify = False
    elif params.get("ca_bundle"):
        verify = os.path.expanduser(params["ca_bundle"])
        if not os.path.isfile(verify):
            raise InvalidInput("ca_bundle %s does not exist or is not a file: give the path of a PEM file with the CA certificate(s)." % verify)
    timeout = params.get("timeout") or 30
    session = requests.Session()
    session.verify = verify
    session.headers["User-Agent"] = "entraid.dirsync"
    send = session.request

    def request(method, url, **kwargs):
        kwargs["verify"] = verify
        kwargs.setdefault("timeout", timeout)
        session.last_response = None
        # Kept so the sign-in retries can read the status and Retry-After that msal does not pass on.
        session.last_response = send(method, url, **kwargs)
        return session.last_response

    session.request = request
    session.default_timeout = timeout
    session.last_response = None
    return session


def first_line(text):
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


class RetryPolicy:
    """When to retry a call to the identity platform or Graph, how long to wait, and when to give up.

    Shared by GraphClient and the sign-in providers: at most ``max_retries`` retries, waits from ``backoff`` or the
    service's Retry-After, and never waiting past ``deadline`` seconds from the start of the request.
    """

    def __init__(self, max_retries=5, deadline=DEFAULT_REQUEST_DEADLINE, sleep=time.sleep, log=None, backoff=None, clock=time.monotonic):
        self.max_retries = max_retries
        self.deadline = deadline
        self.sleep = sleep
        self.log = log or (lambda message: None)
        self.backoff = backoff or BackoffIterator()
        self.clock = clock

    @classmethod
    def from_params(cls, params, **kwargs):
        check_graph_params(params)
        max_retries, deadline = params.get("max_retries"), params.get("request_deadline")
        return cls(max_retries=5 if max_retries is None else max_retries,
                   deadline=DEFAULT_REQUEST_DEADLINE if deadline is None else deadline, **kwargs)

    def start(self):
        """The retry state of one request."""
        return RetryState(self)


class RetryState:
    """Retries of one request: ``wait(asked)`` sleeps before the next attempt, or returns False and sets ``gave_up``."""

    def __init__(self, policy):
        self.policy = policy
        self.started = policy.clock()
        self.retries = 0
        self.gave_up = None
        self._delays = iter(policy.backoff)

    def remaining(self):
        return self.policy.deadline - (self.policy.clock() - self.started)

    def wait(self, asked=None, what="request"):
        """Sleep before retry number ``retries + 1`` (``asked``: the service's Retry-After); False when the policy says stop."""
        policy = self.policy
        if self.retries >= policy.max_retries:
            self.gave_up = "after %d retries (max_retries)" % self.retries
            return False
        delay = next(self._delays)
        if asked is not None:
            delay = asked
        if delay > self.remaining():
            self.gave_up = ("after %d retries, and waiting %.1f s more%s would pass request_deadline (%d s)"
                            % (self.retries, delay, " as Retry-After asks" if asked is not None else "", policy.deadline))
            return False
        self.retries += 1
        policy.log("%s; retry %d in %.1fs" % (what, self.retries, delay))
        policy.sleep(delay)
        return True


class BackoffIterator:
    """Exponential delays: delay, delay*backoff, ... capped at max_delay; with jitter each is uniform in [0, cap]."""

    def __init__(self, delay=1.0, backoff=2.0, max_delay=60.0, jitter=True):
        self.delay = delay
        self.backoff = backoff
        self.max_delay = max_delay
        self.jitter = jitter

    def __iter__(self):
        current = self.delay
        while True:
            capped = min(current, self.max_delay)
            yield random.uniform(0, capped) if self.jitter else capped
            current = current * self.backoff


def retry_after_seconds(response, now=None):
    """Seconds asked for by Retry-After (seconds, fractional seconds, or an HTTP date); None if absent/unusable."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)

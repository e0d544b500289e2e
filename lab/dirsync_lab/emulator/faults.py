"""Deterministic faults on demand for the HTTPS server (identity platform and Graph).

A rule: ``{"match": {"method": "GET", "path": "regex"}, "action": "status"|"latency"|"drop"|"token_lifetime",
"status": 429, "retry_after": "2.128" | null, "seconds": 1.5, "every": N | "rate": 0.2, "seed": 1, "count": max}``.
``every: N`` fires on the Nth, 2Nth, ... matching request; ``rate`` fires with that probability from a
generator seeded with ``seed`` (same sequence every run); neither fires on every match. ``count`` caps
how often a rule fires. ``seconds`` is the delay of ``latency`` and the real lifetime of tokens issued
while a ``token_lifetime`` rule is active.
"""

import itertools
import random
import re
import threading

from .http import HttpError

ACTIONS = ("status", "latency", "drop", "token_lifetime")
STATUS_CODES = {429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout"}


def _bad(message):
    return HttpError(400, "BadRequest", message, kind="control")


class FaultRule:
    """One rule with its own counters."""

    def __init__(self, rule_id, spec):
        if not isinstance(spec, dict):
            raise _bad("A fault rule must be a JSON object.")
        self.id = rule_id
        match = spec.get("match") or {}
        self.method = (match.get("method") or "").upper() or None
        try:
            self.path = re.compile(match.get("path") or ".*")
        except re.error as exc:
            raise _bad("match.path is not a valid regular expression: %s" % exc) from exc
        self.action = spec.get("action")
        if self.action not in ACTIONS:
            raise _bad("action must be one of %s, not %r." % (", ".join(ACTIONS), self.action))
        self.status = int(spec.get("status") or 503)
        retry_after = spec.get("retry_after")
        self.retry_after = None if retry_after is None else str(retry_after)
        self.seconds = float(spec.get("seconds") or 0)
        if self.action in ("latency", "token_lifetime") and "seconds" not in spec:
            raise _bad("A %s rule needs 'seconds'." % self.action)
        self.every = int(spec["every"]) if spec.get("every") else None
        self.rate = float(spec["rate"]) if spec.get("rate") is not None else None
        self.seed = spec.get("seed", 0)
        self._random = random.Random(self.seed)
        self.count = int(spec["count"]) if spec.get("count") is not None else None
        self.matched = 0
        self.fired = 0
        self.spec = spec

    def matches(self, request):
        return (self.method is None or self.method == request.method) and self.path.search(request.path) is not None

    def decide(self):
        """Count one matching request; True if the rule fires on it. Caller holds the lock."""
        self.matched += 1
        if self.count is not None and self.fired >= self.count:
            return False
        if self.every is not None:
            fire = self.matched % self.every == 0
        elif self.rate is not None:
            fire = self._random.random() < self.rate
        else:
            fire = True
        if fire:
            self.fired += 1
        return fire

    def dump(self):
        data = dict(self.spec)
        data.update({"id": self.id, "matched": self.matched, "fired": self.fired})
        return data

    def error(self, kind):
        """The HttpError a ``status`` rule answers with, in the format of the part hit (``graph`` or ``oauth``)."""
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else {}
        if kind == "oauth":
            return HttpError(self.status, "temporarily_unavailable", "AADSTS90033: A transient error has occurred. Please try again.",
                             kind="oauth", headers=headers, extra={"error_codes": [90033]})
        message = "Injected fault: HTTP %d from the lab's fault rule %d." % (self.status, self.id)
        return HttpError(self.status, STATUS_CODES.get(self.status, "Fault"), message, headers=headers)


class Faults:
    """The active rules, evaluated in the order they were added."""

    def __init__(self):
        self._rules = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, spec):
        rule = FaultRule(next(self._ids), spec)
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove(self, rule_id=None):
        """Remove one rule, or all with ``None``; the number removed."""
        with self._lock:
            before = len(self._rules)
            self._rules = [rule for rule in self._rules if rule_id is not None and rule.id != rule_id]
            return before - len(self._rules)

    def dump(self):
        with self._lock:
            return [rule.dump() for rule in self._rules]

    def firing(self, request):
        """The rules that fire on ``request``."""
        with self._lock:
            return [rule for rule in self._rules if rule.matches(request) and rule.decide()]

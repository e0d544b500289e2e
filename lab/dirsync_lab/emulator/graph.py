"""Microsoft Graph v1.0, the part the collection uses: users, organization, directory
synchronization features and Cloud Sync jobs, with token and permission checks.

The tenant of a request is the ``tid`` of its access token.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import uuid
from urllib.parse import quote, unquote

from . import state as state_module
from .http import HttpError, Response, Router

READ_USERS = ("User.Read.All", "User.ReadBasic.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All")
WRITE_USERS = ("User.ReadWrite.All", "Directory.ReadWrite.All")
WRITE_PHONES = ("User-Phone.ReadWrite.All",) + WRITE_USERS
READ_ORG = ("Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All", "User.Read")
READ_SYNC_FEATURES = ("OnPremDirectorySynchronization.Read.All", "OnPremDirectorySynchronization.ReadWrite.All")
WRITE_SYNC_FEATURES = ("OnPremDirectorySynchronization.ReadWrite.All",)
READ_JOBS = ("Synchronization.Read.All", "Synchronization.ReadWrite.All")
READ_PROVISIONING_LOGS = ("AuditLog.Read.All",)
WRITE_JOBS = ("Synchronization.ReadWrite.All",)
# Roles that may change another user's phone numbers (delegated).
PHONE_ADMIN_ROLES = tuple(state_module.ROLE_TEMPLATE_IDS[name] for name in
                          ("Global Administrator", "User Administrator", "Privileged Authentication Administrator"))

PHONE_PROPERTIES = ("mobilePhone", "businessPhones")
# Properties a PATCH may set on a cloud-only user; on a synced user AD masters them all.
WRITABLE = ("displayName", "givenName", "surname", "mail", "mobilePhone", "businessPhones", "jobTitle", "department",
            "companyName", "officeLocation", "preferredLanguage", "accountEnabled", "otherMails", "usageLocation", "city", "country",
            "state", "streetAddress", "postalCode", "employeeId", "employeeType", "faxNumber", "mailNickname", "preferredName",
            "aboutMe", "interests", "skills", "responsibilities", "pastProjects", "schools", "mySite", "birthday", "hireDate")
# "Sensitive" properties of the user-update page: another user's may be changed only when that user holds no
# administrator role, unless the caller (app or signed-in user) holds Privileged Authentication Administrator or
# Global Administrator (https://learn.microsoft.com/graph/api/user-update, "Who can update sensitive attributes").
SENSITIVE_PROPERTIES = ("businessPhones", "mobilePhone", "otherMails", "accountEnabled", "passwordProfile", "identities")
PRIVILEGED_CALLER_ROLES = tuple(state_module.ROLE_TEMPLATE_IDS[name] for name in
                                ("Global Administrator", "Privileged Authentication Administrator"))
MAX_PHONE = 64
# Filtering on these needs an advanced query (ConsistencyLevel: eventual and $count=true).
ADVANCED_FILTER_PROPERTIES = ("mobilePhone", "businessPhones", "onPremisesImmutableId", "onPremisesSamAccountName",
                              "onPremisesLastSyncDateTime", "officeLocation", "department", "companyName", "createdDateTime")
# The user resource lists these as not filterable at all.
NOT_FILTERABLE = ("onPremisesDistinguishedName", "onPremisesDomainName", "aboutMe", "birthday", "interests", "mySite", "pastProjects",
                  "preferredName", "responsibilities", "schools", "skills", "mailboxSettings", "passwordProfile", "print")
# $orderby without an advanced query (the user resource: "Supports ... $orderby").
DEFAULT_ORDERBY = ("displayName", "userPrincipalName")
SYNCED_MESSAGE = "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration."


def forbidden():
    return HttpError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def bad_request(message, code="Request_BadRequest"):
    return HttpError(400, code, message)


def not_found(key):
    return HttpError(404, "Request_ResourceNotFound",
                     "Resource '%s' does not exist or one of its queried reference-property objects are not present." % key)


def advanced_required(reason):
    return bad_request("%s Refer to https://aka.ms/graph-docs/advanced-queries for more information" % reason, code="Request_UnsupportedQuery")


# $filter: a small OData subset (eq, ne, startswith, endswith, in, and, or, not, parentheses).
_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<punct>[(),])|(?P<word>[A-Za-z_][\w.]*|-?\d+(?:\.\d+)?))")


def _tokenize(text):
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise bad_request("Invalid filter clause: syntax error at position %d in '%s'." % (pos, text), code="BadRequest")
        pos = match.end()
        if match.group("str") is not None:
            tokens.append(("str", match.group("str")[1:-1].replace("''", "'")))
        elif match.group("punct"):
            tokens.append(("punct", match.group("punct")))
        else:
            tokens.append(("word", match.group("word")))
    return tokens


def _fold(value):
    return value.casefold() if isinstance(value, str) else value


class FilterParser:
    """Compiles a $filter into a predicate on ``User``; records why it needs an advanced query."""

    def __init__(self, text):
        self.tokens = _tokenize(text)
        self.pos = 0
        self.text = text
        self.advanced = None

    def parse(self):
        predicate = self._or()
        if self.pos != len(self.tokens):
            raise self._error()
        return predicate

    def _error(self):
        return bad_request("Invalid filter clause: syntax error in '%s'." % self.text, code="BadRequest")

    def _peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None)

    def _take(self, kind=None, value=None):
        token = self._peek()
        if token[0] is None or (kind and token[0] != kind) or (value and str(token[1]).lower() != value):
            raise self._error()
        self.pos += 1
        return token[1]

    def _keyword(self, word):
        token = self._peek()
        if token[0] == "word" and token[1].lower() == word:
            self.pos += 1
            return True
        return False

    def _needs_advanced(self, reason):
        self.advanced = self.advanced or reason

    def _or(self):
        parts = [self._and()]
        while self._keyword("or"):
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else (lambda user: any(part(user) for part in parts))

    def _and(self):
        parts = [self._unary()]
        while self._keyword("and"):
            parts.append(self._unary())
        return parts[0] if len(parts) == 1 else (lambda user: all(part(user) for part in parts))

    def _property(self):
        name = self._take("word")
        for known in state_module.DOCUMENTED_USER_PROPERTIES:
            if known.lower() == name.lower():
                if known in NOT_FILTERABLE:
                    raise bad_request("Unsupported or invalid query filter clause specified for property '%s' of resource 'User'." % known,
                                      code="Request_UnsupportedQuery")
                if known in ADVANCED_FILTER_PROPERTIES:
                    self._needs_advanced("Unsupported or invalid query filter clause specified for property '%s' of resource 'User'. "
                                         "Filtering on it needs the ConsistencyLevel:eventual header and $count=true." % known)
                return known
        raise bad_request("Could not find a property named '%s' on type 'microsoft.graph.user'." % name, code="BadRequest")

    def _literal(self):
        kind, value = self._peek()
        self.pos += 1
        if kind == "str":
            return value
        if kind == "word":
            lowered = value.lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            if lowered == "null":
                return None
            if re.fullmatch(r"-?\d+(\.\d+)?", value):
                return float(value) if "." in value else int(value)
        raise self._error()

    def _unary(self):
        kind, value = self._peek()
        if kind == "punct" and value == "(":
            self.pos += 1
            inner = self._or()
            self._take("punct", ")")
            return inner
        if kind == "word" and value.lower() == "not" and self.tokens[self.pos + 1:self.pos + 2] == [("punct", "(")]:
            self.pos += 2
            self._needs_advanced("Operator 'not' is not supported because the required parameters might be missing. "
                                 "Try adding $count=true query parameter and the ConsistencyLevel:eventual header.")
            inner = self._or()
            self._take("punct", ")")
            return lambda user: not inner(user)
        if kind == "word" and value.lower() in ("startswith", "endswith"):
            function = value.lower()
            self.pos += 1
            self._take("punct", "(")
            name = self._property()
            self._take("punct", ",")
            prefix = self._literal()
            self._take("punct", ")")
            if not isinstance(prefix, str):
                raise self._error()
            prefix = prefix.casefold()
            if function == "endswith":
                self._needs_advanced("Operator 'endsWith' is not supported because the required parameters might be missing. "
                                     "Try adding $count=true query parameter and the ConsistencyLevel:eventual header.")
                return lambda user: isinstance(user.props.get(name), str) and user.props[name].casefold().endswith(prefix)
            return lambda user: isinstance(user.props.get(name), str) and user.props[name].casefold().startswith(prefix)
        name = self._property()
        operator = self._take("word").lower()
        if operator == "in":
            self._take("punct", "(")
            values = [_fold(self._literal())]
            while self._peek() == ("punct", ","):
                self.pos += 1
                values.append(_fold(self._literal()))
            self._take("punct", ")")
            return lambda user: _fold(user.props.get(name)) in values
        if operator not in ("eq", "ne"):
            raise bad_request("Invalid filter clause: operator '%s' is not supported by the lab emulator (eq, ne, in, startswith, endswith, "
                              "and, or, not)." % operator, code="BadRequest")
        literal = _fold(self._literal())
        if operator == "ne":
            self._needs_advanced("Operator 'ne' is not supported because the required parameters might be missing. "
                                 "Try adding $count=true query parameter and the ConsistencyLevel:eventual header.")
            return lambda user: _fold(user.props.get(name)) != literal
        if literal is None:
            self._needs_advanced("Filtering on null values of '%s' is not supported because the required parameters might be missing. "
                                 "Try adding $count=true query parameter and the ConsistencyLevel:eventual header." % name)
            return lambda user: user.props.get(name) is None
        if literal is True:
            return lambda user: user.props.get(name) is True
        return lambda user: _fold(user.props.get(name)) == literal


def _without_annotations(body):
    """The body without OData annotations ("@odata.type" and the like), which Graph accepts in request bodies."""
    return {key: value for key, value in body.items() if not key.startswith("@")}


def compile_filter(text):
    """(predicate, reason it needs an advanced query or None)."""
    parser = FilterParser(text)
    return parser.parse(), parser.advanced


def compile_search(text):
    """$search="property:words" (quoted, clauses joined by AND/OR) as a substring match."""
    clauses = re.findall(r'"([A-Za-z]+):([^"]*)"|\b(AND|OR)\b', text or "")
    if not clauses or clauses[0][2]:
        raise bad_request('Syntax error: $search must look like "displayName:words" (in double quotes).', code="BadRequest")
    terms, joiners = [], []
    for name, words, joiner in clauses:
        if joiner:
            joiners.append(joiner)
            continue
        if name not in ("displayName", "mail", "userPrincipalName", "givenName", "surname", "mobilePhone"):
            raise bad_request("$search is not supported on property '%s' in the lab." % name, code="BadRequest")
        terms.append((name, words.casefold()))

    def matches(user, term):
        value = user.props.get(term[0])
        return isinstance(value, str) and term[1] in value.casefold()
    if "OR" in joiners:
        return lambda user: any(matches(user, term) for term in terms)
    return lambda user: all(matches(user, term) for term in terms)


class Graph:
    """Routes of Graph v1.0. ``sync`` is the emulator's ``SyncEngines`` (restart of a job)."""

    def __init__(self, state, tokens, audiences, base, sync):
        self.state = state
        self.tokens = tokens
        self.audiences = list(audiences)
        self.base = base
        self.sync = sync
        self._skip_key = os.urandom(16)
        # Delta tokens of an earlier emulator process name changes it no longer knows: they are expired.
        self._epoch = uuid.uuid4().hex
        self.router = Router()
        add = self.router.add
        add("GET", r"/v1\.0/directory/onPremisesSynchronization", self.list_sync)
        add("GET", r"/v1\.0/directory/onPremisesSynchronization/(?P<object_id>[^/]+)", self.get_sync)
        add("PATCH", r"/v1\.0/directory/onPremisesSynchronization/(?P<object_id>[^/]+)", self.patch_sync)
        add("GET", r"/v1\.0/users", self.list_users)
        add("GET", r"/v1\.0/users/(?:microsoft\.graph\.)?delta(?:\(\))?", self.users_delta)
        add("GET", r"/v1\.0/users/(?P<key>[^/]+)", self.get_user)
        add("PATCH", r"/v1\.0/users/(?P<key>[^/]+)", self.patch_user)
        add("GET", r"/v1\.0/me", self.get_me)
        add("GET", r"/v1\.0/organization", self.organization)
        jobs = r"/v1\.0/servicePrincipals/(?P<sp_id>[^/]+)/synchronization/jobs"
        add("GET", jobs, self.list_jobs)
        add("GET", jobs + r"/(?P<job_id>[^/]+)", self.get_job)
        add("POST", jobs + r"/(?P<job_id>[^/]+)/restart", self.restart_job)
        add("GET", r"/v1\.0/auditLogs/provisioning", self.provisioning_logs)

    # Tokens and permissions
    def _auth(self, request):
        claims = self.tokens.check_access_token(request.header("Authorization"), self.audiences)
        tenant = self.state.tenant(claims.get("tid"))
        if tenant is None:
            raise HttpError(401, "InvalidAuthenticationToken", "Access token validation failure. Unknown tenant.")
        return tenant, claims

    @staticmethod
    def _require(claims, permissions, delegated_roles=None, app_only=True):
        """403 unless the token grants one of ``permissions`` (and, delegated, one of ``delegated_roles``)."""
        if "scp" in claims:
            granted = set(claims["scp"].split())
            if not granted.intersection(permissions):
                raise forbidden()
            if delegated_roles is not None and not set(claims.get("wids", [])).intersection(delegated_roles):
                raise forbidden()
            return
        if not app_only or not set(claims.get("roles", [])).intersection(permissions):
            raise forbidden()

    def _context(self, fragment):
        return "%s/v1.0/$metadata#%s" % (self.base(), fragment)

    # Directory synchronization features (delegated only, Global Administrator only)
    def list_sync(self, request):
        tenant, claims = self._auth(request)
        self._require(claims, READ_SYNC_FEATURES, [state_module.GLOBAL_ADMIN], app_only=False)
        with tenant.lock:
            value = [tenant.sync_object()] if tenant.directory_sync else []
        return Response(200, {"@odata.context": self._context("directory/onPremisesSynchronization"), "value": value})

    def _sync_tenant(self, request, object_id, permissions):
        tenant, claims = self._auth(request)
        self._require(claims, permissions, [state_module.GLOBAL_ADMIN], app_only=False)
        if not tenant.directory_sync or object_id.lower() != tenant.id.lower():
            raise not_found(object_id)
        return tenant

    def get_sync(self, request, object_id):
        tenant = self._sync_tenant(request, object_id, READ_SYNC_FEATURES)
        with tenant.lock:
            body = tenant.sync_object()
        body["@odata.context"] = self._context("directory/onPremisesSynchronization/$entity")
        return Response(200, body)

    def patch_sync(self, request, object_id):
        tenant = self._sync_tenant(request, object_id, WRITE_SYNC_FEATURES)
        body = request.json()
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object.")
        body = _without_annotations(body)
        for key in body:
            if key not in ("features", "id"):
                raise bad_request("Property '%s' cannot be updated by the lab emulator: only 'features' can." % key)
        features = body.get("features", {})
        if not isinstance(features, dict):
            raise bad_request("Invalid value for property 'features': an object of booleans is expected.")
        features = _without_annotations(features)
        with tenant.lock:
            for name, value in features.items():
                if name not in state_module.FEATURE_NAMES:
                    raise bad_request("Invalid property '%s' on type 'microsoft.graph.onPremisesDirectorySynchronizationFeature'." % name)
                if not isinstance(value, bool):
                    raise bad_request("Invalid value for property '%s': a boolean is expected." % name)
                if name == "passwordWritebackEnabled" and value != tenant.features[name]:
                    raise bad_request("Updating the passwordWritebackEnabled property is not supported.")
            tenant.features.update(features)
        return Response(204)

    # Users
    @staticmethod
    def _select(request):
        raw = request.arg("$select")
        if raw is None:
            return list(state_module.DEFAULT_SELECT)
        selected = []
        for name in (part.strip() for part in raw.split(",") if part.strip()):
            known = next((prop for prop in state_module.DOCUMENTED_USER_PROPERTIES if prop.lower() == name.lower()), None)
            if known is None:
                raise bad_request("Parsing OData Select and Expand failed: Could not find a property named '%s' on type "
                                  "'microsoft.graph.user'." % name)
            if known not in selected:
                selected.append(known)
        return selected or list(state_module.DEFAULT_SELECT)

    def _skiptoken(self, position, total):
        payload = base64.urlsafe_b64encode(json.dumps([position, total]).encode("ascii")).rstrip(b"=").decode("ascii")
        mac = hmac.new(self._skip_key, payload.encode("ascii"), hashlib.sha256).hexdigest()[:16]
        return "%s.%s" % (payload, mac)

    def _read_skiptoken(self, token):
        payload, dummy, mac = token.partition(".")
        expected = hmac.new(self._skip_key, payload.encode("ascii", "replace"), hashlib.sha256).hexdigest()[:16]
        try:
            if not hmac.compare_digest(mac, expected):
                raise ValueError("signature")
            position, total = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            return int(position), total
        except (ValueError, TypeError) as exc:
            raise bad_request("Invalid $skiptoken: use the @odata.nextLink of the previous page unchanged.", code="Request_BadRequest") from exc

    def list_users(self, request):
        tenant, claims = self._auth(request)
        self._require(claims, READ_USERS)
        select = self._select(request)
        top_raw = request.arg("$top", "100")
        if not re.fullmatch(r"\d+", top_raw) or not 1 <= int(top_raw) <= 999:
            raise bad_request("Invalid page size specified: '%s'. Must be between 1 and 999 inclusive." % top_raw, code="Request_BadRequest")
        top = int(top_raw)
        for unsupported in ("$skip", "$expand"):
            if request.arg(unsupported) is not None:
                raise bad_request("'%s' is not supported on users by Graph or by the lab emulator." % unsupported, code="Request_BadRequest")
        count_raw = request.arg("$count")
        if count_raw not in (None, "true", "false"):
            raise bad_request("Invalid value for $count: '%s'." % count_raw, code="BadRequest")
        eventual = (request.header("ConsistencyLevel") or "").lower() == "eventual"
        # Without ConsistencyLevel: eventual, Graph ignores $count=true on a basic query.
        want_count = count_raw == "true" and eventual
        predicates, reason = [], None
        if request.arg("$filter"):
            predicate, reason = compile_filter(request.arg("$filter"))
            predicates.append(predicate)
        order = self._orderby(request.arg("$orderby"))
        if order and order[0] not in DEFAULT_ORDERBY:
            reason = reason or "Sorting by '%s' is not supported without the ConsistencyLevel:eventual header and $count=true." % order[0]
        if order and request.arg("$filter"):
            reason = reason or "Sorting a filtered result is not supported without the ConsistencyLevel:eventual header and $count=true."
        if reason and not (eventual and count_raw == "true"):
            raise advanced_required(reason)
        # $search needs the header, not $count.
        if request.arg("$search") is not None:
            if not eventual:
                raise advanced_required("Request with $search query parameter only works through MSGraph with a special request header: "
                                        "'ConsistencyLevel: eventual'.")
            predicates.append(compile_search(request.arg("$search")))

        def matches(user):
            return all(predicate(user) for predicate in predicates)
        token = request.arg("$skiptoken")
        position, total = self._read_skiptoken(token) if token is not None else (0, None)
        items = []
        value = state_module.property_value
        with tenant.lock:
            users = tenant.users
            if order:
                # A sorted listing is computed per page: fine at lab sizes, and stable between pages.
                name, descending = order
                ids = sorted((uid for uid in tenant.order if uid in users and matches(users[uid])),
                             key=lambda uid: (_fold(users[uid].props.get(name)) is None, _fold(users[uid].props.get(name)) or "", uid),
                             reverse=descending)
                sequence, filtered = ids, True
            else:
                sequence, filtered = tenant.order, False
            if want_count and total is None:
                total = len(sequence) if filtered else sum(1 for uid in sequence if uid in users and matches(users[uid]))
            size = len(sequence)
            while position < size and len(items) < top:
                user = users.get(sequence[position])
                position += 1
                if user is not None and (filtered or matches(user)):
                    props = user.props
                    items.append({name: value(props, name) for name in select})
            # Advance to the next match so the last page carries no nextLink.
            while position < size:
                user = users.get(sequence[position])
                if user is not None and (filtered or matches(user)):
                    break
                position += 1
        body = {"@odata.context": self._context("users(%s)" % ",".join(select))}
        if want_count:
            body["@odata.count"] = total
        body["value"] = items
        if position < size:
            params = [(key, values[0]) for key, values in request.query.items() if key != "$skiptoken"]
            params.append(("$skiptoken", self._skiptoken(position, total)))
            query = "&".join("%s=%s" % (quote(key, safe="$"), quote(value, safe="$,")) for key, value in params)
            body["@odata.nextLink"] = "%s/v1.0/users?%s" % (self.base(), query)
        return Response(200, body)

    # The users delta query (https://learn.microsoft.com/graph/api/user-delta, https://learn.microsoft.com/graph/delta-query-users,
    # https://learn.microsoft.com/graph/delta-query-overview). A round walks the users changed after the token's change
    # number ``since`` (every present user for an initial round), then the users removed after it; its deltaLink carries
    # the change number at the round's start, so a change made while the round is paged is reported again next round.
    DELTA_PAGE_SIZE = 100  # Microsoft documents no page size for delta

    def _delta_token(self, tenant, since, select, phase=0, position=0):
        payload = [self._epoch, tenant.delta_generation, since, select, phase, position]
        text = base64.urlsafe_b64encode(json.dumps(payload).encode("ascii")).rstrip(b"=").decode("ascii")
        return "%s.%s" % (text, hmac.new(self._skip_key, text.encode("ascii"), hashlib.sha256).hexdigest()[:16])

    def _read_delta_token(self, tenant, token):
        text, _dot, mac = token.partition(".")
        expected = hmac.new(self._skip_key, text.encode("ascii", "replace"), hashlib.sha256).hexdigest()[:16]
        try:
            if not hmac.compare_digest(mac, expected):
                raise ValueError("signature")
            epoch, generation, since, select, phase, position = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (ValueError, TypeError) as exc:
            raise bad_request("Badly formed token: use the @odata.nextLink or @odata.deltaLink unchanged.", code="badRequest") from exc
        if epoch != self._epoch or generation != tenant.delta_generation:
            # What Graph answers once a delta link has expired (7 days for directory objects):
            # https://devblogs.microsoft.com/microsoft365dev/duration-of-change-tracking-tokens-for-identity-and-education-resources/
            raise HttpError(400, "syncStateNotFound", "The sync state generation is not found. The delta token is expired and data "
                                                      "must be synchronized again.")
        return since, list(select), int(phase), int(position)

    def users_delta(self, request):
        tenant, claims = self._auth(request)
        self._require(claims, READ_USERS)
        for unsupported in ("$top", "$orderby", "$search", "$count", "$filter", "$skip"):
            if request.arg(unsupported) is not None:
                raise bad_request("The lab emulator's users delta query supports $select, $deltatoken and $skiptoken only, not %s."
                                  % unsupported, code="badRequest")
        delta, skip = request.arg("$deltatoken"), request.arg("$skiptoken")
        with tenant.lock:
            now = state_module.next_change()
            if delta == "latest":
                # "Sync from now": no resource data, only a deltaLink for changes from here on.
                return Response(200, {"@odata.context": self._context("users(%s)" % ",".join(self._select(request))), "value": [],
                                      "@odata.deltaLink": self._delta_link(tenant, now, self._select(request))})
            if skip is not None:
                since, select, phase, position = self._read_delta_token(tenant, skip)
                upto = None
            elif delta is not None:
                since, select, dummy_phase, dummy_position = self._read_delta_token(tenant, delta)
                phase, position, upto = 0, 0, now
            else:
                since, select, phase, position, upto = 0, self._select(request), 0, 0, now
            if skip is not None:
                # The round's end is fixed at its start and travels in the skip token's "since" slot of the next page.
                since, upto = since
            minimal = ((request.header("Prefer") or "").lower().replace(" ", "") == "return=minimal" and since > 0
                       and tenant.options["delta_minimal"] == "honoured")
            items, phase, position = self._delta_page(tenant, since, select, phase, position, minimal)
        body = {"@odata.context": self._context("users(%s)" % ",".join(select)), "value": items}
        if phase < 2:
            body["@odata.nextLink"] = "%s/v1.0/users/delta?$skiptoken=%s" % (
                self.base(), self._delta_token(tenant, [since, upto], select, phase, position))
        else:
            body["@odata.deltaLink"] = self._delta_link(tenant, upto, select)
        headers = {"Preference-Applied": "return=minimal"} if minimal else {}
        return Response(200, body, headers=headers)

    def _delta_link(self, tenant, since, select):
        return "%s/v1.0/users/delta?$deltatoken=%s" % (self.base(), self._delta_token(tenant, since, select))

    def _delta_page(self, tenant, since, select, phase, position, minimal):
        """Up to DELTA_PAGE_SIZE items from (phase, position): phase 0 walks ``order``, 1 the removals, 2 is the end."""
        items = []
        only_selected = tenant.options["delta_unselected_changes"] == "skipped"
        while phase == 0 and len(items) < self.DELTA_PAGE_SIZE:
            if position >= len(tenant.order):
                phase, position = 1, 0
                break
            user = tenant.users.get(tenant.order[position])
            position += 1
            if user is None or user.props.latest <= since:
                continue
            props = user.props
            if since and only_selected and max(props.changed_at(name) for name in select) <= since:
                continue
            item = {"id": user.id}
            for name in select:
                value = state_module.property_value(props, name)
                if minimal:
                    # Only what changed since the token ("Prefer: return=minimal" on the user-delta page).
                    if props.changed_at(name) > since and (value not in (None, []) or name in props.changed):
                        item[name] = value
                elif value not in (None, []) or name in props.changed:
                    # A property never set is left out; one set to null since is included as null (user-delta page).
                    item[name] = value
            items.append(item)
        while phase == 1 and len(items) < self.DELTA_PAGE_SIZE:
            if position >= len(tenant.removed):
                phase, position = 2, 0
                break
            seq, user_id, reason = tenant.removed[position]
            position += 1
            # An initial round lists no removals: "resources deleted before the initial delta query aren't returned".
            if since and seq > since and user_id not in tenant.users:
                items.append({"id": user_id, "@removed": {"reason": reason}})
        if phase == 1 and position >= len(tenant.removed):
            phase = 2
        return items, phase, position

    @staticmethod
    def _orderby(raw):
        """(property, descending) of a one-property $orderby, or None."""
        if raw is None:
            return None
        match = re.fullmatch(r"\s*([A-Za-z]+)(?:\s+(asc|desc))?\s*", raw, re.IGNORECASE)
        if not match:
            raise bad_request("The lab emulator sorts by one property only: $orderby=<property> [asc|desc], got '%s'." % raw, code="BadRequest")
        known = next((prop for prop in state_module.DOCUMENTED_USER_PROPERTIES if prop.lower() == match.group(1).lower()), None)
        if known is None:
            raise bad_request("Could not find a property named '%s' on type 'microsoft.graph.user'." % match.group(1), code="BadRequest")
        return known, (match.group(2) or "asc").lower() == "desc"

    def _user(self, tenant, key):
        key = unquote(key)
        with tenant.lock:
            user = tenant.find_user(key)
        if user is None:
            raise not_found(key)
        return user

    def _user_response(self, request, user):
        select = self._select(request)
        with_context = {"@odata.context": self._context("users(%s)/$entity" % ",".join(select))}
        with_context.update({name: state_module.property_value(user.props, name) for name in select})
        return Response(200, with_context)

    def get_user(self, request, key):
        tenant, claims = self._auth(request)
        self._require(claims, READ_USERS)
        return self._user_response(request, self._user(tenant, key))

    def get_me(self, request):
        tenant, claims = self._auth(request)
        if "scp" not in claims:
            raise bad_request("/me request is only valid with delegated authentication flow.", code="BadRequest")
        return self._user_response(request, self._user(tenant, claims["oid"]))

    def patch_user(self, request, key):
        tenant, claims = self._auth(request)
        body = request.json()
        if not isinstance(body, dict):
            raise bad_request("The request body must be a JSON object with the properties to update.")
        # Clients such as msgraph-sdk send "@odata.type": "#microsoft.graph.user"; Graph accepts annotations.
        body = _without_annotations(body)
        if not body:
            raise bad_request("The request body must be a JSON object with the properties to update.")
        phones_only = all(name in PHONE_PROPERTIES for name in body)
        self._require(claims, WRITE_PHONES if phones_only else WRITE_USERS, PHONE_ADMIN_ROLES)
        user = self._user(tenant, key)
        for name, value in body.items():
            if name not in state_module.DOCUMENTED_USER_PROPERTIES:
                raise bad_request("Invalid property '%s'." % name)
            if name not in WRITABLE:
                raise bad_request("Property '%s' is read-only and cannot be set." % name)
            self._check_value(name, value)
        with tenant.lock:
            self._check_sensitive(claims, user, body)
            if user.synced:
                raise bad_request(SYNCED_MESSAGE)
            user.props.update(body)
        return Response(204)

    @staticmethod
    def _check_sensitive(claims, user, body):
        """403 for another user's sensitive properties when that user holds an administrator role and the caller
        holds neither Privileged Authentication Administrator nor Global Administrator."""
        if not user.roles or not any(name in SENSITIVE_PROPERTIES for name in body):
            return
        if claims.get("oid") == user.id:
            return
        if set(claims.get("wids", [])).intersection(PRIVILEGED_CALLER_ROLES):
            return
        raise forbidden()

    @staticmethod
    def _check_value(name, value):
        if name == "mobilePhone" and value is not None and (not isinstance(value, str) or len(value) > MAX_PHONE):
            raise bad_request("Invalid value specified for property 'mobilePhone' of resource 'User'.")
        if name == "businessPhones" and (not isinstance(value, list) or len(value) > 1
                                         or any(not isinstance(item, str) or len(item) > MAX_PHONE for item in value)):
            raise bad_request("Invalid value specified for property 'businessPhones' of resource 'User'.")
        if name == "accountEnabled" and not isinstance(value, bool):
            raise bad_request("Invalid value specified for property 'accountEnabled' of resource 'User'.")

    def organization(self, request):
        tenant, claims = self._auth(request)
        self._require(claims, READ_ORG)
        return Response(200, {"@odata.context": self._context("organization"), "value": [tenant.organization()]})

    # Cloud Sync jobs
    def _jobs_tenant(self, request, sp_id, permissions):
        tenant, claims = self._auth(request)
        self._require(claims, permissions)
        if tenant.service_principal_id is None or sp_id.lower() != tenant.service_principal_id.lower():
            raise not_found(sp_id)
        return tenant

    def _job(self, tenant, job_id):
        job = tenant.jobs.get(job_id)
        if job is None:
            raise not_found(job_id)
        return {"id": job["id"], "templateId": job["templateId"], "schedule": dict(job["schedule"]),
                "status": self.sync.job_status(tenant, job)}

    def list_jobs(self, request, sp_id):
        tenant = self._jobs_tenant(request, sp_id, READ_JOBS)
        with tenant.lock:
            value = [self._job(tenant, job_id) for job_id in tenant.jobs]
        return Response(200, {"@odata.context": self._context("servicePrincipals('%s')/synchronization/jobs" % sp_id), "value": value})

    def get_job(self, request, sp_id, job_id):
        tenant = self._jobs_tenant(request, sp_id, READ_JOBS)
        with tenant.lock:
            body = self._job(tenant, job_id)
        return Response(200, body)

    def restart_job(self, request, sp_id, job_id):
        tenant = self._jobs_tenant(request, sp_id, WRITE_JOBS)
        body = request.json()
        criteria = body.get("criteria") if isinstance(body, dict) else None
        scope = (criteria or {}).get("resetScope")
        # A comma list of Watermark, Escrows, QuarantineState, Full, ForceDeletes; it may be empty.
        if scope is not None:
            parts = [part.strip() for part in str(scope).split(",") if part.strip()]
            unknown = [part for part in parts if part.lower() not in ("watermark", "escrows", "quarantinestate", "full", "forcedeletes")]
            if unknown:
                raise bad_request("Invalid value for criteria.resetScope: '%s'." % scope)
        with tenant.lock:
            job = tenant.jobs.get(job_id)
            if job is None:
                raise not_found(job_id)
        # Documented: "returns a 204 No Content"; a restart during a cycle makes the following cycle a full one.
        run = self.sync.restart(tenant)
        if run is not None:
            with tenant.lock:
                job["run_id"] = run["id"]
        return Response(204)

    # Provisioning logs (provisioningObjectSummary): the per-object outcome of the Cloud Sync job's cycles.
    def provisioning_logs(self, request):
        tenant, claims = self._auth(request)
        self._require(claims, READ_PROVISIONING_LOGS)
        predicate = compile_log_filter(request.arg("$filter"))
        top_raw = request.arg("$top", "1000")
        if not re.fullmatch(r"\d+", top_raw) or not 1 <= int(top_raw) <= 1000:
            raise bad_request("Invalid page size specified: '%s'." % top_raw)
        events = []
        with tenant.lock:
            job = next(iter(tenant.jobs.values()), None)
            for run in tenant.runs:
                for error in run["errors"]:
                    event = provisioning_event(tenant, job, run, error)
                    if predicate(event):
                        events.append(event)
        events.sort(key=lambda event: event["activityDateTime"], reverse=True)
        return Response(200, {"@odata.context": self._context("auditLogs/provisioning"), "value": events[:int(top_raw)]})


def provisioning_event(tenant, job, run, error):
    """A provisioningObjectSummary for one object error of a cycle."""
    upn = error.get("userPrincipalName")
    # Microsoft does not say how cycleId relates to an execution: the execution's activityIdentifier, or unrelated.
    related = tenant.options.get("provisioning_cycle_id") != "unrelated"
    cycle_id = run["activity"] if related else str(uuid.uuid5(uuid.NAMESPACE_URL, "cycle:%s:%s" % (run["activity"], upn)))
    return {
        "id": "%s-%s" % (run["activity"], hashlib.sha1((error.get("distinguishedName") or "").encode()).hexdigest()[:12]),  # nosec - an id
        "activityDateTime": error.get("time") or run["started"], "cycleId": cycle_id, "changeId": cycle_id,
        "jobId": job["id"] if job else None, "durationInMilliseconds": 0, "provisioningAction": "create",
        "provisioningStatusInfo": {"status": "failure", "errorInformation": {
            "errorCode": error.get("code") or "SynchronizationError", "errorCategory": "failure", "reason": error["error"],
            "additionalDetails": None, "recommendedAction": "Fix the object in Active Directory, then let the next cycle retry it."}},
        "sourceIdentity": {"id": error.get("immutableId"), "displayName": upn, "identityType": "User",
                           "details": {"distinguishedName": error.get("distinguishedName"), "userPrincipalName": upn}},
        "targetIdentity": {"id": None, "displayName": upn, "identityType": "User", "details": {}},
        "servicePrincipal": {"id": tenant.service_principal_id, "name": tenant.display_name},
        "sourceSystem": {"id": None, "displayName": "Active Directory", "details": {}},
        "targetSystem": {"id": None, "displayName": "Entra ID", "details": {}},
        "initiatedBy": {"id": None, "displayName": "Azure AD Provisioning Service", "initiatingType": "system"},
        "tenantId": tenant.id,
    }


_LOG_CLAUSE = re.compile(r"\s*([A-Za-z/]+)\s+(eq|ne|ge|gt|le|lt)\s+('(?:[^']|'')*'|[0-9T:.Z+-]+)\s*", re.IGNORECASE)


def compile_log_filter(text):
    """$filter on provisioning logs: clauses 'path op value' joined by 'and' (paths like provisioningStatusInfo/status)."""
    if not text:
        return lambda event: True
    clauses = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _LOG_CLAUSE.fullmatch(part)
        if not match:
            raise bad_request("Invalid filter clause: the lab emulator supports 'property op value' clauses joined by 'and' on "
                              "provisioning logs, got '%s'." % part, code="BadRequest")
        path, operator, literal = match.group(1), match.group(2).lower(), match.group(3)
        if literal.startswith("'"):
            literal = literal[1:-1].replace("''", "'")
        clauses.append((path.split("/"), operator, literal))

    def value_of(event, path):
        for name in path:
            event = (event or {}).get(name) if isinstance(event, dict) else None
        return event

    compare = {"eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "ge": lambda a, b: a >= b, "gt": lambda a, b: a > b,
               "le": lambda a, b: a <= b, "lt": lambda a, b: a < b}

    def matches(event):
        for path, operator, literal in clauses:
            value = value_of(event, path)
            if value is None or not compare[operator](str(value), literal):
                return False
        return True
    return matches

"""Tenant state: users, apps, directory synchronization features, sync jobs and runs.

Users live in a dict by id plus an append-only ``order`` list of ids, so a page of a user
listing starts at a position in ``order`` (the skip token) instead of rescanning.
Deleted ids stay in ``order`` and are skipped; ``order`` is rebuilt only by a restart.
"""

import datetime
import itertools
import threading
import uuid

ROLE_TEMPLATE_IDS = {
    "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
    "User Administrator": "fe930be7-5e62-47db-91af-98c3a49a38b1",
    "Helpdesk Administrator": "729827e3-9c14-49f7-bb1b-9608f156bbb8",
    "Privileged Authentication Administrator": "7be44c8a-adaf-4e2a-84d6-ab2649e08a13",
    "Authentication Administrator": "c4e39bd9-1100-46d3-8c65-fb160da0071f",
    "Hybrid Identity Administrator": "8ac3fc64-6eca-42ea-9e69-59f4c7b60eb2",
    "Global Reader": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
}
GLOBAL_ADMIN = ROLE_TEMPLATE_IDS["Global Administrator"]

FEATURE_NAMES = (
    "allowOnPremUpdateOfOnPremisesObjectIdentifierEnabled", "blockCloudObjectTakeoverThroughHardMatchEnabled",
    "blockSoftMatchEnabled", "bypassDirSyncOverridesEnabled", "cloudPasswordPolicyForPasswordSyncedUsersEnabled",
    "concurrentCredentialUpdateEnabled", "concurrentOrgIdProvisioningEnabled", "deviceWritebackEnabled",
    "directoryExtensionsEnabled", "fopeConflictResolutionEnabled", "groupWriteBackEnabled", "passwordSyncEnabled",
    "passwordWritebackEnabled", "quarantineUponProxyAddressesConflictEnabled", "quarantineUponUpnConflictEnabled",
    "softMatchOnUpnEnabled", "synchronizeUpnForManagedUsersEnabled", "unifiedGroupWritebackEnabled",
    "userForcePasswordChangeOnLogonEnabled", "userWritebackEnabled",
)

# Every user property the emulator knows (Graph v1.0 names). Others are rejected in $select/$filter.
USER_PROPERTIES = (
    "id", "userPrincipalName", "displayName", "givenName", "surname", "mail", "mobilePhone", "businessPhones",
    "jobTitle", "department", "companyName", "officeLocation", "preferredLanguage", "accountEnabled", "userType",
    "createdDateTime", "onPremisesSyncEnabled", "onPremisesImmutableId", "onPremisesSecurityIdentifier",
    "onPremisesDistinguishedName", "onPremisesSamAccountName", "onPremisesDomainName", "onPremisesUserPrincipalName",
    "onPremisesLastSyncDateTime",
)
# Every property of the v1.0 user resource (https://learn.microsoft.com/graph/api/resources/user): $select and
# $filter accept them all; the ones the lab does not model read as null (or [] for collections).
DOCUMENTED_USER_PROPERTIES = USER_PROPERTIES + (
    "aboutMe", "ageGroup", "assignedLicenses", "assignedPlans", "authorizationInfo", "birthday", "city", "consentProvidedForMinor",
    "country", "creationType", "customSecurityAttributes", "deletedDateTime", "employeeHireDate", "employeeId",
    "employeeLeaveDateTime", "employeeOrgData", "employeeType", "externalUserState", "externalUserStateChangeDateTime", "faxNumber",
    "hireDate", "identities", "imAddresses", "interests", "isManagementRestricted", "isResourceAccount", "lastPasswordChangeDateTime",
    "legalAgeGroupClassification", "licenseAssignmentStates", "mailboxSettings", "mailNickname", "mySite",
    "onPremisesExtensionAttributes", "onPremisesProvisioningErrors", "onPremisesSipInfo", "otherMails", "passwordPolicies",
    "passwordProfile", "pastProjects", "postalCode", "preferredDataLocation", "preferredName", "print", "provisionedPlans",
    "proxyAddresses", "refreshTokensValidFromDateTime", "responsibilities", "schools", "securityIdentifier",
    "serviceProvisioningErrors", "showInAddressList", "signInActivity", "signInSessionsValidFromDateTime", "skills", "state",
    "streetAddress", "usageLocation",
)
COLLECTION_PROPERTIES = ("assignedLicenses", "assignedPlans", "businessPhones", "identities", "imAddresses", "interests",
                         "licenseAssignmentStates", "onPremisesProvisioningErrors", "otherMails", "pastProjects", "provisionedPlans",
                         "proxyAddresses", "responsibilities", "schools", "serviceProvisioningErrors", "skills")
# Lab options where Microsoft documents nothing (docs/lab-emulator.md, "Where Microsoft documents nothing").
# overrides_on_bypass: a sync with bypassDirSyncOverridesEnabled on clears a user's override marker ("cleared") or
# keeps it, so the override is in force again once the flag is off ("kept").
# running_execution: while a Cloud Sync cycle runs, lastExecution still shows the previous finished execution
# ("previous") or the running one with an unset timeEnded ("placeholder").
# cloud_sync_bypass: a Cloud Sync cycle honours bypassDirSyncOverridesEnabled as Entra Connect does ("honoured"), or
# ignores it, so overrides stay in force in Cloud Sync cycles ("ignored"); Microsoft documents the flag for Entra Connect.
# provisioning_cycle_id: a provisioning-log event's cycleId and changeId are the execution's activityIdentifier
# ("activity") or ids unrelated to it ("unrelated").
# delta_minimal: the users delta query honours "Prefer: return=minimal" (only changed properties) or ignores it
# (every selected property, as without the header).
# delta_unselected_changes: a user whose only changes since the token are in properties that were not selected is
# left out of the delta ("skipped") or returned ("returned").
OPTION_CHOICES = {"overrides_on_bypass": ("cleared", "kept"), "running_execution": ("previous", "placeholder"),
                  "cloud_sync_bypass": ("honoured", "ignored"), "provisioning_cycle_id": ("activity", "unrelated"),
                  "delta_minimal": ("honoured", "ignored"), "delta_unselected_changes": ("skipped", "returned")}
DEFAULT_OPTIONS = {"overrides_on_bypass": "cleared", "running_execution": "previous", "cloud_sync_bypass": "honoured",
                   "provisioning_cycle_id": "activity", "delta_minimal": "honoured", "delta_unselected_changes": "skipped"}
UNSET_DATE = "0001-01-01T00:00:00Z"


def check_options(options):
    """The options dict validated against OPTION_CHOICES; ValueError names the bad one."""
    for name, value in options.items():
        if name not in OPTION_CHOICES:
            raise ValueError("unknown option %r; options are %s" % (name, ", ".join(sorted(OPTION_CHOICES))))
        if value not in OPTION_CHOICES[name]:
            raise ValueError("option %s must be one of %s, not %r" % (name, ", ".join(OPTION_CHOICES[name]), value))
    return dict(options)


def property_value(props, name):
    """A user property as Graph returns it (unmodelled ones as null or [])."""
    if name in props:
        return props[name]
    return [] if name in COLLECTION_PROPERTIES else None


DEFAULT_SELECT = ("businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone", "officeLocation",
                  "preferredLanguage", "surname", "userPrincipalName", "id")


# One change sequence for the whole emulator: the users delta query reports what changed after a number of it.
# next() on itertools.count is atomic in CPython.
_CHANGES = itertools.count(1)


def next_change():
    return next(_CHANGES)


class TrackedProps(dict):
    """A user's properties that remember when each one last changed (a number of the change sequence).

    ``created`` is the change number of the object's creation (or restore); ``changed`` holds only properties written
    with a different value since then, so 100,000 untouched users cost one integer each.
    """

    __slots__ = ("created", "changed", "latest")

    def __init__(self, data):
        super().__init__(data)
        self.restamp()

    def restamp(self):
        """Every property counts as new from now on (a user added or restored)."""
        self.created = self.latest = next_change()
        self.changed = {}

    def __setitem__(self, key, value):
        if key in self and self[key] == value and type(self[key]) is type(value):
            return
        super().__setitem__(key, value)
        self.changed[key] = self.latest = next_change()

    def update(self, *args, **kwargs):  # pylint: disable=arguments-differ
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def changed_at(self, name):
        return self.changed.get(name, self.created)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class User:
    """A tenant user: Graph-visible ``props`` plus state Graph does not expose."""

    # ``source``: what the sync engine last read from AD for the user (its connector space copy).
    __slots__ = ("props", "alternate_mobile_phones", "overrides", "password", "roles", "mfa_required", "source")

    def __init__(self, props, alternate_mobile_phones=None, overrides=None, password=None, roles=None, mfa_required=False):
        initial = {name: None for name in USER_PROPERTIES}
        initial["businessPhones"] = []
        initial["userType"] = "Member"
        initial["accountEnabled"] = True
        initial.update(props)
        if not initial.get("id"):
            initial["id"] = str(uuid.uuid4())
        if not initial.get("createdDateTime"):
            initial["createdDateTime"] = utcnow()
        self.props = TrackedProps(initial)
        self.alternate_mobile_phones = list(alternate_mobile_phones or [])
        self.overrides = set(overrides or ())
        self.password = password
        self.roles = list(roles or [])
        self.mfa_required = bool(mfa_required)
        self.source = None

    @property
    def id(self):
        return self.props["id"]

    @property
    def synced(self):
        return self.props.get("onPremisesSyncEnabled") is True

    def role_ids(self):
        return [ROLE_TEMPLATE_IDS[name] for name in self.roles if name in ROLE_TEMPLATE_IDS]

    def get(self, name):
        if name == "alternateMobilePhones":
            return list(self.alternate_mobile_phones)
        return self.props.get(name)

    def set(self, name, value):
        if name == "alternateMobilePhones":
            self.alternate_mobile_phones = list(value or [])
        else:
            self.props[name] = value

    def dump(self):
        """Everything, for the control API (never the password)."""
        data = dict(self.props)
        data["alternateMobilePhones"] = list(self.alternate_mobile_phones)
        data["dirSyncOverrides"] = sorted(self.overrides)
        if self.roles:
            data["roles"] = list(self.roles)
        return data


def _ldap_sources(config):
    """A tenant's AD sources: ``ldap_sources`` (one per forest, each named), or the one-forest ``ldap`` (named source1)."""
    if config.get("ldap_sources") is not None and config.get("ldap"):
        raise ValueError("tenant %s: give 'ldap_sources' or 'ldap', not both" % config["id"])
    sources = config.get("ldap_sources")
    if sources is None:
        sources = [config["ldap"]] if config.get("ldap") else []
    sources = [dict(source, name=source.get("name") or "source%d" % index) for index, source in enumerate(sources, 1)]
    names = [source["name"] for source in sources]
    if len(set(names)) != len(names):
        raise ValueError("tenant %s: the names of ldap_sources must be unique, not %s" % (config["id"], ", ".join(names)))
    return sources


class Tenant:
    """One Entra tenant. ``lock`` guards users, features, jobs and runs."""

    def __init__(self, config, options=None):
        self.id = config["id"]
        self.display_name = config.get("display_name", "Lab")
        self.verified_domains = list(config.get("verified_domains", []))
        # The <name>.onmicrosoft.com domain every tenant gets; Entra uses it for unverified UPN suffixes.
        self.initial_domain = config.get("initial_domain") or (self.verified_domains[0] if self.verified_domains else None)
        self.directory_sync = bool(config.get("directory_sync", True))
        self.options = dict(DEFAULT_OPTIONS)
        self.options.update(check_options(options or {}))
        self.options.update(check_options(config.get("options") or {}))
        self.ldap_sources = _ldap_sources(config)
        self.lock = threading.RLock()
        self.apps = {}
        for app in config.get("apps", []):
            app = dict(app)
            app.setdefault("service_principal_id", str(uuid.uuid4()))
            self.apps[app["client_id"].lower()] = app
        self.features = {name: False for name in FEATURE_NAMES}
        self.features.update(config.get("features", {}))
        self.users = {}
        self.order = []
        self.by_upn = {}
        self.by_immutable = {}
        self.jobs = {}
        cloud_sync = config.get("cloud_sync")
        self.service_principal_id = None
        if cloud_sync:
            self.service_principal_id = cloud_sync["service_principal_id"]
            job_id = cloud_sync["job_id"]
            self.jobs[job_id] = {"id": job_id, "templateId": job_id.split(".", 1)[0],
                                 "schedule": {"expiration": None, "interval": "PT2M", "state": "Active"}, "run_id": None}
        self.runs = []
        # The highest committed USN of each source's last read, by source name (delta cycles read above it).
        self.watermarks = {}
        # Users removed, for the delta query: (change number, id, reason). A delta token of an older generation is expired.
        self.removed = []
        self.delta_generation = 0
        for account in config.get("users", []):
            props = {key: value for key, value in account.items() if key not in ("password", "roles", "mfa_required")}
            props.setdefault("onPremisesSyncEnabled", None)
            # A configured account keeps its object id across restarts, as a real one does (token caches hold it).
            props.setdefault("id", str(uuid.uuid5(uuid.NAMESPACE_URL, "%s/%s" % (self.id, props["userPrincipalName"].lower()))))
            self.add_user(User(props, password=account.get("password"), roles=account.get("roles"),
                               mfa_required=account.get("mfa_required", False)))

    def sync_object(self):
        return {"id": self.id,
                "configuration": {"accidentalDeletionPrevention": {"synchronizationPreventionType": "enabledForCount", "alertThreshold": 500}},
                "features": dict(self.features)}

    def organization(self):
        domains = [{"capabilities": "Email, OfficeCommunicationsOnline", "isDefault": index == 0, "isInitial": name == self.initial_domain,
                    "name": name, "type": "Managed"} for index, name in enumerate(self.verified_domains)]
        return {"id": self.id, "displayName": self.display_name, "verifiedDomains": domains,
                "onPremisesSyncEnabled": True if self.directory_sync else None}

    # Users. Callers hold ``lock``.
    def add_user(self, user):
        upn = (user.props.get("userPrincipalName") or "").lower()
        if not upn:
            raise ValueError("a user needs a userPrincipalName")
        if upn in self.by_upn or user.id in self.users:
            raise ValueError("a user with userPrincipalName %s or id %s exists already" % (user.props["userPrincipalName"], user.id))
        user.props.restamp()
        self.users[user.id] = user
        self.order.append(user.id)
        self.by_upn[upn] = user.id
        if user.props.get("onPremisesImmutableId"):
            self.by_immutable[user.props["onPremisesImmutableId"]] = user.id

    def remove_user(self, user_id, reason="changed"):
        """Remove a user; the delta query reports it with ``@removed`` and ``reason`` ("changed": soft-deleted, restorable
        for 30 days, as deletions by the sync engine are; "deleted": gone for good)."""
        user = self.users.pop(user_id, None)
        if user is None:
            return None
        self.removed.append((next_change(), user_id, reason))
        self.by_upn.pop((user.props.get("userPrincipalName") or "").lower(), None)
        immutable = user.props.get("onPremisesImmutableId")
        if immutable and self.by_immutable.get(immutable) == user_id:
            del self.by_immutable[immutable]
        return user

    def rename(self, user, new_upn):
        """Change a user's UPN; False when another user holds it."""
        key = new_upn.lower()
        holder = self.by_upn.get(key)
        if holder is not None and holder != user.id:
            return False
        self.by_upn.pop((user.props.get("userPrincipalName") or "").lower(), None)
        self.by_upn[key] = user.id
        user.props["userPrincipalName"] = new_upn
        return True

    def find_user(self, key):
        """A user by object id or userPrincipalName (case-insensitive), or None."""
        user = self.users.get(key) or self.users.get(key.lower())
        if user is None:
            user_id = self.by_upn.get(key.lower())
            user = self.users.get(user_id) if user_id else None
        return user

    def dump(self):
        with self.lock:
            return {
                "id": self.id, "display_name": self.display_name, "verified_domains": list(self.verified_domains),
                "directory_sync": self.directory_sync, "features": dict(self.features), "options": dict(self.options),
                "users": [self.users[uid].dump() for uid in self.order if uid in self.users],
                "jobs": [dict(job) for job in self.jobs.values()], "runs": [dict(run) for run in self.runs],
                "watermarks": dict(self.watermarks),
            }


class State:
    """All tenants of the emulator, looked up by id or verified domain."""

    def __init__(self, tenants_config, options=None):
        self.tenants = [Tenant(config, options) for config in tenants_config]
        if not self.tenants:
            raise ValueError("the emulator configuration names no tenant")

    @property
    def default(self):
        return self.tenants[0]

    def tenant(self, key):
        """The tenant named by id or verified domain (case-insensitive), or None."""
        if key is None:
            return None
        key = key.lower()
        for tenant in self.tenants:
            if tenant.id.lower() == key or key in (domain.lower() for domain in tenant.verified_domains):
                return tenant
        return None

    def tenant_of_upn(self, upn):
        """(tenant, user) of a sign-in name across all tenants, or (None, None)."""
        for tenant in self.tenants:
            with tenant.lock:
                user = tenant.find_user(upn)
            if user is not None:
                return tenant, user
        return None, None

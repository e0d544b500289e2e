"""A realistic, deterministic directory population, generated from a seed description.

The same (count, seed) always gives the same users, so a seeded Samba snapshot can be cached
under a key made from the description, and tests can re-derive what the lab contains.
"""

import base64
import collections
import hashlib
import json
import random
import uuid

# Bump when the generated population changes shape: it invalidates cached snapshots.
POPULATION_VERSION = 2


class Forest(collections.namedtuple("Forest", "name realm domain netbios base_dn address host slug mail_domain unverified_domain")):
    """One AD forest of the lab (a single-domain forest, one DC). ``slug`` names its files: <slug>/ (the Samba
    directory), <slug>.pid, <slug>.log and the cache's <slug>-*.tar. Every forest has the same OU shape.
    ``unverified_domain``: a UPN suffix the tenant has not verified (Entra replaces it with the initial domain)."""

    __slots__ = ()

    @property
    def dc_name(self):
        """The DC's computer name (the first label of ``host``)."""
        return self.host.split(".", 1)[0]

    @property
    def lab_ou(self):
        return "OU=Lab," + self.base_dn

    @property
    def sync_scope(self):
        return "OU=Sync," + self.lab_ou

    @property
    def ous(self):
        return (self.lab_ou, self.sync_scope, "OU=Sales," + self.sync_scope, "OU=Engineering," + self.sync_scope,
                "OU=Contractors," + self.lab_ou)   # the last one outside the sync scope

    @property
    def in_scope_ous(self):
        return self.ous[2:4]

    @property
    def out_of_scope_ou(self):
        return self.ous[4]


LAB = Forest("lab.test", "LAB.TEST", "lab.test", "LAB", "DC=lab,DC=test", "127.0.0.1", "dc1.lab.test", "samba",
             "contoso.com", "contoso.example")
# The second forest (Entra Connect's "multiple forests, single tenant" topology), on a loopback address of its own.
FABRIKAM = Forest("fabrikam.test", "FABRIKAM.TEST", "fabrikam.test", "FABRIKAM", "DC=fabrikam,DC=test", "127.0.0.2",
                  "dc1.fabrikam.test", "samba-fabrikam", "fabrikam.com", "fabrikam.example")
FORESTS = (LAB, FABRIKAM)

# The first forest's names, as modules and tests have always read them.
REALM, DOMAIN, NETBIOS, BASE_DN = LAB.realm, LAB.domain, LAB.netbios, LAB.base_dn
MAIL_DOMAIN, UNVERIFIED_UPN_DOMAIN = LAB.mail_domain, LAB.unverified_domain
LAB_OU, SYNC_SCOPE, OUS, IN_SCOPE_OUS, OUT_OF_SCOPE_OU = LAB.lab_ou, LAB.sync_scope, LAB.ous, LAB.in_scope_ous, LAB.out_of_scope_ou

FIRST = ("Adele", "Alex", "Bianca", "Christie", "Debra", "Diego", "Emily", "Enrico", "Grady", "Henrietta", "Isaiah",
         "Johanna", "Joni", "Lee", "Lidia", "Lynne", "Megan", "Miriam", "Nestor", "Patti", "Pradeep", "Raul", "Yuki", "Zrinka")
LAST = ("Vance", "Wilber", "Pala", "Cline", "Berg", "Siciliani", "Braun", "Lambert", "Archie", "Cabral", "Gonzales",
        "Lanier", "Sherman", "Gu", "Holloway", "Ling", "Bowen", "Hooper", "Wilke", "Fernandez", "Gupta", "Quinn", "Tanaka", "Milos")
AREAS = ("425", "206", "312", "646", "415", "737")


def seed_key(count, seed, forest=LAB):
    """Cache key of a seeded directory (the first forest's keys are those of a one-forest lab)."""
    description = {"count": count, "seed": seed, "version": POPULATION_VERSION}
    if forest != LAB:
        description["forest"] = forest.name
    text = json.dumps(description, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def size(count, forest=LAB):
    """How many users ``forest`` has in a lab of ``count`` (LAB_COUNT): all of them in the first, a quarter in others."""
    return count if forest == LAB else max(60, count // 4)


def _rng(forest, seed, legacy, stream):
    """The first forest keeps its random streams (``legacy``: cached snapshots hold its population); another forest
    draws from streams of its own."""
    return random.Random(legacy if forest == LAB else "%s/%s/%d" % (forest.name, stream, seed))


def format_number(area, exchange, line, style):
    """The same North American number written the ways people write it."""
    if style == 0:
        return "+1 %s %s %s" % (area, exchange, line)
    if style == 1:
        return "+1%s%s%s" % (area, exchange, line)
    return "(%s) %s-%s" % (area, exchange, line)


def random_number(rng, style=None):
    style = rng.randrange(3) if style is None else style
    return format_number(rng.choice(AREAS), "555", "%04d" % rng.randrange(10000), style)


def generate_users(count, seed, forest=LAB):
    """The AD users of ``forest`` in a lab of ``count`` users (``size``): a list of dicts with the attributes the lab writes."""
    rng = _rng(forest, seed, seed, "users")
    users = []
    for index in range(size(count, forest)):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        # Other forests write "a.vance3": never one of the first forest's names, so UPNs moved to the initial
        # domain (unverified suffixes) cannot collide in the tenant.
        sam = ("%s%s%d" % (first[0], last, index) if forest == LAB else "%s.%s%d" % (first[0], last, index)).lower()[:20]
        in_scope = rng.random() < 0.85
        ou = rng.choice(forest.in_scope_ous) if in_scope else forest.out_of_scope_ou
        upn_domain = forest.unverified_domain if rng.random() < 0.15 else forest.domain
        user = {
            "sAMAccountName": sam,
            "cn": "%s %s %d" % (first, last, index),
            "ou": ou,
            "in_scope": in_scope,
            "userPrincipalName": "%s@%s" % (sam, upn_domain),
            "givenName": first,
            "sn": last,
            "displayName": "%s %s" % (first, last),
            "mail": "%s.%s%d@%s" % (first.lower(), last.lower(), index, forest.mail_domain),
            "disabled": rng.random() < 0.07,
            "mobile": random_number(rng) if rng.random() < 0.65 else None,
            "otherMobile": [],
            "consistencyGuid": None,
        }
        roll = rng.random()
        if roll < 0.2:
            user["otherMobile"] = [random_number(rng)]
        elif roll < 0.3:
            user["otherMobile"] = sorted({random_number(rng) for _count in range(rng.randint(2, 3))})
        if rng.random() < 0.3:
            user["consistencyGuid"] = uuid.UUID(int=rng.getrandbits(128), version=4).bytes_le
        user["dn"] = "CN=%s,%s" % (user["cn"], ou)
        users.append(user)
    return users


def ldif(users, forest=LAB):
    """LDIF that creates ``forest``'s OU tree and the users (for an offline ldbadd into sam.ldb)."""
    out = []
    for ou in forest.ous:
        out.append("dn: %s\nobjectClass: organizationalUnit\n" % ou)
    for user in users:
        # 0x200 NORMAL_ACCOUNT | 0x20 PASSWD_NOTREQD (the lab's users never sign in to AD), | 0x2 when disabled.
        uac = 0x220 | (0x2 if user["disabled"] else 0)
        lines = [
            "dn: " + user["dn"],
            "objectClass: user",
            "sAMAccountName: " + user["sAMAccountName"],
            "userPrincipalName: " + user["userPrincipalName"],
            "givenName: " + user["givenName"],
            "sn: " + user["sn"],
            "displayName: " + user["displayName"],
            "mail: " + user["mail"],
            "userAccountControl: %d" % uac,
        ]
        if user["mobile"]:
            lines.append("mobile: " + user["mobile"])
        lines.extend("otherMobile: " + value for value in user["otherMobile"])
        if user["consistencyGuid"]:
            lines.append("mS-DS-ConsistencyGuid:: " + base64.b64encode(user["consistencyGuid"]).decode())
        out.append("\n".join(lines) + "\n")
    return "\n".join(out)


def tenant_scenarios(synced_users, count, seed, forest=LAB, foreign=None):
    """What happened in the tenant that a sync cannot explain, chosen deterministically, for ``forest``'s users.

    ``synced_users`` is the list of ``forest``'s synced users in the tenant after the first cycle (dicts from the
    emulator's state dump); ``count`` the number of its users. Returns the control-API payloads:

    - overrides: MSOnline-era cloud edits of mobilePhone (a newer number, an empty one, or the
      same number written differently), which Entra Connect has honoured since;
    - pending: users created in AD after the last cycle (removed from the tenant, so only in AD);
    - orphans: synced users whose AD object was deleted after the last cycle (only in Entra),
      one of them sharing a SID with a live AD user (an ambiguous pairing);
    - cloud_only: users created in the cloud (with the first forest's scenarios only);
    - edge_cases: AD changes (``edge_cases``; for another forest, ``cross_forest_edge_cases`` against ``foreign``,
      the first forest's ``untouched`` users);
    - untouched: synced users no scenario touched.
    """
    rng = _rng(forest, seed, seed * 7919 + 1, "tenant")
    users = sorted(synced_users, key=lambda u: u["onPremisesImmutableId"])
    rng.shuffle(users)
    n_override = max(3, len(users) // 10)
    n_format = max(2, len(users) // 20)
    n_pending = max(1, len(users) // 30)
    overrides, cursor = [], 0
    for user in users[cursor:cursor + n_override]:
        kind = rng.random()
        value = None if kind < 0.15 else random_number(rng, style=1)
        overrides.append({"onPremisesImmutableId": user["onPremisesImmutableId"], "mobilePhone": value})
    cursor += n_override
    for user in users[cursor:cursor + n_format]:
        if not user.get("mobilePhone") or user["mobilePhone"].startswith("("):
            continue
        compact = user["mobilePhone"].replace(" ", "")
        spaced = compact if compact != user["mobilePhone"] else "%s %s %s %s" % (compact[:2], compact[2:5], compact[5:8], compact[8:])
        overrides.append({"onPremisesImmutableId": user["onPremisesImmutableId"], "mobilePhone": spaced})
    cursor += n_format
    pending = [u["id"] for u in users[cursor:cursor + n_pending]]
    cursor += n_pending

    orphans = []
    for index in range(max(2, count // 50)):
        guid = uuid.UUID(int=rng.getrandbits(128), version=4)
        orphans.append({
            "userPrincipalName": "departed%d@%s" % (index, forest.domain),
            "displayName": "Departed User %d" % index,
            "mobilePhone": random_number(rng, style=1) if index % 2 == 0 else None,
            "accountEnabled": True,
            "onPremisesSyncEnabled": True,
            "onPremisesImmutableId": base64.b64encode(guid.bytes_le).decode(),
            "onPremisesSecurityIdentifier": "%s-%d" % (_domain_sid(forest), 90000 + index),
            "onPremisesSamAccountName": "departed%d" % index,
            "onPremisesUserPrincipalName": "departed%d@%s" % (index, forest.domain),
            "onPremisesDomainName": forest.domain,
            "onPremisesDistinguishedName": "CN=Departed User %d,OU=Sales,%s" % (index, forest.sync_scope),
        })
    # A stale cloud object carrying a live user's SID: pairing by anchor and by SID disagree.
    twin = users[-1]
    orphans[0]["onPremisesSecurityIdentifier"] = twin["onPremisesSecurityIdentifier"]

    cloud_only = []
    for index in range(max(2, count // 20) if forest == LAB else 0):
        cloud_only.append({
            "userPrincipalName": "cloud%d@%s" % (index, DOMAIN),
            "displayName": "Cloud Only %d" % index,
            "mobilePhone": random_number(rng, style=1) if rng.random() < 0.6 else None,
            "accountEnabled": True,
        })
    used = {u["onPremisesImmutableId"] for u in users[:cursor]} | {twin["onPremisesImmutableId"]}
    candidates = [u for u in users if u["onPremisesImmutableId"] not in used]
    if forest == LAB:
        edges = edge_cases(candidates, orphans)
    else:
        edges = cross_forest_edge_cases(candidates, foreign or [])
    return {"overrides": overrides + edges["overrides"], "pending": pending, "orphans": orphans, "cloud_only": cloud_only,
            "edge_cases": [dict(change, forest=forest.name) for change in edges["ad_changes"]],
            "untouched": [u for u in candidates if u["onPremisesImmutableId"] not in edges["picked"]]}


def _domain_sid(forest):
    """A made-up domain SID for departed users (their domain's real SID is Samba's, random at provisioning)."""
    if forest == LAB:
        return "S-1-5-21-1004336348-1177238915-682003330"
    digest = hashlib.sha256(forest.name.encode()).digest()
    return "S-1-5-21-" + "-".join(str(int.from_bytes(digest[i:i + 4], "little")) for i in (0, 4, 8))


def cross_forest_edge_cases(candidates, foreign):
    """The edge case only two forests have (``candidates``: synced users of another forest that no other scenario uses;
    ``foreign``: synced users of the first forest no scenario uses), in the shape of ``edge_cases``:

    - duplicate_anchor_across_forests: a user's mS-DS-ConsistencyGuid set to the anchor of a synced user of the first
      forest (the sync engine joins users by source anchor across forests: both AD users claim one cloud object).
    """
    if not candidates or not foreign:
        return {"ad_changes": [], "overrides": [], "picked": []}
    change = {"case": "duplicate_anchor_across_forests", "dn": candidates[0]["onPremisesDistinguishedName"],
              "changes": {"mS-DS-ConsistencyGuid": base64.b64decode(foreign[0]["onPremisesImmutableId"])}}
    return {"ad_changes": [change], "overrides": [], "picked": [candidates[0]["onPremisesImmutableId"]]}


ARABIC_INDIC = {ord(str(digit)): chr(0x0660 + digit) for digit in range(10)}
FULLWIDTH = {ord(char): chr(ord(char) + 0xFEE0) for char in "+0123456789"}


def edge_cases(candidates, orphans):
    """Cases real tenants have that a sync cannot explain, applied to AD (and the tenant) after the first cycle.

    ``candidates``: synced users (emulator state dicts) not used by other scenarios, in a deterministic order.
    Returns ``{"ad_changes": [{"case", "dn", "changes": {attribute: value or None or bytes}}], "overrides": [...],
    "picked": [the immutable ids of the users it uses]}``:

    - duplicate_anchor: an AD user's mS-DS-ConsistencyGuid set to another synced user's anchor (two AD users claim
      one cloud object; its own cloud object is left without an AD anchor);
    - changed_anchor: an AD user's mS-DS-ConsistencyGuid changed after it was synchronized;
    - renamed_to_departed_upn: an AD user renamed to a departed user's UPN, whose cloud number was edited in the cloud;
    - arabic_digits / fullwidth_digits: the same number as the cloud's, in other digits;
    - trailing_space / blank / control_characters: AD values with a trailing space, a lone space, a tab and a newline.
    """
    pool = [user for user in candidates if user.get("mobilePhone") and not user["mobilePhone"].startswith("(")]
    names = ("duplicate_owner", "duplicate_anchor", "changed_anchor", "renamed_to_departed_upn", "arabic_digits",
             "fullwidth_digits", "trailing_space", "blank", "control_characters")
    if len(pool) < len(names):
        return {"ad_changes": [], "overrides": [], "picked": []}
    picked = dict(zip(names, pool))
    changes, overrides = [], []

    def change(case, user, **attributes):
        changes.append({"case": case, "dn": user["onPremisesDistinguishedName"], "changes": attributes})

    owner = picked["duplicate_owner"]
    change("duplicate_anchor", picked["duplicate_anchor"],
           **{"mS-DS-ConsistencyGuid": base64.b64decode(owner["onPremisesImmutableId"])})
    changed = uuid.UUID(bytes=hashlib.sha256(picked["changed_anchor"]["onPremisesImmutableId"].encode()).digest()[:16], version=4)
    change("changed_anchor", picked["changed_anchor"], **{"mS-DS-ConsistencyGuid": changed.bytes_le})
    renamed = picked["renamed_to_departed_upn"]
    change("renamed_to_departed_upn", renamed, userPrincipalName=orphans[-1]["userPrincipalName"])
    overrides.append({"onPremisesImmutableId": renamed["onPremisesImmutableId"], "mobilePhone": "+1 425 555 0142"})
    number = picked["arabic_digits"]["mobilePhone"]
    change("arabic_digits", picked["arabic_digits"], mobile=number.translate(ARABIC_INDIC))
    number = picked["fullwidth_digits"]["mobilePhone"]
    change("fullwidth_digits", picked["fullwidth_digits"], mobile=number.translate(FULLWIDTH))
    change("trailing_space", picked["trailing_space"], mobile=picked["trailing_space"]["mobilePhone"] + " ")
    change("blank", picked["blank"], mobile=" ")
    number = picked["control_characters"]["mobilePhone"]
    change("control_characters", picked["control_characters"],
           mobile=number.replace(" ", "\t", 1) if " " in number else number[:2] + "\t" + number[2:],
           otherMobile=["+1 206 555 0100\n", "+1 206 555 0101"])
    return {"ad_changes": changes, "overrides": overrides, "picked": [user["onPremisesImmutableId"] for user in picked.values()]}

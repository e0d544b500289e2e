"""A realistic, deterministic directory population, generated from a seed description.

The same (count, seed) always gives the same users, so a seeded Samba snapshot can be cached
under a key made from the description, and tests can re-derive what the lab contains.
"""

import base64
import hashlib
import json
import random
import uuid

# Bump when the generated population changes shape: it invalidates cached snapshots.
POPULATION_VERSION = 2

REALM = "LAB.TEST"
DOMAIN = "lab.test"
NETBIOS = "LAB"
BASE_DN = "DC=lab,DC=test"
MAIL_DOMAIN = "contoso.com"
# A UPN suffix the tenant has not verified: Entra replaces it with the initial domain.
UNVERIFIED_UPN_DOMAIN = "contoso.example"
LAB_OU = "OU=Lab," + BASE_DN
SYNC_SCOPE = "OU=Sync," + LAB_OU
OUS = (
    LAB_OU,
    SYNC_SCOPE,
    "OU=Sales," + SYNC_SCOPE,
    "OU=Engineering," + SYNC_SCOPE,
    "OU=Contractors," + LAB_OU,   # outside the sync scope
)
IN_SCOPE_OUS = OUS[2:4]
OUT_OF_SCOPE_OU = OUS[4]

FIRST = ("Adele", "Alex", "Bianca", "Christie", "Debra", "Diego", "Emily", "Enrico", "Grady", "Henrietta", "Isaiah",
         "Johanna", "Joni", "Lee", "Lidia", "Lynne", "Megan", "Miriam", "Nestor", "Patti", "Pradeep", "Raul", "Yuki", "Zrinka")
LAST = ("Vance", "Wilber", "Pala", "Cline", "Berg", "Siciliani", "Braun", "Lambert", "Archie", "Cabral", "Gonzales",
        "Lanier", "Sherman", "Gu", "Holloway", "Ling", "Bowen", "Hooper", "Wilke", "Fernandez", "Gupta", "Quinn", "Tanaka", "Milos")
AREAS = ("425", "206", "312", "646", "415", "737")


def seed_key(count, seed):
    """Cache key of a seeded directory."""
    text = json.dumps({"count": count, "seed": seed, "version": POPULATION_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


def generate_users(count, seed):
    """The AD users: a list of dicts with the attributes the lab writes."""
    rng = random.Random(seed)
    users = []
    for index in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        sam = ("%s%s%d" % (first[0], last, index)).lower()[:20]
        in_scope = rng.random() < 0.85
        ou = rng.choice(IN_SCOPE_OUS) if in_scope else OUT_OF_SCOPE_OU
        upn_domain = UNVERIFIED_UPN_DOMAIN if rng.random() < 0.15 else DOMAIN
        user = {
            "sAMAccountName": sam,
            "cn": "%s %s %d" % (first, last, index),
            "ou": ou,
            "in_scope": in_scope,
            "userPrincipalName": "%s@%s" % (sam, upn_domain),
            "givenName": first,
            "sn": last,
            "displayName": "%s %s" % (first, last),
            "mail": "%s.%s%d@%s" % (first.lower(), last.lower(), index, MAIL_DOMAIN),
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


def ldif(users):
    """LDIF that creates the OU tree and the users (for an offline ldbadd into sam.ldb)."""
    out = []
    for ou in OUS:
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


def tenant_scenarios(synced_users, count, seed):
    """What happened in the tenant that a sync cannot explain, chosen deterministically.

    ``synced_users`` is the tenant's list of synced users after the first cycle (dicts from the
    emulator's state dump). Returns the control-API payloads:

    - overrides: MSOnline-era cloud edits of mobilePhone (a newer number, an empty one, or the
      same number written differently), which Entra Connect has honoured since;
    - pending: users created in AD after the last cycle (removed from the tenant, so only in AD);
    - orphans: synced users whose AD object was deleted after the last cycle (only in Entra),
      one of them sharing a SID with a live AD user (an ambiguous pairing);
    - cloud_only: users created in the cloud.
    """
    rng = random.Random(seed * 7919 + 1)
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
            "userPrincipalName": "departed%d@%s" % (index, DOMAIN),
            "displayName": "Departed User %d" % index,
            "mobilePhone": random_number(rng, style=1) if index % 2 == 0 else None,
            "accountEnabled": True,
            "onPremisesSyncEnabled": True,
            "onPremisesImmutableId": base64.b64encode(guid.bytes_le).decode(),
            "onPremisesSecurityIdentifier": "S-1-5-21-1004336348-1177238915-682003330-%d" % (90000 + index),
            "onPremisesSamAccountName": "departed%d" % index,
            "onPremisesUserPrincipalName": "departed%d@%s" % (index, DOMAIN),
            "onPremisesDomainName": DOMAIN,
            "onPremisesDistinguishedName": "CN=Departed User %d,OU=Sales,%s" % (index, SYNC_SCOPE),
        })
    # A stale cloud object carrying a live user's SID: pairing by anchor and by SID disagree.
    twin = users[-1]
    orphans[0]["onPremisesSecurityIdentifier"] = twin["onPremisesSecurityIdentifier"]

    cloud_only = []
    for index in range(max(2, count // 20)):
        cloud_only.append({
            "userPrincipalName": "cloud%d@%s" % (index, DOMAIN),
            "displayName": "Cloud Only %d" % index,
            "mobilePhone": random_number(rng, style=1) if rng.random() < 0.6 else None,
            "accountEnabled": True,
        })
    used = {u["onPremisesImmutableId"] for u in users[:cursor]} | {twin["onPremisesImmutableId"]}
    edges = edge_cases([u for u in users if u["onPremisesImmutableId"] not in used], orphans)
    return {"overrides": overrides + edges["overrides"], "pending": pending, "orphans": orphans, "cloud_only": cloud_only,
            "edge_cases": edges["ad_changes"]}


ARABIC_INDIC = {ord(str(digit)): chr(0x0660 + digit) for digit in range(10)}
FULLWIDTH = {ord(char): chr(ord(char) + 0xFEE0) for char in "+0123456789"}


def edge_cases(candidates, orphans):
    """Cases real tenants have that a sync cannot explain, applied to AD (and the tenant) after the first cycle.

    ``candidates``: synced users (emulator state dicts) not used by other scenarios, in a deterministic order.
    Returns ``{"ad_changes": [{"case", "dn", "changes": {attribute: value or None or bytes}}], "overrides": [...]}``:

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
        return {"ad_changes": [], "overrides": []}
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
    return {"ad_changes": changes, "overrides": overrides}

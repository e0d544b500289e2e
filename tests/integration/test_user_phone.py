"""entraid.dirsync.user_phone and user_phone_info against the lab (real Samba AD, Graph emulator).

Each test works on its own users: AD users in OU=UserPhoneTests,OU=Lab (outside the sync scope,
so the lab's sync never touches them), Entra ID cloud-only users seeded through the control API.
A lab synced user is used only for read-only checks and is never changed.
"""

import json
import ssl
import uuid

import ldap3
import pytest
from ldap3.utils.dn import escape_rdn
from lab_play import PLAY_HEADER

OU_NAME = "UserPhoneTests"
USER_CLASSES = ["top", "person", "organizationalPerson", "user"]

PLAY = PLAY_HEADER


class ScratchOU:
    """An OU of throw-away AD users (created by the test, deleted afterwards) with LDAP reads to verify state."""

    def __init__(self, lab, name, parent="OU=Lab"):
        ldap = lab["ldap"]
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ldap["ca_file"])
        server = ldap3.Server(ldap["server"], port=ldap["ldaps_port"], use_ssl=True, tls=tls, get_info=ldap3.NONE)
        self.conn = ldap3.Connection(server, ldap["username"], ldap["password"], auto_bind=True, raise_exceptions=False)
        self.dn = "OU=%s,%s,%s" % (name, parent, ldap["base_dn"])
        self.delete()
        assert self.conn.add(self.dn, "organizationalUnit"), self.conn.result

    def add_user(self, cn, sam, upn=None, **attributes):
        dn = "CN=%s,%s" % (escape_rdn(cn), self.dn)
        values = {"sAMAccountName": sam, "userPrincipalName": upn or "%s@lab.test" % sam}
        values.update(attributes)
        assert self.conn.add(dn, USER_CLASSES, values), (dn, self.conn.result)
        return dn

    def phones(self, dn):
        """{"mobile": str or None, "other_mobile": sorted list} as AD holds them now."""
        assert self.conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["mobile", "otherMobile"]), self.conn.result
        attributes = self.conn.response[0]["raw_attributes"]
        mobile = [value.decode("utf-8") for value in attributes.get("mobile", [])]
        return {"mobile": mobile[0] if mobile else None,
                "other_mobile": sorted(value.decode("utf-8") for value in attributes.get("otherMobile", []))}

    def guid(self, dn):
        assert self.conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"]), self.conn.result
        return str(uuid.UUID(bytes_le=self.conn.response[0]["raw_attributes"]["objectGUID"][0]))

    def all_phones(self):
        """{dn: phones} of every user in the OU (one paged search)."""
        found = {}
        pages = self.conn.extend.standard.paged_search(self.dn, "(objectClass=user)", attributes=["mobile", "otherMobile"],
                                                       paged_size=1000, generator=True)
        for item in pages:
            if item.get("type") == "searchResEntry":
                attributes = item["raw_attributes"]
                mobile = [value.decode("utf-8") for value in attributes.get("mobile", [])]
                found[item["dn"]] = {"mobile": mobile[0] if mobile else None,
                                     "other_mobile": sorted(value.decode("utf-8") for value in attributes.get("otherMobile", []))}
        return found

    def delete(self):
        """Delete the OU and everything in it (also leftovers of an interrupted run)."""
        self.conn.search(self.dn, "(objectClass=*)", ldap3.SUBTREE, attributes=["1.1"])
        if self.conn.result.get("result") == 32:
            return
        # Deepest entries first.
        for dn in sorted((item["dn"] for item in self.conn.response if item.get("type") == "searchResEntry"),
                         key=lambda dn: -dn.count(",")):
            self.conn.delete(dn)

    def close(self):
        self.delete()
        self.conn.unbind()


@pytest.fixture
def scratch(lab):
    ou = ScratchOU(lab, OU_NAME)
    yield ou
    ou.close()


@pytest.fixture
def cloud_users(control):
    """``make(n, prefix, **props)`` seeds cloud-only Entra ID users; all are deleted afterwards."""
    created = []

    def make(count, prefix, **props):
        tag = uuid.uuid4().hex[:8]
        users = [dict({"userPrincipalName": "%s-%s-%04d@lab.test" % (prefix, tag, i), "displayName": "%s %d" % (prefix, i)}, **props)
                 for i in range(count)]
        made = control.post("/seed/users", {"users": users})["created"]
        created.extend(user["id"] for user in made)
        return made
    yield make
    if created:
        control.post("/seed/delete", {"ids": created})


def tenant_users(control, ids):
    """{id: user} of the tenant's users with these ids, as the emulator holds them."""
    wanted = set(ids)
    return {user["id"]: user for user in control.get("/state")["tenants"][0]["users"] if user["id"] in wanted}


def failed(run, name):
    """The result of a task that must have failed."""
    recorded = run.task(name)
    assert recorded["status"] == "failed", (name, recorded["result"])
    return recorded["result"]


def task(name, module, args, extra=""):
    text = "    - name: %s\n      %s:\n" % (name, module)
    text += "".join("        %s: %s\n" % (key, json.dumps(value)) for key, value in args.items())
    return text + extra


# -- AD, one user -----------------------------------------------------------------------

def test_ad_single_user_check_apply_again(scratch, playbook):
    dn = scratch.add_user("Single One", "upt-single1", mobile="+1 425 555 0100", otherMobile=["+1 425 555 0111", "+1 425 555 0122"])
    other = scratch.add_user("Single Two", "upt-single2", mobile="+1 425 555 0999")
    args = {"directory": "ad", "identity": "upt-single1@lab.test", "mobile": "+49 89 1234",
            "other_mobile": {"add": ["+49 89 5555"], "remove": ["+1 425 555 0111"]}}
    play = PLAY + task("set", "entraid.dirsync.user_phone", args)

    checked = playbook(play, check=True, diff=True)
    assert checked.rc == 0, checked.stdout
    result = checked.task("set")["result"]
    assert result["changed"] is True
    assert result["dn"] == dn
    assert result["before"] == {"mobile": "+1 425 555 0100", "other_mobile": ["+1 425 555 0111", "+1 425 555 0122"]}
    assert result["after"] == {"mobile": "+49 89 1234", "other_mobile": ["+1 425 555 0122", "+49 89 5555"]}
    assert result["diff"]["before"] == result["before"] and result["diff"]["after"] == result["after"]
    assert scratch.phones(dn) == {"mobile": "+1 425 555 0100", "other_mobile": ["+1 425 555 0111", "+1 425 555 0122"]}

    applied = playbook(play + task("again", "entraid.dirsync.user_phone", args))
    assert applied.rc == 0, applied.stdout
    assert applied.task("set")["result"]["changed"] is True
    assert applied.task("again")["result"]["changed"] is False
    assert scratch.phones(dn) == {"mobile": "+49 89 1234", "other_mobile": ["+1 425 555 0122", "+49 89 5555"]}
    assert scratch.phones(other) == {"mobile": "+1 425 555 0999", "other_mobile": []}


def test_ad_single_user_clear_and_identity_forms(scratch, playbook):
    dn = scratch.add_user("Clear Me", "upt-clear", mobile="+1 425 555 0100", otherMobile=["+1 425 555 0111"])
    guid = scratch.guid(dn)
    play = PLAY
    same_number = {"directory": "ad", "identity": "LAB\\upt-clear", "mobile": "+14255550100", "ignore_format": True}
    play += task("format only", "entraid.dirsync.user_phone", same_number)
    play += task("clear by guid", "entraid.dirsync.user_phone", {"directory": "ad", "identity": guid, "state": "absent"})
    play += task("clear by dn again", "entraid.dirsync.user_phone", {"directory": "ad", "identity": dn, "state": "absent"})
    run = playbook(play)
    assert run.rc == 0, run.stdout
    assert run.task("format only")["result"]["changed"] is False
    cleared = run.task("clear by guid")["result"]
    assert cleared["changed"] is True and cleared["after"] == {"mobile": None, "other_mobile": []}
    assert run.task("clear by dn again")["result"]["changed"] is False
    assert scratch.phones(dn) == {"mobile": None, "other_mobile": []}


# -- AD, 500 users in one task ------------------------------------------------------------

def test_ad_500_users_check_apply_again(scratch, playbook, tmp_path):
    dns, users, expected = {}, [], {}
    for i in range(500):
        sam = "upt-bulk%03d" % i
        start = {"mobile": "+1 425 555 %04d" % i} if i % 2 or i % 10 == 4 else {}
        if i % 5 == 0:
            start["otherMobile"] = ["+1 206 555 %04d" % i]
        dns[i] = scratch.add_user("Bulk %03d" % i, sam, **start)
        if i % 10 == 9:
            users.append({"identity": sam, "state": "absent"})
            expected[dns[i]] = {"mobile": None, "other_mobile": []}
        elif i % 10 == 4:
            # Unchanged: the same number written differently, with ignore_format.
            users.append({"identity": "%s@lab.test" % sam, "mobile": "+1425555%04d" % i})
            expected[dns[i]] = {"mobile": start.get("mobile"), "other_mobile": sorted(start.get("otherMobile", []))}
        else:
            users.append({"identity": "%s@lab.test" % sam, "mobile": "+44 20 7946 %04d" % i, "other_mobile": {"set": ["+44 7700 %06d" % i]}})
            expected[dns[i]] = {"mobile": "+44 20 7946 %04d" % i, "other_mobile": ["+44 7700 %06d" % i]}
    before = scratch.all_phones()
    vars_file = tmp_path / "users.json"
    vars_file.write_text(json.dumps({"phone_users": users}))
    play = PLAY.replace("  tasks:\n", "  vars_files: [%s]\n  tasks:\n" % vars_file)
    body = "    - name: bulk\n      entraid.dirsync.user_phone:\n        directory: ad\n        ignore_format: true\n" \
           "        users: \"{{ phone_users }}\"\n"

    checked = playbook(play + body, check=True, diff=True)
    assert checked.rc == 0, checked.stdout
    result = checked.task("bulk")["result"]
    would_change = sum(1 for dn, phones in expected.items() if phones != before[dn])
    assert result["counts"] == {"total": 500, "changed": would_change, "unchanged": 500 - would_change, "failed": 0}
    lines = result["diff"]["prepared"].splitlines()
    assert len(lines) == min(would_change, 50) + (1 if would_change > 50 else 0)
    assert scratch.all_phones() == before

    applied = playbook(play + body + body.replace("name: bulk", "name: again"))
    assert applied.rc == 0, applied.stdout
    assert applied.task("bulk")["result"]["counts"]["changed"] == would_change
    again = applied.task("again")["result"]
    assert again["changed"] is False and again["counts"]["unchanged"] == 500
    assert scratch.all_phones() == expected


# -- identities with LDAP filter characters ---------------------------------------------

TRICKY = ["st*r@upt.test", "p(a)r)@upt.test", "back\\slash@upt.test", "nul\x00x@upt.test", "*@upt.test"]


def test_filter_characters_are_literal(scratch, playbook, lab):
    dns = {upn: scratch.add_user("Tricky %d" % i, "upt-tricky%d" % i, upn=upn, mobile="+1 000") for i, upn in enumerate(TRICKY[:4])}
    bystander = scratch.add_user("Bystander", "upt-bystander", upn="star@upt.test", mobile="+1 000")
    paren_sam = scratch.add_user("Paren Sam", "upt(x)", mobile="+1 000")
    users = [{"identity": upn, "mobile": "+9 %d" % i} for i, upn in enumerate(TRICKY[:4])]
    users.append({"identity": "upt(x)", "mobile": "+9 sam"})
    # None of these exists literally; as filters they would match several users.
    for ghost in ("*@upt.test", "*", "upt-tricky*", "st\\2ar@upt.test", "*)(userPrincipalName=*"):
        users.append({"identity": ghost, "mobile": "+9 ghost"})
    play = PLAY + task("tricky", "entraid.dirsync.user_phone", {"directory": "ad", "users": users}, "      ignore_errors: true\n")
    run = playbook(play)
    result = failed(run, "tricky")
    by_identity = {item["identity"]: item for item in result["users"]}
    for i, upn in enumerate(TRICKY[:4]):
        assert by_identity[upn]["dn"] == dns[upn] and by_identity[upn]["error"] is None
        assert scratch.phones(dns[upn])["mobile"] == "+9 %d" % i
    assert by_identity["upt(x)"]["dn"] == paren_sam and scratch.phones(paren_sam)["mobile"] == "+9 sam"
    ghosts = [item for item in result["users"] if item["identity"] not in dns and item["identity"] != "upt(x)"]
    assert len(ghosts) == 5
    for item in ghosts:
        assert item["dn"] is None and item["changed"] is False and "No AD user matches" in item["error"]
    assert result["counts"] == {"total": 10, "changed": 5, "unchanged": 0, "failed": 5}
    assert "5 of 10 users failed" in result["msg"]
    assert scratch.phones(bystander)["mobile"] == "+1 000"
    assert all(phones["mobile"] != "+9 ghost" for phones in scratch.all_phones().values())


# -- errors: each clear, nothing written -------------------------------------------------

def test_invalid_values_fail_before_anything_is_written(scratch, playbook):
    dn = scratch.add_user("Valid", "upt-valid", mobile="+1 000")
    users = [{"identity": "upt-valid", "mobile": "+49 1"},
             {"identity": "upt-valid2", "mobile": "1" * 65},
             {"identity": "upt-valid3", "mobile": 4255550100},
             {"identity": "upt-valid4", "other_mobile": {"add": ["+1\n2"]}}]
    play = PLAY + task("invalid", "entraid.dirsync.user_phone", {"directory": "ad", "users": users}, "      ignore_errors: true\n")
    play += task("too long single", "entraid.dirsync.user_phone", {"directory": "ad", "identity": "upt-valid", "mobile": "x" * 65},
                 "      ignore_errors: true\n")
    run = playbook(play)
    msg = failed(run, "invalid")["msg"]
    assert "3 of 4 user entries are invalid; nothing was changed" in msg
    assert "users[1].mobile" in msg and "at most 64" in msg
    assert "users[2].mobile" in msg and "Quote the phone number" in msg
    assert "control character U+000A" in msg
    assert "at most 64" in failed(run, "too long single")["msg"]
    assert scratch.phones(dn)["mobile"] == "+1 000"


def test_unknown_ad_user_is_an_error(playbook):
    play = PLAY + task("unknown", "entraid.dirsync.user_phone", {"directory": "ad", "identity": "upt-nobody-%s" % uuid.uuid4().hex[:6],
                                                                 "mobile": "+1"}, "      ignore_errors: true\n")
    run = playbook(play)
    result = failed(run, "unknown")
    assert "No AD user matches" in result["msg"] and result["changed"] is False


# -- Entra ID ---------------------------------------------------------------------------

def test_entra_single_user_check_apply_again(cloud_users, control, playbook):
    user, bystander = cloud_users(2, "upt-single", mobilePhone="+1 425 555 0100")
    args = {"directory": "entra", "identity": user["userPrincipalName"], "mobile": "+49 30 1234"}
    play = PLAY + task("set", "entraid.dirsync.user_phone", args)
    checked = playbook(play, check=True, diff=True)
    assert checked.rc == 0, checked.stdout
    result = checked.task("set")["result"]
    assert result["changed"] is True and result["id"] == user["id"]
    assert result["before"] == {"mobile": "+1 425 555 0100"} and result["after"] == {"mobile": "+49 30 1234"}
    assert tenant_users(control, [user["id"]])[user["id"]]["mobilePhone"] == "+1 425 555 0100"

    clear = {"directory": "entra", "identity": user["id"], "mobile": ""}
    applied = playbook(play + task("again", "entraid.dirsync.user_phone", args) + task("clear", "entraid.dirsync.user_phone", clear)
                       + task("clear again", "entraid.dirsync.user_phone", clear))
    assert applied.rc == 0, applied.stdout
    assert [applied.task(name)["result"]["changed"] for name in ("set", "again", "clear", "clear again")] == [True, False, True, False]
    state = tenant_users(control, [user["id"], bystander["id"]])
    assert state[user["id"]]["mobilePhone"] is None
    assert state[bystander["id"]]["mobilePhone"] == "+1 425 555 0100"


def test_entra_500_users_check_apply_again(cloud_users, control, playbook, tmp_path):
    made = cloud_users(500, "upt-bulk", mobilePhone="+1 425 555 0100")
    users = []
    for i, user in enumerate(made):
        if i % 3 == 0:
            users.append({"identity": user["userPrincipalName"], "mobile": "+14255550100"})  # format only
        elif i % 3 == 1:
            users.append({"identity": user["id"], "mobile": None})
        else:
            users.append({"identity": user["userPrincipalName"], "mobile": "+33 1 %04d" % i})
    expected = {user["id"]: (None if i % 3 == 1 else "+1 425 555 0100" if i % 3 == 0 else "+33 1 %04d" % i) for i, user in enumerate(made)}
    vars_file = tmp_path / "users.json"
    vars_file.write_text(json.dumps({"phone_users": users}))
    play = PLAY.replace("  tasks:\n", "  vars_files: [%s]\n  tasks:\n" % vars_file)
    body = "    - name: bulk\n      entraid.dirsync.user_phone:\n        directory: entra\n        ignore_format: true\n" \
           "        users: \"{{ phone_users }}\"\n"
    checked = playbook(play + body, check=True)
    assert checked.rc == 0, checked.stdout
    would_change = sum(1 for i in range(500) if i % 3)
    assert checked.task("bulk")["result"]["counts"]["changed"] == would_change
    assert all(user["mobilePhone"] == "+1 425 555 0100" for user in tenant_users(control, expected).values())

    applied = playbook(play + body + body.replace("name: bulk", "name: again"))
    assert applied.rc == 0, applied.stdout
    assert applied.task("bulk")["result"]["counts"]["changed"] == would_change
    assert applied.task("again")["result"]["changed"] is False
    assert {uid: user["mobilePhone"] for uid, user in tenant_users(control, expected).items()} == expected


def test_entra_errors_are_clear_and_write_nothing(cloud_users, control, playbook):
    cloud, = cloud_users(1, "upt-err", mobilePhone="+1 111")
    synced = next(user for user in control.get("/state")["tenants"][0]["users"]
                  if user["onPremisesSyncEnabled"] is True and not user["dirSyncOverrides"])
    users = [{"identity": synced["userPrincipalName"], "mobile": "+1 999 %s" % uuid.uuid4().hex[:4]},
             {"identity": "upt-nobody-%s@lab.test" % uuid.uuid4().hex[:6], "mobile": "+1"},
             {"identity": cloud["userPrincipalName"], "mobile": "+1 222"}]
    play = PLAY + task("mixed", "entraid.dirsync.user_phone", {"directory": "entra", "users": users}, "      ignore_errors: true\n")
    play += task("other mobile", "entraid.dirsync.user_phone", {"directory": "entra", "identity": cloud["id"], "other_mobile": {"add": ["+1"]}},
                 "      ignore_errors: true\n")
    play += task("sam", "entraid.dirsync.user_phone", {"directory": "entra", "identity": "upt-err", "mobile": "+1"}, "      ignore_errors: true\n")
    run = playbook(play)
    mixed = failed(run, "mixed")
    assert mixed["changed"] is True
    assert "2 of 3 users failed" in mixed["msg"] and synced["userPrincipalName"] in mixed["msg"]
    first, second, third = mixed["users"]
    assert "synchronised from on-premises AD" in first["error"] and "directory: ad" in first["error"]
    assert "No Entra ID user" in second["error"]
    assert third["error"] is None and third["changed"] is True
    other = failed(run, "other mobile")
    assert "no API" in other["msg"] and "directory: ad" in other["msg"]
    assert "neither a userPrincipalName nor an object id" in failed(run, "sam")["msg"]
    state = tenant_users(control, [synced["id"], cloud["id"]])
    assert state[synced["id"]]["mobilePhone"] == synced["mobilePhone"]
    assert state[cloud["id"]]["mobilePhone"] == "+1 222"


def test_entra_app_only_change_of_an_administrators_phone_says_what_to_do(cloud_users, control, playbook):
    admin, = cloud_users(1, "upt-admin", mobilePhone="+1 111", roles=["User Administrator"])
    play = PLAY + task("admin", "entraid.dirsync.user_phone", {"directory": "entra", "identity": admin["userPrincipalName"], "mobile": "+1 222"},
                       "      ignore_errors: true\n")
    result = failed(playbook(play), "admin")
    assert "403 Authorization_RequestDenied" in result["msg"] and "Privileged Authentication Administrator" in result["msg"]
    assert "Nothing was changed for this user" in result["msg"]
    assert tenant_users(control, [admin["id"]])[admin["id"]]["mobilePhone"] == "+1 111"


# -- user_phone_info ----------------------------------------------------------------------

def test_info_pairs_both_sides(scratch, cloud_users, control, playbook):
    synced = next(user for user in control.get("/state")["tenants"][0]["users"]
                  if user["onPremisesSyncEnabled"] is True and user["onPremisesImmutableId"]
                  and user["userPrincipalName"] != user["onPremisesUserPrincipalName"])
    cloud, = cloud_users(1, "upt-info", mobilePhone="+1 333")
    local = scratch.add_user("Local Only", "upt-local", mobile="+1 444", otherMobile=["+1 555"])
    identities = [synced["onPremisesSamAccountName"], synced["userPrincipalName"], cloud["userPrincipalName"], "upt-local",
                  "upt-nobody-%s" % uuid.uuid4().hex[:6]]
    play = PLAY + task("info", "entraid.dirsync.user_phone_info", {"identities": identities})
    play += task("ad only", "entraid.dirsync.user_phone_info", {"identities": ["upt-local"], "directories": ["ad"]})
    run = playbook(play, check=True)
    assert run.rc == 0, run.stdout
    by_sam, by_entra_upn, cloud_only, local_only, nobody = run.task("info")["result"]["users"]
    for item in (by_sam, by_entra_upn):
        assert item["paired"] is True
        assert item["ad"]["dn"] == synced["onPremisesDistinguishedName"]
        assert item["ad"]["immutable_id"] == synced["onPremisesImmutableId"]
        assert item["entra"] == {"id": synced["id"], "user_principal_name": synced["userPrincipalName"], "mobile": synced["mobilePhone"],
                                 "on_premises_sync_enabled": True, "on_premises_immutable_id": synced["onPremisesImmutableId"]}
    assert cloud_only["ad"] is None and cloud_only["entra"]["mobile"] == "+1 333" and cloud_only["paired"] is False
    assert local_only["ad"]["dn"] == local and local_only["ad"]["mobile"] == "+1 444" and local_only["ad"]["other_mobile"] == ["+1 555"]
    assert local_only["entra"] is None and "No Entra ID user has onPremisesImmutableId" in local_only["entra_error"]
    assert nobody["ad"] is None and nobody["entra"] is None and "No AD user matches" in nobody["ad_error"]
    ad_only = run.task("ad only")["result"]["users"][0]
    assert ad_only["ad"]["sam_account_name"] == "upt-local" and ad_only["entra"] is None and ad_only["entra_error"] is None

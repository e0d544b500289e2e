"""The emulator's sync engine against a fake AD source (no LDAP, no HTTP)."""

import base64
import uuid

import pytest

from dirsync_lab.emulator.state import Tenant, User
from dirsync_lab.emulator.sync_engine import SyncBusy, SyncEngines, convert_entry, sid_to_string

TENANT_ID = "11111111-2222-3333-4444-555555555555"
SID = bytes([1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0]) + (1001).to_bytes(4, "little") + (2002).to_bytes(4, "little") \
    + (3003).to_bytes(4, "little") + (1104).to_bytes(4, "little")


class FakeAD:
    """A sync scope in memory with AD's uSNChanged bookkeeping; ``read`` as LdapSource.read."""

    def __init__(self, domain="lab.test", usn=1000):
        self.usn = usn
        self.entries = {}
        self.reads = []
        self.domain = domain

    def _dn(self, sam):
        return "CN=%s,OU=Sync,OU=Lab,%s" % (sam, ",".join("DC=" + part for part in self.domain.split(".")))

    def put(self, sam, **attributes):
        self.usn += 1
        dn = self._dn(sam)
        entry = self.entries.get(dn) or {
            "objectGUID": uuid.uuid4().bytes_le, "mS-DS-ConsistencyGuid": None, "userPrincipalName": "%s@%s" % (sam, self.domain),
            "displayName": sam.title(), "givenName": None, "sn": None, "mail": None, "mobile": None, "otherMobile": [],
            "userAccountControl": 512, "objectSid": SID, "distinguishedName": dn, "sAMAccountName": sam}
        entry.update(attributes)
        entry["uSNChanged"] = self.usn
        self.entries[dn] = entry
        return entry

    def remove(self, sam):
        del self.entries[self._dn(sam)]

    def read(self, since_usn=None):
        self.reads.append(since_usn)
        entries = [dict(entry) for entry in self.entries.values() if since_usn is None or entry["uSNChanged"] > since_usn]
        return self.usn, iter(entries)


@pytest.fixture
def ad():
    return FakeAD()


@pytest.fixture
def tenant():
    return Tenant({"id": TENANT_ID, "verified_domains": ["lab.test"], "ldap": {"url": "ldaps://unused"}})


@pytest.fixture
def engine(ad):
    return SyncEngines(cycle_seconds=0, source_factory=lambda _config: ad)


def run(engine, tenant, cycle_type):
    result = engine.wait(tenant, engine.start(tenant, cycle_type)["id"], timeout=30)
    assert result["state"] == "success", result
    return result


def user_of(tenant, upn):
    return tenant.find_user(upn)


def test_initial_cycle_creates_synced_users_with_documented_anchor(engine, tenant, ad):
    guid = uuid.uuid4()
    consistency = uuid.uuid4()
    ad.put("alice", objectGUID=guid.bytes_le, mobile="+1 425 555 0100", otherMobile=["+1 1", "+1 2"], mail="alice@lab.test")
    ad.put("bob", objectGUID=uuid.uuid4().bytes_le, **{"mS-DS-ConsistencyGuid": consistency.bytes_le}, userAccountControl=514)

    result = run(engine, tenant, "initial")

    assert result["created"] == 2 and result["read"] == 2
    alice = user_of(tenant, "ALICE@lab.test")
    assert alice.props["onPremisesImmutableId"] == base64.b64encode(guid.bytes_le).decode()
    assert alice.props["onPremisesSyncEnabled"] is True
    assert alice.props["mobilePhone"] == "+1 425 555 0100"
    assert alice.alternate_mobile_phones == ["+1 1", "+1 2"]
    assert alice.props["onPremisesSecurityIdentifier"] == "S-1-5-21-1001-2002-3003-1104"
    assert alice.props["onPremisesDomainName"] == "lab.test"
    assert alice.props["onPremisesSamAccountName"] == "alice"
    assert alice.props["accountEnabled"] is True
    bob = user_of(tenant, "bob@lab.test")
    assert bob.props["onPremisesImmutableId"] == base64.b64encode(consistency.bytes_le).decode()
    assert bob.props["accountEnabled"] is False


def test_override_is_kept_while_feature_is_off_and_cleared_when_on(engine, tenant, ad):
    ad.put("carol", mobile="+1 AD", otherMobile=["+1 AD-2"])
    run(engine, tenant, "initial")
    carol = user_of(tenant, "carol@lab.test")
    carol.set("mobilePhone", "+1 CLOUD")
    carol.overrides.update({"mobilePhone"})

    kept = run(engine, tenant, "initial")
    assert kept["overrides_kept"] == 1 and kept["overrides_cleared"] == 0
    assert carol.props["mobilePhone"] == "+1 CLOUD"
    assert carol.overrides == {"mobilePhone"}

    tenant.features["bypassDirSyncOverridesEnabled"] = True
    cleared = run(engine, tenant, "initial")
    assert cleared["overrides_cleared"] == 1
    assert carol.props["mobilePhone"] == "+1 AD"
    assert not carol.overrides


def test_delta_reads_only_changes_and_initial_deletes_what_left_scope(engine, tenant, ad):
    ad.put("dave")
    ad.put("erin")
    first = run(engine, tenant, "initial")
    assert first["created"] == 2
    watermark = ad.usn
    with tenant.lock:
        tenant.add_user(User({"userPrincipalName": "orphan@lab.test", "onPremisesSyncEnabled": True, "onPremisesImmutableId": "b3JwaGFu"}))
        tenant.add_user(User({"userPrincipalName": "cloud@lab.test"}))

    ad.put("dave", mobile="+1 NEW")
    ad.remove("erin")
    delta = run(engine, tenant, "delta")
    assert ad.reads[-1] == watermark
    assert delta["read"] == 1 and delta["updated"] == 1 and delta["deleted"] == 0
    assert user_of(tenant, "dave@lab.test").props["mobilePhone"] == "+1 NEW"
    assert user_of(tenant, "orphan@lab.test") is not None and user_of(tenant, "erin@lab.test") is not None

    full = run(engine, tenant, "initial")
    assert full["deleted"] == 2  # erin left the scope, orphan was never in it
    assert user_of(tenant, "erin@lab.test") is None and user_of(tenant, "orphan@lab.test") is None
    assert user_of(tenant, "cloud@lab.test") is not None  # cloud-only users are not the engine's


def test_upn_conflict_is_reported_not_applied(engine, tenant, ad):
    with tenant.lock:
        tenant.add_user(User({"userPrincipalName": "frank@lab.test"}))
    ad.put("frank")
    result = run(engine, tenant, "initial")
    assert result["created"] == 0
    assert "frank@lab.test" in result["errors"][0]["error"]


def test_unverified_upn_suffix_is_replaced(engine, tenant, ad):
    ad.put("gina", userPrincipalName="gina@corp.local")
    run(engine, tenant, "initial")
    gina = user_of(tenant, "gina@lab.test")
    assert gina.props["onPremisesUserPrincipalName"] == "gina@corp.local"


def test_second_cycle_while_one_runs_is_busy_and_failures_are_reported(tenant):
    class Broken:
        def read(self, since_usn=None):
            raise ConnectionError("LDAP server down")

    engine = SyncEngines(cycle_seconds=0.5, source_factory=lambda _config: Broken())
    started = engine.start(tenant, "initial")
    with pytest.raises(SyncBusy):
        engine.start(tenant, "delta")
    result = engine.wait(tenant, started["id"], timeout=30)
    assert result["state"] == "failed" and "LDAP server down" in result["error"]


def test_convert_entry_reads_ldap3_raw_attributes():
    guid = uuid.uuid4()
    raw = {"objectGUID": [guid.bytes_le], "mobile": [b"+1 2"], "otherMobile": [b"a", b"b"], "userAccountControl": [b"66048"],
           "uSNChanged": [b"4242"], "objectSid": [SID]}
    entry = convert_entry("CN=x,DC=lab,DC=test", raw)
    assert entry["objectGUID"] == guid.bytes_le and entry["mobile"] == "+1 2" and entry["otherMobile"] == ["a", "b"]
    assert entry["userAccountControl"] == 66048 and entry["uSNChanged"] == 4242
    assert entry["distinguishedName"] == "CN=x,DC=lab,DC=test" and entry["mail"] is None
    assert sid_to_string(entry["objectSid"]) == "S-1-5-21-1001-2002-3003-1104"


@pytest.fixture
def forests():
    """Two forests' sources (their USNs overlap, as two domains' do) and a tenant fed by both."""
    sources = {"lab.test": FakeAD(), "fabrikam.test": FakeAD("fabrikam.test", usn=1000)}
    tenant = Tenant({"id": TENANT_ID, "verified_domains": ["lab.test", "fabrikam.test"],
                     "ldap_sources": [{"name": name, "url": "ldaps://unused"} for name in sources]})
    return sources, tenant, SyncEngines(cycle_seconds=0, source_factory=lambda config: sources[config["name"]])


def test_every_source_is_read_with_a_watermark_of_its_own(forests):
    sources, tenant, engine = forests
    lab, fabrikam = sources["lab.test"], sources["fabrikam.test"]
    lab.put("alice")
    fabrikam.put("bob")
    fabrikam.put("carol")
    first = run(engine, tenant, "initial")
    assert first["created"] == 3 and first["sources"] == {"lab.test": 1, "fabrikam.test": 2}
    assert tenant.dump()["watermarks"] == {"lab.test": lab.usn, "fabrikam.test": fabrikam.usn}
    assert user_of(tenant, "bob@fabrikam.test").props["onPremisesDomainName"] == "fabrikam.test"

    watermarks = dict(tenant.watermarks)
    fabrikam.put("bob", mobile="+1 NEW")
    delta = run(engine, tenant, "delta")
    assert lab.reads[-1] == watermarks["lab.test"] and fabrikam.reads[-1] == watermarks["fabrikam.test"]
    assert delta["sources"] == {"lab.test": 0, "fabrikam.test": 1} and delta["updated"] == 1
    assert user_of(tenant, "bob@fabrikam.test").props["mobilePhone"] == "+1 NEW"


def test_users_are_joined_by_anchor_across_sources_and_an_initial_cycle_deletes_what_no_source_returned(forests):
    sources, tenant, engine = forests
    lab, fabrikam = sources["lab.test"], sources["fabrikam.test"]
    anchor = uuid.uuid4().bytes_le
    lab.put("dave", objectGUID=anchor)
    fabrikam.put("erin")
    run(engine, tenant, "initial")
    fabrikam.put("dave", **{"mS-DS-ConsistencyGuid": anchor})
    joined = run(engine, tenant, "initial")
    # The second forest's dave is the first forest's cloud object (the source read last gives its values).
    assert joined["created"] == 0 and len(tenant.users) == 2
    assert tenant.users[tenant.by_immutable[base64.b64encode(anchor).decode()]].props["userPrincipalName"] == "dave@fabrikam.test"
    fabrikam.remove("erin")
    full = run(engine, tenant, "initial")
    assert full["deleted"] == 1 and user_of(tenant, "erin@fabrikam.test") is None and len(tenant.users) == 1


def test_a_source_that_cannot_be_read_fails_the_cycle_with_its_name_and_deletes_nothing(forests):
    sources, tenant, engine = forests
    sources["lab.test"].put("frank")
    sources["fabrikam.test"].put("gina")
    run(engine, tenant, "initial")
    watermarks = dict(tenant.watermarks)

    def broken(since_usn=None):
        raise ConnectionError("LDAP server down")
    sources["fabrikam.test"].read = broken
    result = engine.wait(tenant, engine.start(tenant, "initial")["id"], timeout=30)
    assert result["state"] == "failed" and result["error"] == "source fabrikam.test: ConnectionError: LDAP server down"
    assert user_of(tenant, "gina@fabrikam.test") is not None and tenant.watermarks == watermarks


def test_the_one_forest_ldap_key_is_one_source_and_both_keys_are_refused():
    tenant = Tenant({"id": TENANT_ID, "ldap": {"url": "ldaps://unused"}})
    assert [source["name"] for source in tenant.ldap_sources] == ["source1"]
    with pytest.raises(ValueError, match="not both"):
        Tenant({"id": TENANT_ID, "ldap": {"url": "ldaps://a"}, "ldap_sources": [{"url": "ldaps://b"}]})
    with pytest.raises(ValueError, match="unique"):
        Tenant({"id": TENANT_ID, "ldap_sources": [{"name": "a", "url": "ldaps://a"}, {"name": "a", "url": "ldaps://b"}]})

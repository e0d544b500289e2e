"""Unit tests of _ad_sources: several AD sources used as one directory (lookups, routing of writes, their checks)."""

import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils import _ad_sources, _backup, _drift
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import AmbiguousIdentity, IdentityNotFound, InvalidInput

LAB, FABRIKAM, CHILD = "DC=lab,DC=test", "DC=fabrikam,DC=test", "DC=emea,DC=lab,DC=test"


class FakeClient:
    """An ADClient of one domain holding ``users`` ({dn: entry}), as ADSources uses it."""

    domains = {}  # ad_server -> (naming context, users)
    instances = []

    def __init__(self, params):
        FakeClient.instances.append(self)
        self.params = params
        self.host = params["ad_server"][0]
        self.base_dn, self.users = FakeClient.domains[self.host]
        self.reconnections, self.recovered = [], []
        self.asked, self.modified, self.closed = [], [], False

    def connect(self):
        return self

    def close(self):
        self.closed = True

    def resolve_users(self, identities, attributes, search_base=None):
        self.asked.extend(identities)
        found = {}
        for identity in identities:
            matches = [dict(entry) for dn, entry in self.users.items() if identity.lower() in (dn.lower(), entry["sam"])]
            found[identity] = (matches[0] if len(matches) == 1 else
                               AmbiguousIdentity("%r twice" % identity, matches=[entry["dn"] for entry in matches]) if matches
                               else IdentityNotFound("No AD user matches %r." % identity))
        return found

    def paged_search(self, base, ldap_filter, attributes, **_options):
        return (dict(entry) for entry in self.users.values())

    def read(self, dn, attributes, ldap_filter="(objectClass=*)"):
        return dict(self.users[dn]) if dn in self.users else None

    def modify(self, dn, changes, rights_hint=None):
        self.modified.append(dn)


def user(dn, sam):
    return {"dn": dn, "sam": sam}


@pytest.fixture
def two_forests(monkeypatch):
    FakeClient.domains = {
        "dc1.lab.test": (LAB, {"CN=Ann,OU=Sync," + LAB: user("CN=Ann,OU=Sync," + LAB, "ann"),
                               "CN=Jo,OU=Sync," + LAB: user("CN=Jo,OU=Sync," + LAB, "jo")}),
        "dc1.fabrikam.test": (FABRIKAM, {"CN=Bob,OU=Sync," + FABRIKAM: user("CN=Bob,OU=Sync," + FABRIKAM, "bob"),
                                         "CN=Jo,OU=Sync," + FABRIKAM: user("CN=Jo,OU=Sync," + FABRIKAM, "jo")}),
        "dc1.emea.lab.test": (CHILD, {}),
    }
    FakeClient.instances = []
    monkeypatch.setattr(_ad_sources, "ADClient", FakeClient)
    return {"ad_server": ["dc1.lab.test"], "ad_username": "svc@lab.test", "ad_password": "secret", "ad_ca_cert": "/ca.pem",
            "ad_sources": [{"name": "lab.test", "search_bases": ["OU=Sync," + LAB]},
                           {"name": "fabrikam.test", "ad_server": ["dc1.fabrikam.test"], "ad_username": "svc@fabrikam.test",
                            "ad_password": "other", "search_bases": ["OU=Sync," + FABRIKAM]}]}


def test_a_source_takes_the_module_options_it_leaves_out(two_forests):
    configs = _ad_sources.source_configs(two_forests, ["OU=Shared," + LAB])
    (first, first_params, first_bases), (second, second_params, second_bases) = configs
    assert (first, first_params["ad_server"], first_params["ad_password"], first_bases) == (
        "lab.test", ["dc1.lab.test"], "secret", ["OU=Sync," + LAB])
    assert (second, second_params["ad_server"], second_params["ad_password"], second_params["ad_ca_cert"]) == (
        "fabrikam.test", ["dc1.fabrikam.test"], "other", "/ca.pem")
    assert "ad_sources" not in second_params and second_bases == ["OU=Sync," + FABRIKAM]


def test_without_ad_sources_the_module_options_are_the_one_source_named_after_its_domain(two_forests):
    params = dict(two_forests, ad_sources=None)
    with _ad_sources.ADSources(params, ["OU=Sync," + LAB]) as ad:
        assert ad.describe() == [{"name": "lab.test", "domain": LAB, "search_bases": ["OU=Sync," + LAB]}]
        assert ad.single and ad.domains == [LAB]


@pytest.mark.parametrize("sources,message", [
    ([{"name": " "}], r"ad_sources\[0\] has no name"),
    ([{"name": "A"}, {"name": "a"}], "names 'a' twice"),
])
def test_sources_need_distinct_names(two_forests, sources, message):
    with pytest.raises(InvalidInput, match=message):
        _ad_sources.ADSources(dict(two_forests, ad_sources=sources))


def test_search_bases_outside_a_sources_domain_are_refused_before_reading(two_forests):
    two_forests["ad_sources"][1].pop("search_bases")  # takes the module's bases, which are in lab.test
    with pytest.raises(InvalidInput, match="OU=Sync,DC=lab,DC=test of the AD source fabrikam.test are not in its domain"):
        _ad_sources.ADSources(two_forests, ["OU=Sync," + LAB]).connect()
    assert [client.closed for client in FakeClient.instances] == [True, True]  # connect closes what it opened


def test_users_are_looked_up_in_every_source_and_a_name_in_two_is_ambiguous(two_forests):
    with _ad_sources.ADSources(two_forests) as ad:
        found = ad.resolve_users(["ann", "bob", "jo", "nobody"], ["mobile"])
    assert (found["ann"]["dn"], found["ann"]["source"]) == ("CN=Ann,OU=Sync," + LAB, "lab.test")
    assert (found["bob"]["dn"], found["bob"]["source"]) == ("CN=Bob,OU=Sync," + FABRIKAM, "fabrikam.test")
    assert isinstance(found["jo"], AmbiguousIdentity) and "2 AD sources" in str(found["jo"]) and "(fabrikam.test)" in str(found["jo"])
    assert isinstance(found["nobody"], IdentityNotFound) and "in any AD source (lab.test, fabrikam.test)" in str(found["nobody"])


def test_a_name_found_in_one_source_and_ambiguous_in_another_is_ambiguous(two_forests):
    lab_users = FakeClient.domains["dc1.lab.test"][1]
    lab_users["CN=Bob,OU=Other," + LAB] = user("CN=Bob,OU=Other," + LAB, "bob")
    lab_users["CN=Bob2,OU=Other," + LAB] = user("CN=Bob2,OU=Other," + LAB, "bob")
    with _ad_sources.ADSources(two_forests) as ad:
        found = ad.resolve_users(["bob"], ["mobile"])["bob"]
    assert isinstance(found, AmbiguousIdentity) and "3 AD sources" not in str(found)
    assert sorted(found.details["matches"]) == sorted(["CN=Bob,OU=Sync," + FABRIKAM, "CN=Bob,OU=Other," + LAB, "CN=Bob2,OU=Other," + LAB])


def test_a_distinguished_name_is_looked_up_and_written_only_in_its_own_source(two_forests):
    dn = "CN=Bob,OU=Sync," + FABRIKAM
    with _ad_sources.ADSources(two_forests) as ad:
        lab, fabrikam = (source.client for source in ad.sources)
        assert ad.resolve_users([dn], ["mobile"])[dn]["source"] == "fabrikam.test"
        ad.modify(dn, {"mobile": ("replace", ["+1"])})
        ad.modify("CN=Ann,OU=Sync," + LAB, {"mobile": ("replace", ["+1"])})
    assert lab.asked == [] and fabrikam.asked == [dn]
    assert (lab.modified, fabrikam.modified) == (["CN=Ann,OU=Sync," + LAB], [dn])


def test_a_dn_goes_to_the_source_of_its_longest_naming_context(two_forests):
    two_forests["ad_sources"].append({"name": "emea", "ad_server": ["dc1.emea.lab.test"], "search_bases": ["OU=Sync," + CHILD]})
    with _ad_sources.ADSources(two_forests) as ad:
        assert ad.source_of("CN=X,OU=Sync," + CHILD).name == "emea"
        assert ad.source_of("CN=X,OU=Sync," + LAB.lower()).name == "lab.test"
        with pytest.raises(InvalidInput, match="is in none of the AD sources of this run"):
            ad.source_of("CN=X,DC=elsewhere,DC=com")
        assert ad.read("CN=X,DC=elsewhere,DC=com", ["mobile"]) is None


def test_a_domain_wide_search_covers_every_source(two_forests):
    with _ad_sources.ADSources(two_forests) as ad:
        found = sorted((entry["source"], entry["sam"]) for entry in ad.paged_search(None, "(objectClass=user)", ["sAMAccountName"]))
    assert found == [("fabrikam.test", "bob"), ("fabrikam.test", "jo"), ("lab.test", "ann"), ("lab.test", "jo")]


def ad_user(name, anchor, source):
    return _drift.ADUser(dn="CN=%s,OU=Sync,DC=%s,DC=test" % (name, source.split(".")[0]), upn="%s@%s" % (name, source), sam=name,
                         guid="guid-" + name, anchor=anchor, sid=None, mobile="+1 425 555 0100", other_mobile=(), enabled=True,
                         source=source)


def test_an_anchor_claimed_in_two_sources_is_ambiguous_and_names_both():
    entra = [_drift.EntraUser(id="e1", upn="ann@lab.test", onprem_upn=None, mobile="+1 425 555 0199", immutable_id="ANCHOR", sid=None, dn=None)]
    drift = _drift.pair_and_classify([ad_user("ann", "ANCHOR", "lab.test"), ad_user("bob", "ANCHOR", "fabrikam.test")], entra)
    assert drift.counts["ambiguous"] == 2 and drift.counts["only_in_entra"] == 0
    assert {row.ADSource for row in drift.rows} == {"lab.test", "fabrikam.test"}
    assert all("in the AD sources fabrikam.test and lab.test" in row.Note for row in drift.rows)


def test_a_backup_of_two_sources_names_them_and_is_refused_by_a_run_connected_to_one(tmp_path):
    sources = [{"name": "lab.test", "domain": LAB, "search_bases": ["OU=Sync," + LAB]},
               {"name": "fabrikam.test", "domain": FABRIKAM, "search_bases": ["OU=Sync," + FABRIKAM]}]
    users = [ad_user("ann", "A1", "lab.test"), ad_user("bob", "B1", "fabrikam.test")]
    path = _backup.write(str(tmp_path), _backup.build("tenant", None, ["OU=Sync," + LAB, "OU=Sync," + FABRIKAM], None, users, [],
                                                      ad_sources=sources))
    loaded = _backup.load(path, ad_domains=[FABRIKAM.lower(), LAB])
    assert loaded["ad_sources"] == sources and loaded["version"] == 3
    assert {record["dn"]: record["source"] for record in loaded["ad_users"]} == {users[0].dn: "lab.test", users[1].dn: "fabrikam.test"}
    with pytest.raises(InvalidInput, match=r"backup of the AD domain\(s\) DC=fabrikam,DC=test, but this run connects to DC=lab,DC=test"):
        _backup.load(path, ad_domains=[LAB])

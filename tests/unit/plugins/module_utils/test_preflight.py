"""Unit tests of _preflight: what each check reports before the procedure's first write, and what it lets through."""

import pytest

from ansible_collections.entraid.dirsync.plugins.module_utils import _preflight
from ansible_collections.entraid.dirsync.plugins.module_utils._errors import DirsyncError, GraphError, InvalidInput

REQUIRED = ["User.Read.All|User.ReadWrite.All", "Synchronization.ReadWrite.All"]


def test_an_app_only_token_lacking_one_role_names_it_and_what_it_has():
    claims = {"roles": ["User.ReadWrite.All"]}
    problems = _preflight.token_problems(claims, REQUIRED)
    assert problems == ["the application permission (roles) Synchronization.ReadWrite.All is not granted to the sign-in "
                        "(it has: user.readwrite.all)"]


def test_any_one_alternative_satisfies_a_requirement_in_any_case():
    assert _preflight.token_problems({"roles": ["user.read.all", "SYNCHRONIZATION.READWRITE.ALL"]}, REQUIRED) == []


def test_a_delegated_token_is_judged_by_its_scopes_not_its_roles():
    claims = {"scp": "User.Read.All openid", "roles": ["Synchronization.ReadWrite.All"]}
    problems = _preflight.token_problems(claims, REQUIRED)
    assert len(problems) == 1 and problems[0].startswith("the delegated permission (scp) Synchronization.ReadWrite.All")


def test_a_token_without_any_permission_says_none():
    assert _preflight.token_problems({"roles": []}, ["Synchronization.ReadWrite.All"])[0].endswith("(it has: none)")


def test_an_unreadable_token_is_not_reported_as_missing_everything():
    """An opaque token (no claims) is judged by Graph's own answers later, not refused here."""
    assert _preflight.token_problems({}, REQUIRED, global_admin=True) == []


@pytest.mark.parametrize("claims, expected", [
    ({"roles": ["Synchronization.ReadWrite.All"]}, "the sign-in is app-only"),
    ({"scp": "Synchronization.ReadWrite.All", "upn": "helpdesk@lab.test", "wids": ["729827e3-9c14-49f7-bb1b-9608f156bbb8"]},
     "the signed-in user helpdesk@lab.test does not hold the Global Administrator role"),
    ({"scp": "Synchronization.ReadWrite.All", "preferred_username": "nobody@lab.test"}, "nobody@lab.test does not hold"),
])
def test_directory_sync_features_need_a_signed_in_global_administrator(claims, expected):
    problems = _preflight.token_problems(claims, ["Synchronization.ReadWrite.All"], global_admin=True)
    assert len(problems) == 1 and expected in problems[0]


def test_a_global_administrator_passes():
    claims = {"scp": "Synchronization.ReadWrite.All", "wids": [_preflight.GLOBAL_ADMINISTRATOR]}
    assert _preflight.token_problems(claims, ["Synchronization.ReadWrite.All"], global_admin=True) == []


def test_a_blank_permission_entry_is_a_clear_error():
    with pytest.raises(InvalidInput, match="graph_permissions has an empty entry"):
        _preflight.token_problems({"roles": []}, ["User.Read.All", " | "])


class FakeAD:
    """One sample user per base, with the attributes the bind account may write (None: no user under the base)."""

    def __init__(self, allowed_by_base):
        self.allowed_by_base = allowed_by_base
        self.searches = []

    def paged_search(self, base, ldap_filter, attributes, page_size=1000):
        self.searches.append((base, attributes, page_size))
        allowed = self.allowed_by_base[base]
        if allowed is None:
            return iter(())
        return iter([{"dn": "CN=sample," + base, "allowedattributeseffective": allowed}])


def test_ad_write_rights_are_read_from_one_user_under_each_base_and_missing_ones_named():
    ad = FakeAD({"OU=A,DC=lab,DC=test": ["MOBILE", "otherMobile"], "OU=B,DC=lab,DC=test": ["otherMobile"],
                 "OU=Empty,DC=lab,DC=test": None})
    problems = _preflight.ad_write_problems(ad, list(ad.allowed_by_base), ["mobile", "otherMobile"])
    assert problems == ["the AD bind account may not write mobile on CN=sample,OU=B,DC=lab,DC=test (under OU=B,DC=lab,DC=test)"]
    assert [(base, page_size) for base, _attributes, page_size in ad.searches] == [(base, 1) for base in ad.allowed_by_base]
    assert all(attributes == ["allowedAttributesEffective"] for _base, attributes, _size in ad.searches)


class FakeGraph:
    def __init__(self, answer):
        self.answer, self.paths = answer, []

    def get(self, path):
        self.paths.append(path)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.mark.parametrize("service_principal_id, answer, expected", [
    ("  ", {"value": []}, "cloud_sync_service_principal_id is empty"),
    ("sp-1", GraphError("Forbidden: Authorization_RequestDenied", status=403),
     "the Cloud Sync jobs of service principal sp-1 cannot be read: Forbidden"),
    ("sp-1", {"value": []}, "service principal sp-1 has no synchronization job"),
    ("sp-1", {"value": [{"id": "AD2AADProvisioning.x"}]}, None),
])
def test_cloud_sync_jobs_must_be_readable_and_exist(service_principal_id, answer, expected):
    graph = FakeGraph(answer)
    problems = _preflight.cloud_sync_problems(graph, service_principal_id)
    if expected is None:
        assert problems == [] and graph.paths == ["servicePrincipals/sp-1/synchronization/jobs"]
    else:
        assert len(problems) == 1 and problems[0].startswith(expected)
    if not service_principal_id.strip():
        assert graph.paths == []  # nothing asked of Graph with an empty id


def test_problems_become_one_error_that_says_nothing_was_changed():
    _preflight.raise_if([], "the reconcile")  # nothing to say
    with pytest.raises(DirsyncError) as caught:
        _preflight.raise_if(["a", "b"], "the reconcile")
    assert str(caught.value) == ("Preflight: the reconcile cannot run: a; b. Nothing was changed: fix the permissions, then run "
                                 "again.")
    assert caught.value.details["problems"] == ["a", "b"]

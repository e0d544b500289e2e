"""Microsoft's own Python clients, unchanged, against the running lab.

azure-identity and msgraph-sdk are pointed at the lab only through their documented options: the
authority host (``authority``, with ``disable_instance_discovery``), the lab's CA (``connection_verify``
for azure-core, ``verify`` for the httpx client msgraph-sdk is given), and the Graph base URL of the
request adapter. They ask tokens for ``https://graph.microsoft.com/.default``, as they do against Microsoft.
"""

import asyncio
import warnings

import httpx
import pytest
from azure.identity import CertificateCredential, ClientSecretCredential, DeviceCodeCredential, UsernamePasswordCredential
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.on_premises_directory_synchronization import OnPremisesDirectorySynchronization
from msgraph.generated.models.on_premises_directory_synchronization_feature import OnPremisesDirectorySynchronizationFeature
from msgraph.generated.models.user import User
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core import GraphClientFactory

SCOPES = ["https://graph.microsoft.com/.default"]
SYNCED_MESSAGE = "Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration."


@pytest.fixture(autouse=True)
def _lab_ca_only(monkeypatch):
    # The machine's REQUESTS_CA_BUNDLE names other CAs; the clients get the lab CA through their own options.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


def common(lab):
    return {"authority": lab["authority_host"], "disable_instance_discovery": True, "connection_verify": lab["ca_file"]}


def credentials(lab, control, kind):
    apps, users = lab["apps"], lab["users"]
    if kind == "secret":
        return ClientSecretCredential(lab["tenant_id"], apps["automation"]["client_id"], apps["automation"]["client_secret"], **common(lab))
    if kind == "certificate":
        return CertificateCredential(lab["tenant_id"], apps["automation"]["client_id"], certificate_path=apps["automation"]["certificate_path"],
                                     **common(lab))
    if kind == "password":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # Microsoft discourages ROPC; it still works
            return UsernamePasswordCredential(apps["interactive"]["client_id"], users["admin"]["username"], users["admin"]["password"],
                                              tenant_id=lab["tenant_id"], **common(lab))
    assert kind == "device_code"

    def approve(verification_uri, user_code, expires_on):
        assert verification_uri.startswith(lab["authority_host"])
        control.post("/device/approve", {"user_code": user_code, "userPrincipalName": users["admin"]["username"]})
    return DeviceCodeCredential(apps["interactive"]["client_id"], tenant_id=lab["tenant_id"], prompt_callback=approve, **common(lab))


def graph_client(lab, credential):
    auth = AzureIdentityAuthenticationProvider(credential, scopes=SCOPES, allowed_hosts=["localhost"])
    http = GraphClientFactory.create_with_default_middleware(client=httpx.AsyncClient(verify=lab["ca_file"], timeout=60))
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = lab["graph_endpoint"] + "/v1.0"
    return GraphServiceClient(request_adapter=adapter)


def run(coroutine):
    return asyncio.run(coroutine)


@pytest.mark.parametrize("kind", ["secret", "certificate", "password", "device_code"])
def test_azure_identity_credentials_get_graph_tokens(lab, control, kind):
    token = credentials(lab, control, kind).get_token(*SCOPES)
    assert token.token and token.expires_on > 0
    organization = run(graph_client(lab, credentials(lab, control, kind)).organization.get())
    assert [item.id for item in organization.value] == [lab["tenant_id"]]


def test_msgraph_sdk_lists_and_pages_users(lab, control):
    client = graph_client(lab, credentials(lab, control, "secret"))
    query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(select=["id", "userPrincipalName", "onPremisesSyncEnabled"],
                                                                      filter="onPremisesSyncEnabled eq true", top=50)
    config = UsersRequestBuilder.UsersRequestBuilderGetRequestConfiguration(query_parameters=query)

    async def every_page():
        ids = []
        page = await client.users.get(request_configuration=config)
        while page is not None:
            ids.extend(user.id for user in page.value)
            page = await client.users.with_url(page.odata_next_link).get() if page.odata_next_link else None
        return ids
    ids = run(every_page())
    expected = {user["id"] for user in control.get("/state")["tenants"][0]["users"] if user.get("onPremisesSyncEnabled")}
    assert len(ids) == len(set(ids)) and set(ids) == expected and len(ids) > 100


def test_msgraph_sdk_reads_and_patches_sync_features(lab, control):
    client = graph_client(lab, credentials(lab, control, "password"))

    async def flip_and_restore():
        listing = await client.directory.on_premises_synchronization.get()
        [current] = listing.value
        assert current.id == lab["tenant_id"]
        soft_match = current.features.block_soft_match_enabled
        # The SDK sends @odata.type with the body; flip a feature the lab does not use and put it back.
        for value in (not soft_match, soft_match):
            body = OnPremisesDirectorySynchronization(features=OnPremisesDirectorySynchronizationFeature(block_soft_match_enabled=value))
            await client.directory.on_premises_synchronization.by_on_premises_directory_synchronization_id(current.id).patch(body)
            assert control.get("/state")["tenants"][0]["features"]["blockSoftMatchEnabled"] is value
    run(flip_and_restore())


def test_msgraph_sdk_gets_microsofts_error_for_a_synced_users_mobile_phone(lab, control):
    client = graph_client(lab, credentials(lab, control, "secret"))
    synced = next(user for user in control.get("/state")["tenants"][0]["users"] if user.get("onPremisesSyncEnabled"))
    with pytest.raises(ODataError) as info:
        run(client.users.by_user_id(synced["id"]).patch(User(mobile_phone="+1 425 555 0199")))
    assert info.value.response_status_code == 400
    assert info.value.error.code == "Request_BadRequest" and info.value.error.message == SYNCED_MESSAGE


def test_msgraph_sdk_patches_a_cloud_only_user(lab, control):
    client = graph_client(lab, credentials(lab, control, "secret"))
    made = control.post("/seed/users", {"users": [{"userPrincipalName": "sdk-cloud@lab.test", "displayName": "SDK"}]})["created"][0]

    async def patch_and_read():
        await client.users.by_user_id(made["id"]).patch(User(mobile_phone="+1 425 555 0142", usage_location="US"))
        return await client.users.by_user_id(made["id"]).get()
    try:
        user = run(patch_and_read())
        assert user.mobile_phone == "+1 425 555 0142"
    finally:
        control.post("/seed/delete", {"ids": [made["id"]]})


def test_msgraph_sdk_follows_a_users_delta_round_and_its_delta_link(lab, control):
    from msgraph.generated.users.delta.delta_request_builder import DeltaRequestBuilder  # pylint: disable=import-outside-toplevel
    client = graph_client(lab, credentials(lab, control, "secret"))
    query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(select=["id", "userPrincipalName", "mobilePhone"])
    config = DeltaRequestBuilder.DeltaRequestBuilderGetRequestConfiguration(query_parameters=query)
    made = control.post("/seed/users", {"users": [{"userPrincipalName": "sdk-delta@lab.test", "mobilePhone": "+1 425 555 0100"}]})["created"][0]

    async def rounds():
        users, page = [], await client.users.delta.get(request_configuration=config)
        while page.odata_next_link:
            users.extend(page.value)
            page = await client.users.delta.with_url(page.odata_next_link).get()
        users.extend(page.value)
        control.post("/seed/delete", {"ids": [made["id"]]})
        changes = await client.users.delta.with_url(page.odata_delta_link).get()
        return users, changes
    users, changes = run(rounds())
    everyone = {user["id"] for user in control.get("/state")["tenants"][0]["users"]} | {made["id"]}
    assert {user.id for user in users} == everyone and len(users) == len(everyone) > 100
    assert [(user.id, user.additional_data.get("@removed")) for user in changes.value] == [(made["id"], {"reason": "changed"})]
    assert changes.odata_delta_link and not changes.odata_next_link

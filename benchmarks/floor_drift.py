#!/usr/bin/env python
"""The floor of a drift read, with no project code: what any script must do to compare mobile numbers by anchor.

An ldap3 paged search of the sync scope reading objectGUID, mS-DS-ConsistencyGuid and mobile runs in a thread while
msal + requests page Graph's synchronized users ($select=id,mobilePhone,onPremisesImmutableId, $top=999); then a dict
join on the anchor counts the users whose numbers differ. Prints one JSON line: {"ad_users", "entra_users", "differ"}.

    python benchmarks/floor_drift.py <lab.json> <inventory.yml>
"""

import base64
import json
import os
import ssl
import sys
import threading

import ldap3
import msal
import requests
import yaml

USER_FILTER = "(&(objectCategory=person)(objectClass=user))"


def read_ad(lab, out):
    config = lab["ldap"]
    tls = ldap3.Tls(ca_certs_file=config["ca_file"], validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(config["server"], port=config["ldaps_port"], use_ssl=True, tls=tls, get_info=ldap3.NONE)
    connection = ldap3.Connection(server, config["username"], config["password"], auto_bind=True, read_only=True)
    for base in config["sync_scope"]:
        for item in connection.extend.standard.paged_search(base, USER_FILTER, attributes=["objectGUID", "mS-DS-ConsistencyGuid", "mobile"],
                                                            paged_size=1000, generator=True):
            if item.get("type") != "searchResEntry":
                continue
            raw = item["raw_attributes"]
            anchor = (raw.get("mS-DS-ConsistencyGuid") or raw["objectGUID"])[0]
            out[base64.b64encode(anchor).decode("ascii")] = raw["mobile"][0].decode("utf-8") if raw.get("mobile") else None
    connection.unbind()


def read_graph(lab, graph, out):
    session = requests.Session()
    session.verify = graph["ca_bundle"]
    app = msal.ConfidentialClientApplication(graph["client_id"], client_credential=graph["client_secret"],
                                             authority="%s/%s" % (graph["authority_host"], graph["tenant_id"]),
                                             http_client=session, instance_discovery=False)
    token = app.acquire_token_for_client([lab["graph_scope"]])["access_token"]
    url = "%s/v1.0/users" % graph["graph_endpoint"]
    params = {"$filter": "onPremisesSyncEnabled eq true", "$select": "id,mobilePhone,onPremisesImmutableId", "$top": "999"}
    while url:
        page = session.get(url, params=params, headers={"Authorization": "Bearer " + token}, timeout=60,
                           verify=graph["ca_bundle"]).json()
        for user in page["value"]:
            out[user.get("onPremisesImmutableId")] = user.get("mobilePhone")
        url, params = page.get("@odata.nextLink"), None


def main():
    # requests lets these override Session.verify; the lab's CA file is the one to trust.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        os.environ.pop(name, None)
    with open(sys.argv[1], encoding="utf-8") as handle:
        lab = json.load(handle)
    with open(sys.argv[2], encoding="utf-8") as handle:
        graph = yaml.safe_load(handle)["all"]["children"]["tenants"]["hosts"]["lab"]["entraid_graph"]
    ad, entra = {}, {}
    reader = threading.Thread(target=read_ad, args=(lab, ad))
    reader.start()
    read_graph(lab, graph, entra)
    reader.join()
    differ = sum(1 for anchor, mobile in ad.items() if anchor in entra and (mobile or None) != (entra[anchor] or None))
    print(json.dumps({"ad_users": len(ad), "entra_users": len(entra), "differ": differ}))


if __name__ == "__main__":
    main()

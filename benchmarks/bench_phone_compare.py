#!/usr/bin/env python
"""Benchmark of entraid.dirsync.phone_compare against the lab, with the floors it is measured against.

For each population size it (re)starts the lab with that many users, then runs, one after the other,
each in its own process:

- the module (as Ansible runs it: a Python process given its arguments in a JSON file), writing the
  CSV and JSON reports;
- the AD floor: a bare ldap3 paged search of the same attributes under the same search bases;
- the Graph floor: bare requests (one client-credentials token, then the same users pages).

It prints each one's wall time and peak memory (maximum resident set size) and the ratio of the
module's time to the slower floor. Targets at 100,000 users: ratio <= 1.25, module peak < 300 MB.

    PYTHONPATH=lab .venv/bin/python benchmarks/bench_phone_compare.py --counts 10000 50000 100000
    PYTHONPATH=lab .venv/bin/python benchmarks/bench_phone_compare.py --current    # the lab as it runs now

Restarting the lab at another size stops it for everyone using it. When it is done (or fails) the
script restores the default lab (300 users, seed 42) unless --no-restore is given. The first start
at a size seeds the directory (400 to 600 users/s); later starts restore a cached snapshot.
"""

import argparse
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_DIR = os.path.join(ROOT, ".lab")
COLLECTIONS = os.path.join(ROOT, ".venv", "collections")
MODULE = "ansible_collections.entraid.dirsync.plugins.modules.phone_compare"
DEFAULT_LAB = (300, 42)

USER_FILTER = "(&(objectCategory=person)(objectClass=user))"
AD_ATTRIBUTES = ["objectGUID", "mS-DS-ConsistencyGuid", "objectSid", "userPrincipalName", "sAMAccountName",
                 "distinguishedName", "mobile", "otherMobile", "userAccountControl"]
GRAPH_PARAMS = {"$filter": "onPremisesSyncEnabled eq true",
                "$select": "id,userPrincipalName,mobilePhone,onPremisesImmutableId,onPremisesSecurityIdentifier,"
                           "onPremisesUserPrincipalName,onPremisesDistinguishedName",
                "$top": "999"}


def lab_json():
    with open(os.path.join(LAB_DIR, "lab.json"), encoding="utf-8") as handle:
        return json.load(handle)


def lab_host_vars():
    with open(os.path.join(LAB_DIR, "inventory.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["all"]["children"]["tenants"]["hosts"]["lab"]


def lab_up(count, seed):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "lab"))
    print("# lab up --count %d --seed %d (restarts the shared lab)" % (count, seed), flush=True)
    subprocess.run([sys.executable, "-m", "dirsync_lab", "up", "--count", str(count), "--seed", str(seed)], env=env, cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)


# -- the three measured programs (each runs in its own process: `--worker NAME`) ---------------------

def worker_ldap():
    import ldap3  # pylint: disable=import-outside-toplevel
    config, host = lab_json()["ldap"], lab_host_vars()
    tls = ldap3.Tls(ca_certs_file=config["ca_file"], validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(config["server"], port=config["ldaps_port"], use_ssl=True, tls=tls, get_info=ldap3.NONE)
    connection = ldap3.Connection(server, user=config["username"], password=config["password"], auto_bind=True, read_only=True,
                                  auto_referrals=False, check_names=False)
    count = 0
    for base in host["entraid_ad_search_bases"]:
        for item in connection.extend.standard.paged_search(base, USER_FILTER, attributes=AD_ATTRIBUTES, paged_size=1000, generator=True):
            count += item.get("type") == "searchResEntry"
    connection.unbind()
    return count


def worker_graph():
    import requests  # pylint: disable=import-outside-toplevel
    lab = lab_json()
    app = lab["apps"]["automation"]
    session = requests.Session()
    token = session.post("%s/oauth2/v2.0/token" % lab["authority"], verify=lab["ca_file"], data={
        "grant_type": "client_credentials", "client_id": app["client_id"], "client_secret": app["client_secret"],
        "scope": lab["graph_scope"]}).json()["access_token"]
    headers = {"Authorization": "Bearer " + token}
    url, params, count = "%s/v1.0/users" % lab["graph_endpoint"], GRAPH_PARAMS, 0
    while url:
        response = session.get(url, params=params, headers=headers, verify=lab["ca_file"])
        response.raise_for_status()
        page = response.json()
        count += len(page["value"])
        url, params = page.get("@odata.nextLink"), None
    return count


WORKERS = {"ldap": worker_ldap, "graph": worker_graph}


def measure(argv, env=None):
    """Run ``argv``; return (wall seconds, peak RSS in MB, stdout)."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    # wait4 gives this child's own rusage (ru_maxrss in KiB on Linux), not the sum of all children.
    stdout = proc.stdout.read()
    stderr = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit("%s failed (%d):\n%s\n%s" % (" ".join(argv), proc.returncode, stdout.decode()[-2000:], stderr.decode()[-2000:]))
    return elapsed, usage.ru_maxrss / 1024.0, stdout.decode()


def run_module(workdir):
    host = lab_host_vars()
    args = dict(host["entraid_graph"])
    args.update(host["entraid_ad"])
    args.update(search_bases=host["entraid_ad_search_bases"], report_csv=os.path.join(workdir, "drift.csv"),
                report_json=os.path.join(workdir, "drift.json"))
    args_file = os.path.join(workdir, "args.json")
    with open(os.open(args_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    seconds, peak, stdout = measure([sys.executable, "-m", MODULE, args_file], env=env)
    result = json.loads(stdout[stdout.index("{"):])
    if result.get("failed"):
        raise SystemExit("the module failed: %s" % result.get("msg"))
    return seconds, peak, result


def bench(label):
    with tempfile.TemporaryDirectory(prefix="bench-phone-compare-") as workdir:
        module_s, module_mb, result = run_module(workdir)
    ldap_s, ldap_mb, ldap_out = measure([sys.executable, os.path.abspath(__file__), "--worker", "ldap"])
    graph_s, graph_mb, graph_out = measure([sys.executable, os.path.abspath(__file__), "--worker", "graph"])
    floor = max(ldap_s, graph_s)
    row = {"population": label, "ad_users": result["ad_users"], "entra_users": result["entra_users"],
           "module_s": round(module_s, 2), "module_peak_mb": round(module_mb, 1),
           "ldap_floor_s": round(ldap_s, 2), "ldap_floor_peak_mb": round(ldap_mb, 1), "ldap_entries": int(ldap_out),
           "graph_floor_s": round(graph_s, 2), "graph_floor_peak_mb": round(graph_mb, 1), "graph_users": int(graph_out),
           "ratio": round(module_s / floor, 2)}
    print("| %(population)s | %(ad_users)d | %(entra_users)d | %(module_s).2f | %(module_peak_mb).0f | %(ldap_floor_s).2f | "
          "%(graph_floor_s).2f | %(ratio).2f |" % row, flush=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10000, 50000, 100000], help="population sizes (AD users)")
    parser.add_argument("--seed", type=int, default=DEFAULT_LAB[1], help="population seed")
    parser.add_argument("--current", action="store_true", help="measure the lab as it runs now; do not restart it")
    parser.add_argument("--no-restore", action="store_true", help="leave the lab at the last size instead of restoring 300 users")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        print(WORKERS[options.worker]())
        return

    print("| lab users | AD users in scope | synced Entra users | module s | module peak MB | AD floor s | Graph floor s | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    rows = []
    if options.current:
        rows.append(bench(str(lab_json()["seed"]["count"])))
    else:
        try:
            for count in options.counts:
                lab_up(count, options.seed)
                rows.append(bench(str(count)))
        finally:
            if not options.no_restore:
                lab_up(*DEFAULT_LAB)
    if options.json:
        with open(options.json, "w", encoding="utf-8") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()

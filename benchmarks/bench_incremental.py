#!/usr/bin/env python
"""Benchmark of incremental drift: phone_compare with state_file after 1% of the users changed, against a full run.

For each lab size it starts the lab with that many users and writes a first state file (one run, not timed). Each
round then changes 1% of the users (half of them a new AD mobile, half a cloud edit of a synced user's mobilePhone),
and runs, interleaved (the order alternates every round):

- the full run: phone_compare without state_file, as Ansible runs it (AnsiballZ);
- the incremental run: phone_compare with the state file, which reads only what changed since the previous run.

Both are measured as the module process (benchmarks/measure.py as the task's interpreter). The script prints min and
median per side, the ratio incremental/full of the medians and of the minimums, peak memory, and checks that both
runs of a round gave the same counts. Only figures printed here go in the docs.

    make bench-incremental                        # 10,000 and 100,000 users, 5 rounds
    PYTHONPATH=lab .venv/bin/python benchmarks/bench_incremental.py --counts 10000 --rounds 3
"""

import json
import os
import random
import ssl
import sys
import tempfile

import ldap3
import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_drift import COMPARE, LAB_DIR, ONE_FOREST, lab, run_play, run_sizes, summary  # noqa: E402 pylint: disable=wrong-import-position

CHANGED_SHARE = 0.01
USER_FILTER = "(&(objectCategory=person)(objectClass=user))"


def _lab_json():
    with open(os.path.join(LAB_DIR, "lab.json"), encoding="utf-8") as handle:
        return json.load(handle)


def _ldap(described):
    config = described["ldap"]
    tls = ldap3.Tls(ca_certs_file=config["ca_file"], validate=ssl.CERT_REQUIRED)
    server = ldap3.Server(config["server"], port=config["ldaps_port"], use_ssl=True, tls=tls, get_info=ldap3.NONE)
    return ldap3.Connection(server, user=config["username"], password=config["password"], auto_bind=True)


def scope_dns(conn, described):
    dns = []
    for base in described["ldap"]["sync_scope"]:
        for item in conn.extend.standard.paged_search(base, USER_FILTER, attributes=["1.1"], paged_size=1000, generator=True):
            if item.get("type") == "searchResEntry":
                dns.append(item["dn"])
    return dns


def synced_upns(described):
    state = requests.get(described["control_url"] + "/state", timeout=300).json()
    return [user["userPrincipalName"] for user in state["tenants"][0]["users"] if user.get("onPremisesSyncEnabled") is True]


def change_one_percent(rng, conn, dns, upns, described, count):
    """Half of 1% of ``count`` users get a new AD mobile, the other half a cloud edit of mobilePhone."""
    half = max(1, int(count * CHANGED_SHARE / 2))
    for dn in rng.sample(dns, half):
        conn.modify(dn, {"mobile": [(ldap3.MODIFY_REPLACE, ["+1 425 555 %04d" % rng.randrange(10000)])]})
    overrides = [{"userPrincipalName": upn, "mobilePhone": "+1 999 555 %04d" % rng.randrange(10000)} for upn in rng.sample(upns, half)]
    response = requests.post(described["control_url"] + "/seed/overrides", json={"overrides": overrides}, timeout=300)
    response.raise_for_status()


def run_compare(workdir, name, state=None):
    report = os.path.join(workdir, name + ".json")
    task = COMPARE % report
    if state:
        task += "        state_file: %s\n" % state
    measure = run_play(workdir, task)
    with open(report, encoding="utf-8") as handle:
        return measure, json.load(handle)["counts"]


def bench(count, rounds):
    lab("down")
    lab("up", "--count", str(count), env=ONE_FOREST)
    described = _lab_json()
    conn = _ldap(described)
    rng = random.Random(count)
    dns, upns = scope_dns(conn, described), synced_upns(described)
    full, incremental, agree = [], [], True
    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as workdir:
        state = os.path.join(workdir, "state", "drift-state.json")
        run_compare(workdir, "first", state)
        for number in range(rounds):
            change_one_percent(rng, conn, dns, upns, described, count)
            if number % 2 == 0:
                measured_full, full_counts = run_compare(workdir, "full")
                measured_incremental, incremental_counts = run_compare(workdir, "incremental", state)
            else:
                measured_incremental, incremental_counts = run_compare(workdir, "incremental", state)
                measured_full, full_counts = run_compare(workdir, "full")
            full.append(measured_full)
            incremental.append(measured_incremental)
            agree = agree and full_counts == incremental_counts
    conn.unbind()
    f_min, f_med = summary([m["seconds"] for m in full])
    i_min, i_med = summary([m["seconds"] for m in incremental])
    return {"users": count, "rounds": rounds, "full_min": f_min, "full_median": f_med, "incr_min": i_min, "incr_median": i_med,
            "ratio_median": i_med / f_med, "ratio_min": i_min / f_min, "full_peak_mb": max(m["peak_mb"] for m in full),
            "incr_peak_mb": max(m["peak_mb"] for m in incremental), "agree": agree}


def print_row(count, rounds):
    row = bench(count, rounds)
    print("| {users:,} | {rounds} | {full_min:.2f} / {full_median:.2f} | {incr_min:.2f} / {incr_median:.2f} | "
          "{ratio_median:.3f}, {ratio_min:.3f} | {full_peak_mb:.0f} / {incr_peak_mb:.0f} |".format(**row), flush=True)
    print("  (sanity check, incremental and full counts equal in every round: %s)" % row["agree"], file=sys.stderr)


def main():
    run_sizes(__doc__.splitlines()[0], 5, ("lab users", "rounds", "full s (min / median)", "incremental s (min / median)",
                                           "ratio (median, min)", "peak MB full / incremental"), print_row)


if __name__ == "__main__":
    main()

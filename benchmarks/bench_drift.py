#!/usr/bin/env python
"""Honest benchmark of the drift read: phone_compare as Ansible runs it, against a floor with no project code.

For each lab size it starts the lab with that many users, then runs, interleaved (the order alternates every round):

- the floor, benchmarks/floor_drift.py: ldap3 paged search of the sync scope (objectGUID, mS-DS-ConsistencyGuid,
  mobile) in a thread while msal + requests page Graph's synchronized users, then a dict join on the anchor;
- the module: ansible-playbook runs one phone_compare task (AnsiballZ, as in production, writing the JSON report);
  its interpreter is benchmarks/measure.py, so the figures are the module process's own, not ansible-playbook's.

Each measured process reports its wall time and peak resident memory. The script prints min and median per side, the
ratio module/floor of the medians and of the minimums, and the peak memory. Only figures printed here go in the docs.

    make bench                                   # 10,000 and 100,000 users, 5 rounds
    PYTHONPATH=lab .venv/bin/python benchmarks/bench_drift.py --counts 10000 --rounds 3

Restarting the lab at another size stops it for everyone using it; afterwards the default lab is started again unless
--no-restore is given. The first start at a size seeds the directory (100,000 users: about 4 minutes, once).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_DIR = os.environ.get("DIRSYNC_LAB_DIR") or os.path.join(ROOT, ".lab")  # as python -m dirsync_lab finds it
PYTHON = sys.executable
PLAY = """- hosts: lab
  gather_facts: false
  module_defaults:
    group/entraid.dirsync.graph: "{{ entraid_graph }}"
    group/entraid.dirsync.ad: "{{ entraid_ad }}"
  tasks:
    - name: Measured
      vars:
        ansible_python_interpreter: %s
%s
"""
COMPARE = """      entraid.dirsync.phone_compare:
        search_bases: "{{ entraid_ad_search_bases }}"
        report_json: %s
        max_differences: 0
"""


# The floor reads one domain: the measured lab has one forest (the second forest of a default lab would add its users).
ONE_FOREST = {"LAB_FORESTS": "1"}


def lab(*args, env=None):
    subprocess.run([PYTHON, "-m", "dirsync_lab"] + list(args), check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONPATH=os.path.join(ROOT, "lab"), **(env or {})))


def last_measure(path):
    with open(path, encoding="utf-8") as handle:
        return json.loads(handle.read().splitlines()[-1])


def run_floor(workdir):
    out = os.path.join(workdir, "floor.jsonl")
    result = subprocess.run([PYTHON, os.path.join(ROOT, "benchmarks", "measure.py"), out, PYTHON,
                             os.path.join(ROOT, "benchmarks", "floor_drift.py"), os.path.join(LAB_DIR, "lab.json"),
                             os.path.join(LAB_DIR, "inventory.yml")], capture_output=True, text=True, check=True)
    return last_measure(out), json.loads(result.stdout)


def run_play(workdir, task, check=False):
    """Run one module task (YAML lines of the task body) with ansible-playbook against the lab -> the module process's
    measure. The task's interpreter is measure.py, so the figures are the module's own (AnsiballZ), not ansible-playbook's."""
    out = os.path.join(workdir, "module.jsonl")
    wrapper = os.path.join(workdir, "measured-python")
    with open(wrapper, "w", encoding="utf-8") as handle:
        handle.write("#!/bin/sh\nexec %s %s %s %s \"$@\"\n" % (PYTHON, os.path.join(ROOT, "benchmarks", "measure.py"), out, PYTHON))
    os.chmod(wrapper, 0o755)
    play = os.path.join(workdir, "play.yml")
    with open(play, "w", encoding="utf-8") as handle:
        handle.write(PLAY % (wrapper, task))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".venv", "collections"))
    subprocess.run([os.path.join(os.path.dirname(PYTHON), "ansible-playbook"), "-i", os.path.join(LAB_DIR, "inventory.yml"), play]
                   + (["--check"] if check else []), check=True, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    return last_measure(out)


def run_module(workdir):
    measure = run_play(workdir, COMPARE % os.path.join(workdir, "drift.json"))
    with open(os.path.join(workdir, "drift.json"), encoding="utf-8") as handle:
        counts = json.load(handle)["counts"]
    return measure, counts


def summary(values):
    return min(values), statistics.median(values)


def bench(count, rounds):
    lab("down")
    lab("up", "--count", str(count), env=ONE_FOREST)
    floor, module, answers = [], [], {}
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as workdir:
        for number in range(rounds):
            order = (run_floor, run_module) if number % 2 == 0 else (run_module, run_floor)
            for runner in order:
                measure, answers[runner] = runner(workdir)
                (floor if runner is run_floor else module).append(measure)
    floor_answer, module_counts = answers[run_floor], answers[run_module]
    f_min, f_med = summary([m["seconds"] for m in floor])
    m_min, m_med = summary([m["seconds"] for m in module])
    return {"users": count, "rounds": rounds, "floor_min": f_min, "floor_median": f_med, "module_min": m_min, "module_median": m_med,
            "ratio_median": m_med / f_med, "ratio_min": m_min / f_min,
            "floor_peak_mb": max(m["peak_mb"] for m in floor), "module_peak_mb": max(m["peak_mb"] for m in module),
            "floor_differ": floor_answer["differ"], "module_value_or_format_differs":
                module_counts["value_differs"] + module_counts["format_differs"]}


def run_sizes(description, default_rounds, header, print_rows):
    """The command line of the benchmarks: --counts, --rounds, --no-restore. Prints the table ``header`` (its column
    names), then ``print_rows(count, rounds)`` for each lab size, and starts the default lab again at the end."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--counts", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--rounds", type=int, default=default_rounds)
    parser.add_argument("--no-restore", action="store_true")
    args = parser.parse_args()
    print("| %s |" % " | ".join(header))
    print("|%s" % ("---|" * len(header)))
    try:
        for count in args.counts:
            print_rows(count, args.rounds)
    finally:
        if not args.no_restore:
            lab("down")
            lab("up")


def print_drift_row(count, rounds):
    row = bench(count, rounds)
    print("| {users:,} | {rounds} | {floor_min:.2f} / {floor_median:.2f} | {module_min:.2f} / {module_median:.2f} | "
          "{ratio_median:.2f}, {ratio_min:.2f} | {floor_peak_mb:.0f} / {module_peak_mb:.0f} |".format(**row), flush=True)
    print("  (sanity check, users whose numbers differ: floor %d, module value+format %d)"
          % (row["floor_differ"], row["module_value_or_format_differs"]), file=sys.stderr)


def main():
    run_sizes(__doc__.splitlines()[0], 5, ("lab users", "rounds", "floor s (min / median)", "phone_compare s (min / median)",
                                           "ratio (median, min)", "peak MB floor / module"), print_drift_row)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Benchmark: one 1,000-user user_phone task against a loop of 1,000 single-user tasks (needs the lab).

Creates N users in its own OU (OU=UserPhoneBench,OU=Lab, outside the sync scope), runs

  A. one task:  entraid.dirsync.user_phone with users: [N entries]
  B. a loop:    entraid.dirsync.user_phone with identity: "{{ item.identity }}" over the same N users

each writing a new number for every user (so both do N writes), checks that AD holds the
numbers, prints both wall-clock times (each a whole ansible-playbook run) and their ratio,
and deletes the OU. Usage (from the repository root, with the lab up):

    .venv/bin/python benchmarks/bench_user_phone.py [--count 1000]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from test_user_phone import ScratchOU  # noqa: E402  pylint: disable=wrong-import-position

TARGET_RATIO = 20

PLAY = """
- hosts: lab
  gather_facts: false
  module_defaults:
    group/entraid.dirsync.ad: "{{ entraid_ad }}"
  vars_files: [%(vars)s]
  tasks:
%(task)s
"""

BULK = """
    - name: bulk
      entraid.dirsync.user_phone:
        directory: ad
        users: "{{ phone_users }}"
"""

LOOP = """
    - name: loop
      entraid.dirsync.user_phone:
        directory: ad
        identity: "{{ item.identity }}"
        mobile: "{{ item.mobile }}"
      loop: "{{ phone_users }}"
"""


def run_play(workdir, name, task, users, lab_root):
    vars_path = os.path.join(workdir, "%s-vars.json" % name)
    with open(vars_path, "w", encoding="utf-8") as handle:
        json.dump({"phone_users": users}, handle)
    play_path = os.path.join(workdir, "%s.yml" % name)
    with open(play_path, "w", encoding="utf-8") as handle:
        handle.write(PLAY % {"vars": vars_path, "task": task})
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, ".venv", "collections"), ANSIBLE_NOCOLOR="1")
    command = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", os.path.join(lab_root, "inventory.yml"), play_path]
    started = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit("%s failed (rc %d):\n%s" % (name, proc.returncode, (proc.stdout + proc.stderr)[-3000:]))
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="number of users (default 1000)")
    args = parser.parse_args()
    with open(os.path.join(ROOT, ".lab", "lab.json"), encoding="utf-8") as handle:
        lab = json.load(handle)

    ou = ScratchOU(lab, "UserPhoneBench")
    try:
        started = time.monotonic()
        dns = [ou.add_user("Bench %04d" % i, "upb-%04d" % i) for i in range(args.count)]
        print("created %d users in %s in %.1f s" % (len(dns), ou.dn, time.monotonic() - started), flush=True)
        bulk_users = [{"identity": "upb-%04d@lab.test" % i, "mobile": "+1 425 555 %04d" % i} for i in range(args.count)]
        loop_users = [{"identity": "upb-%04d@lab.test" % i, "mobile": "+44 20 7946 %04d" % i} for i in range(args.count)]
        with tempfile.TemporaryDirectory() as workdir:
            bulk = run_play(workdir, "bulk", BULK, bulk_users, lab["root"])
            assert all(p["mobile"] and p["mobile"].startswith("+1 425") for p in ou.all_phones().values()), "bulk did not write every user"
            loop = run_play(workdir, "loop", LOOP, loop_users, lab["root"])
            assert all(p["mobile"] and p["mobile"].startswith("+44 20") for p in ou.all_phones().values()), "loop did not write every user"
    finally:
        ou.close()

    ratio = loop / bulk
    print("one task, %d users:         %7.1f s" % (args.count, bulk))
    print("loop of %d single-user tasks: %7.1f s" % (args.count, loop))
    print("bulk is %.1fx faster (target: at least %dx): %s" % (ratio, TARGET_RATIO, "OK" if ratio >= TARGET_RATIO else "BELOW TARGET"))
    return 0 if ratio >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())

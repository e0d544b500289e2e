#!/usr/bin/env python
"""Peak memory (and wall time) of the modules that read a whole tenant, as Ansible runs them, at several lab sizes.

For each lab size it starts the lab with that many users, then runs, ``--rounds`` times in turn:

- phone_compare (the drift report, written as JSON),
- phone_backup (the backup the procedure takes first),
- phone_reconcile in check mode, against that backup (reads both directories, plans every write, writes nothing),
- phone_restore in check mode, from that backup (reads it and every user it holds, restores nothing).

Each module runs from ansible-playbook through AnsiballZ, with benchmarks/measure.py as its interpreter, so the figures
are the module process's own. The script prints min and median seconds and the highest peak resident memory of each.
Only figures printed here go in the docs.

    make bench-memory                                   # 10,000 and 100,000 users, 3 rounds
    PYTHONPATH=lab .venv/bin/python benchmarks/bench_memory.py --counts 10000 --rounds 1

Like bench_drift.py it restarts the lab at each size (DIRSYNC_LAB_DIR chooses which lab), and starts the default lab
again afterwards unless --no-restore is given.
"""

import glob
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_drift import ONE_FOREST, lab, run_play, run_sizes, summary  # noqa: E402  pylint: disable=wrong-import-position

SCOPE = """        search_bases: "{{ entraid_ad_search_bases }}"
"""
TASKS = {
    "phone_compare": "      entraid.dirsync.phone_compare:\n" + SCOPE + "        report_json: %(workdir)s/drift.json\n"
                     "        max_differences: 0\n",
    "phone_backup": "      entraid.dirsync.phone_backup:\n" + SCOPE + "        backup_dir: %(workdir)s/backups\n",
    "phone_reconcile (check mode)": "      entraid.dirsync.phone_reconcile:\n" + SCOPE + "        backup_path: %(backup)s\n"
                                    "        accept_unresolved: true\n",
    "phone_restore (check mode)": "      entraid.dirsync.phone_restore:\n        backup_path: %(backup)s\n",
}
CHECK_MODE = ("phone_reconcile (check mode)", "phone_restore (check mode)")


def latest_backup(workdir):
    return max(glob.glob(os.path.join(workdir, "backups", "*.json")), key=os.path.getmtime)


def bench(count, rounds):
    lab("down")
    lab("up", "--count", str(count), env=ONE_FOREST)
    measures = {name: [] for name in TASKS}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as workdir:
        for _round in range(rounds):
            for name, task in TASKS.items():
                values = {"workdir": workdir, "backup": latest_backup(workdir) if name in CHECK_MODE else ""}
                measures[name].append(run_play(workdir, task % values, check=name in CHECK_MODE))
    rows = []
    for name, runs in measures.items():
        low, median = summary([run["seconds"] for run in runs])
        rows.append({"users": count, "module": name, "rounds": rounds, "min": low, "median": median,
                     "peak_mb": max(run["peak_mb"] for run in runs)})
    return rows


def print_memory_rows(count, rounds):
    for row in bench(count, rounds):
        print("| {users:,} | {module} | {rounds} | {min:.2f} / {median:.2f} | {peak_mb:.0f} |".format(**row), flush=True)


def main():
    run_sizes(__doc__.splitlines()[0], 3, ("lab users", "module", "rounds", "seconds (min / median)", "peak MB"), print_memory_rows)


if __name__ == "__main__":
    main()

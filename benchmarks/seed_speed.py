#!/usr/bin/env python
"""Seeding time of the lab's directory per population size, measured offline in a temporary copy.

For each size it restores the provisioned Samba domain (.lab/cache/samba-provisioned.tar, made by
the first `make lab-up`) into a temporary directory, seeds the population with the lab's own code
(population.ldif and samba.add_ldif, as `lab up` does) and prints the time. It never touches the
running lab. With --cache it also stores each seeded snapshot the cache lacks under the name
`lab up` restores (samba-<seed key>.tar), so a later `up --count N` restores it instead of seeding.

    PYTHONPATH=lab .venv/bin/python benchmarks/seed_speed.py --counts 10000 50000 100000
    PYTHONPATH=lab .venv/bin/python benchmarks/seed_speed.py --counts 100000 --cache
"""

import argparse
import os
import sys
import tempfile
import time

from dirsync_lab import population, samba

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE_DIR = os.path.join(ROOT, ".lab", "cache")


def seed_once(base, count, seed, cache):
    with tempfile.TemporaryDirectory(prefix="seed-speed-") as workdir:
        target = os.path.join(workdir, "samba")
        samba.restore(target, base)
        started = time.monotonic()
        text = population.ldif(population.generate_users(count, seed))
        generated = time.monotonic()
        samba.add_ldif(target, text)
        seeded = time.monotonic()
        note = ""
        if cache:
            archive = os.path.join(CACHE_DIR, "samba-%s.tar" % population.seed_key(count, seed))
            if os.path.exists(archive):
                note = "%s already cached" % os.path.basename(archive)
            else:
                samba.snapshot(target, archive)
                note = "cached as %s (%d MB, %.0f s)" % (os.path.basename(archive), os.path.getsize(archive) // 2 ** 20,
                                                         time.monotonic() - seeded)
    print("| %d | %.1f | %.1f | %.0f | %s |" % (count, generated - started, seeded - generated, count / (seeded - generated), note),
          flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[10000, 50000, 100000], help="population sizes (AD users)")
    parser.add_argument("--seed", type=int, default=42, help="population seed")
    parser.add_argument("--base", default=os.path.join(CACHE_DIR, "samba-provisioned.tar"), help="the provisioned domain to seed")
    parser.add_argument("--cache", action="store_true", help="store the seeded snapshots the lab's cache lacks")
    options = parser.parse_args()
    if not os.path.exists(options.base):
        sys.exit("%s does not exist: run `make lab-up` once (it provisions the domain and keeps this snapshot)." % options.base)
    print("| users | LDIF s | ldbadd s | users/s | cache |")
    print("| --- | --- | --- | --- | --- |", flush=True)
    for count in options.counts:
        seed_once(options.base, count, options.seed, options.cache)


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Run a command and append its wall time and peak memory to a file: ``measure.py OUT COMMAND...``.

Used as the Python interpreter of a benchmarked module (a shell wrapper execs it), so the figures are those of the
module's own process as Ansible starts it (AnsiballZ), not of ansible-playbook. Standard input and output pass through.
"""

import json
import os
import subprocess
import sys
import time


def main():
    out, command = sys.argv[1], sys.argv[2:]
    started = time.monotonic()
    proc = subprocess.Popen(command)
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - started
    with open(out, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024.0}) + "\n")
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()

"""Command line of the lab: ``python -m dirsync_lab COMMAND`` (the Makefile sets PYTHONPATH=lab)."""

import argparse
import json
import os
import sys

from dirsync_lab.orchestrator import DEFAULT_COUNT, DEFAULT_SEED, Lab
from dirsync_lab.process import LabError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATE_NAME = "entraid-dirsync-lab"


def default_lab_dir(repo=REPO, environ=None):
    """Where the lab keeps its state (keys, passwords, the directory): DIRSYNC_LAB_DIR if set; .lab/ in a checkout.

    An installed collection (ansible-galaxy writes its MANIFEST.json) may be shared or read-only, and anything in
    it is packed again by a build: the lab's secrets go to the user's state directory instead
    ($XDG_STATE_HOME/entraid-dirsync-lab, by default ~/.local/state/entraid-dirsync-lab).
    """
    environ = os.environ if environ is None else environ
    if environ.get("DIRSYNC_LAB_DIR"):
        return environ["DIRSYNC_LAB_DIR"]
    if not os.path.exists(os.path.join(repo, "MANIFEST.json")):
        return os.path.join(repo, ".lab")
    state = environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(state, STATE_NAME)


def _parser():
    parser = argparse.ArgumentParser(prog="python -m dirsync_lab", description="The entraid.dirsync lab: Samba AD DC + Entra ID/Graph emulator.")
    parser.add_argument("--dir", default=default_lab_dir(),
                        help="lab directory (default: %(default)s; .lab/ in a checkout, the user's state directory for an "
                        "installed collection; or set DIRSYNC_LAB_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the lab, seeding (or restoring) the population")
    up.add_argument("--count", type=int, default=int(os.environ.get("LAB_COUNT", DEFAULT_COUNT)), help="number of AD users")
    up.add_argument("--seed", type=int, default=int(os.environ.get("LAB_SEED", DEFAULT_SEED)), help="random seed of the population")
    sub.add_parser("down", help="stop the lab, leaving no process behind")
    sub.add_parser("status", help="is the lab up, and how to reach it")
    sync = sub.add_parser("sync", help="run a sync cycle")
    sync.add_argument("--type", choices=("delta", "initial"), default="delta")
    sync.add_argument("--no-wait", action="store_true", help="return while the cycle runs")
    dump = sub.add_parser("dump", help="print the tenant's state (users, overrides, features) as JSON")
    dump.add_argument("--tenant", help="tenant id (default: the synced tenant)")
    fault = sub.add_parser("fault", help="list, add or clear injected faults")
    fault.add_argument("action", choices=("list", "add", "clear"))
    fault.add_argument("rules", nargs="?", help='JSON list of rules for "add" (see docs/lab-emulator.md), e.g. '
                       '\'[{"match": {"path": "/v1.0/users"}, "action": "status", "status": 429, "every": 3}]\'')
    devices = sub.add_parser("device", help="list pending device-code sign-ins, or approve / deny one")
    devices.add_argument("action", choices=("list", "approve", "deny"))
    devices.add_argument("user_code", nargs="?")
    devices.add_argument("--user", default="admin@lab.test", help="who signs in when approving")
    return parser


def main(argv=None):
    args = _parser().parse_args(argv)
    try:
        lab = Lab(args.dir)
        if args.command == "up":
            lab.up(args.count, args.seed)
        elif args.command == "down":
            lab.down()
        elif args.command == "status":
            running = lab.running()
            if not running:
                print("The lab is down. Start it with: make lab-up")
                return 3
            print(json.dumps({"running": running, "lab_json": lab.lab_json}, indent=2))
        elif args.command == "sync":
            print(json.dumps(lab.control.post("/sync", {"type": args.type, "wait": not args.no_wait}), indent=2))
        elif args.command == "dump":
            print(json.dumps(lab.control.get("/state" + ("?tenant=" + args.tenant if args.tenant else "")), indent=2))
        elif args.command == "fault":
            if args.action == "list":
                result = lab.control.get("/faults")
            elif args.action == "clear":
                result = lab.control.delete("/faults")
            else:
                result = lab.control.post("/faults", {"rules": json.loads(args.rules or "[]")})
            print(json.dumps(result, indent=2))
        elif args.command == "device":
            if args.action == "list":
                result = lab.control.get("/device")
            elif not args.user_code:
                raise LabError("Give the user code shown by the sign-in, e.g.: python -m dirsync_lab device approve ABCD-EFGH")
            elif args.action == "approve":
                result = lab.control.post("/device/approve", {"user_code": args.user_code, "userPrincipalName": args.user})
            else:
                result = lab.control.post("/device/deny", {"user_code": args.user_code})
            print(json.dumps(result, indent=2))
    except LabError as exc:
        print("lab: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

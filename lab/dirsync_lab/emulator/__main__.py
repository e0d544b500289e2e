"""``python -m dirsync_lab.emulator --config PATH``: run the emulator until interrupted."""

import argparse
import json
import logging
import signal
import sys
import threading

from .server import build_server


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m dirsync_lab.emulator", description=__doc__)
    parser.add_argument("--config", required=True, help="the emulator configuration JSON written by the lab")
    parser.add_argument("--log-level", default="INFO", help="Python logging level (default INFO)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    with open(args.config, encoding="utf-8") as handle:
        config = json.load(handle)
    emulator = build_server(config).start()
    logging.getLogger("dirsync_lab.emulator").info("listening on %s (control %s)", emulator.base_url(), emulator.control_url)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

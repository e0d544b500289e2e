"""Small process helpers for the lab: pid files, port checks, waiting."""

import os
import signal
import socket
import subprocess
import time


class LabError(Exception):
    """A lab failure with a message that says what to do."""


def wait_for(predicate, timeout, message, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise LabError(message)


# Local addresses of a listener that takes a port on every address (IPv6's any takes IPv4's too unless V6ONLY).
ANY_ADDRESS = ("0.0.0.0", "*", "::")


def port_owner(port, address="127.0.0.1"):
    """Describe the process listening on a TCP port of ``address`` (or of every address), or None if it is free there.

    Each DC of the lab listens on its own loopback address: a listener on the same port of another address is no
    conflict."""
    try:
        out = subprocess.run(["ss", "-Hltnp", "sport = :%d" % port], capture_output=True, text=True, check=False).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        host = fields[3].rsplit(":", 1)[0].split("%", 1)[0].strip("[]")
        if host in ANY_ADDRESS or host == address:
            return line.split("users:", 1)[1].strip() if "users:" in line else "an unknown process"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return "another process"
    return None


def address_assigned(address):
    """Whether an interface has the IPv4 ``address`` (a loopback address is routed to lo without being one of its)."""
    try:
        out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=False).stdout
    except OSError:
        return False
    return any(len(fields) > 3 and fields[3].split("/", 1)[0] == address for fields in (line.split() for line in out.splitlines()))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_pid(path):
    try:
        with open(path, encoding="ascii") as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def write_pid(path, pid):
    with open(path, "w", encoding="ascii") as handle:
        handle.write("%d\n" % pid)


def stop_group(pid, timeout=15):
    """Stop a process and its whole session (both lab servers start their own)."""
    if not pid or not pid_alive(pid):
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                finished = os.waitpid(pid, os.WNOHANG)[0]
            except ChildProcessError:
                finished = 0 if pid_alive(pid) else pid
            if finished == pid or not pid_alive(pid):
                return
            time.sleep(0.1)

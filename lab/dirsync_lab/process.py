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


def port_owner(port):
    """Describe the process listening on a TCP port, or None if the port is free."""
    try:
        out = subprocess.run(["ss", "-Hltnp", "sport = :%d" % port], capture_output=True, text=True, check=False).stdout
    except OSError:
        out = ""
    if out.strip():
        users = out.split("users:", 1)[1].strip() if "users:" in out else "an unknown process"
        return users
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return "another process"
    return None


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

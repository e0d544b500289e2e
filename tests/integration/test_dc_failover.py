"""More than one domain controller in ad_server, against the lab's Samba DC.

The lab has one DC, so the other "domain controllers" are stand-ins on loopback ports: a closed port, a socket that
accepts connections and never answers, and a TCP relay to the lab's LDAPS port that the test cuts in the middle of a
bulk write (as a DC that crashes would). The relay slows each request down a little so that the cut falls mid-run.
"""

import json
import socket
import threading
import time

import pytest
from lab_play import PLAY_HEADER
from test_user_phone import ScratchOU

USERS = 150


class Relay:
    """127.0.0.1:<port> -> the lab's LDAPS port; ``cut()`` closes every connection and stops listening."""

    def __init__(self, target_port, delay=0.015):
        self.target_port, self.delay = target_port, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets, self.cut_done = [], threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.cut_done.is_set():
            try:
                client, _address = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, self.delay), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, 0), daemon=True).start()

    def _pipe(self, source, target, delay):
        try:
            while True:
                data = source.recv(65536)
                if not data or self.cut_done.is_set():
                    break
                time.sleep(delay)
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self):
        self.cut_done.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress
        except OSError:
            pass
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass


@pytest.fixture
def scratch(lab):
    ou = ScratchOU(lab, "FailoverTests")
    yield ou
    ou.close()


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_and_silent_domain_controllers_are_skipped_in_order(lab, scratch, playbook):
    dn = scratch.add_user("Failover Reader", "fo-reader", mobile="+1 425 555 0199")
    silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog) and never answers the TLS handshake
    try:
        servers = ["127.0.0.1:%d" % _free_port(), "127.0.0.1:%d" % silent.getsockname()[1], lab["ldap"]["server"]]
        play = PLAY_HEADER + """
    - name: read
      entraid.dirsync.user_phone_info:
        identities: [fo-reader@lab.test]
        directories: [ad]
        ad_server: %s
        ad_connect_timeout: 2
    - name: none answers
      ignore_errors: true
      entraid.dirsync.user_phone_info:
        identities: [fo-reader@lab.test]
        directories: [ad]
        ad_server: %s
        ad_connect_timeout: 2
""" % (json.dumps(servers), json.dumps(servers[:2]))
        started = time.monotonic()
        run = playbook(play)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert run.rc == 0, run.stdout[-3000:]
    read = run.task("read")["result"]
    assert read["users"][0]["ad"]["dn"] == dn and read["users"][0]["ad"]["mobile"] == "+1 425 555 0199"
    failed = run.task("none answers")["result"]["msg"]
    assert failed.startswith("None of the 2 domain controllers in ad_server could be reached")
    assert "Connection refused" in failed and "did not answer within 2 seconds" in failed
    # The silent one costs ad_connect_timeout (twice: once per task), not the default 10 s.
    assert elapsed < 25, elapsed


def test_a_bulk_write_that_loses_its_domain_controller_continues_on_the_next(lab, scratch, playbook, tmp_path):
    dns = [scratch.add_user("Failover %03d" % i, "fo-bulk%03d" % i, mobile="+1 425 555 %04d" % i) for i in range(USERS)]
    users = [{"identity": "fo-bulk%03d@lab.test" % i, "mobile": "+44 20 7946 %04d" % i} for i in range(USERS)]
    (tmp_path / "users.json").write_text(json.dumps({"phone_users": users}))
    relay = Relay(lab["ldap"]["ldaps_port"])
    servers = ["127.0.0.1:%d" % relay.port, lab["ldap"]["server"]]
    play = PLAY_HEADER.replace("  tasks:\n", "  vars_files: [%s]\n  tasks:\n" % (tmp_path / "users.json")) + """
    - name: bulk
      entraid.dirsync.user_phone:
        directory: ad
        users: "{{ phone_users }}"
        ad_server: %s
""" % json.dumps(servers)
    written_at_cut = []

    def cut_after_the_first_write():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if scratch.phones(dns[0])["mobile"] == "+44 20 7946 0000":
                relay.cut()
                written_at_cut.append(sum(1 for phones in scratch.all_phones().values() if phones["mobile"].startswith("+44")))
                return
            time.sleep(0.02)
    watcher = threading.Thread(target=cut_after_the_first_write, daemon=True)
    watcher.start()

    run = playbook(play)
    watcher.join(10)

    assert run.rc == 0, run.stdout[-3000:]
    assert written_at_cut and 0 < written_at_cut[0] < USERS, written_at_cut
    result = run.task("bulk")["result"]
    assert result["counts"] == {"total": USERS, "changed": USERS, "unchanged": 0, "failed": 0}
    phones = scratch.all_phones()
    assert all(phones[dn]["mobile"] == "+44 20 7946 %04d" % i for i, dn in enumerate(dns))
    again = playbook(play)
    assert again.rc == 0, again.stdout[-3000:]
    assert again.task("bulk")["result"]["changed"] is False

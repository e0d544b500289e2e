"""The emulator process: an HTTPS server (identity platform + Graph on one host) and a plain
HTTP control server, both threaded, HTTP/1.1 with Content-Length so clients keep connections alive.
"""

import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .adsync_standin import register as register_adsync_standin
from .control import Control
from .faults import Faults
from .graph import Graph
from .http import HttpError, Request, Router
from .identity import Identity, is_identity_path
from .state import State
from .sync_engine import LdapSource, SyncEngines
from .tokens import TokenService

LOG = logging.getLogger("dirsync_lab.emulator")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Many concurrent clients (paging workers) may connect at once.
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # Clients that hang up (or fail the TLS handshake) are routine; keep them out of stderr.
        LOG.debug("connection from %s failed", client_address, exc_info=True)


def _make_handler(emulator, router, secure):
    """A request handler class bound to one router; ``secure`` = the HTTPS server (faults apply)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "dirsync-lab-emulator"
        sys_version = ""
        # Headers and body go out in separate writes; without this, delayed ACKs add ~40 ms per response.
        disable_nagle_algorithm = True

        def setup(self):
            if secure:
                # Handshake here, in the connection's thread, so one slow client cannot block accept().
                self.request.do_handshake()
            super().setup()

        # The parameter name is BaseHTTPRequestHandler's.
        def log_message(self, format, *args):  # pylint: disable=redefined-builtin
            LOG.debug("%s %s", self.address_string(), format % args)

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(self.command, self.path, dict(self.headers.items()), body,
                              scheme="https" if secure else "http", host=emulator.public_host)
            try:
                if secure and not emulator.apply_faults(request):
                    # A "drop" fault: close the connection without any response.
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                handler, groups = router.dispatch(request)
                response = handler(request, **groups)
            except HttpError as error:
                if not secure:
                    error.kind = "control"
                response = error.to_response(request)
            # A bug in the emulator becomes a 500 and the server keeps serving.
            except Exception:  # pylint: disable=broad-except
                LOG.exception("emulator error on %s %s", self.command, self.path)
                error = HttpError(500, "InternalServerError", "The lab emulator failed on this request; see its log.",
                                  kind="graph" if secure else "control")
                response = error.to_response(request)
            payload = response.encode()
            self.send_response(response.status)
            headers = dict(response.headers)
            headers.setdefault("request-id", request.request_id)
            headers.setdefault("client-request-id", request.client_request_id)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    return Handler


class Emulator:
    """Everything one emulator process runs. ``start()`` returns once both servers listen."""

    def __init__(self, config, source_factory=LdapSource):
        self.config = config
        self.state = State(config["tenants"], config.get("options"))
        self.tokens = TokenService(config["signing_key"], config.get("token_lifetime", 3600))
        self.faults = Faults()
        self.sync = SyncEngines(config.get("sync_cycle_seconds", 2.0), source_factory)
        self.public_host = config.get("public_host", "localhost")
        audiences = list(config.get("graph_audiences") or ["https://%s" % self.public_host, "00000003-0000-0000-c000-000000000000"])
        # Clients written for Microsoft (azure-identity, msgraph-sdk) ask for https://graph.microsoft.com/.default.
        if "https://graph.microsoft.com" not in audiences:
            audiences.append("https://graph.microsoft.com")
        self.identity = Identity(self.state, self.tokens, audiences, self.base_url, self.public_host)
        self.graph = Graph(self.state, self.tokens, audiences, self.base_url, self.sync)
        self.control = Control(self.state, self.sync, self.faults, self.identity)
        # The Entra Connect server's ADSync cmdlets, answered on the control port.
        register_adsync_standin(self.control.router, self)
        self._https = None
        self._control = None
        self._threads = []

    @property
    def https_port(self):
        return self._https.server_address[1]

    @property
    def control_port(self):
        return self._control.server_address[1]

    def base_url(self):
        """https://<public_host>[:port] as the identity platform and Graph name themselves."""
        port = self.https_port if self._https else self.config["listen"].get("port", 443)
        return "https://%s" % self.public_host if port == 443 else "https://%s:%d" % (self.public_host, port)

    @property
    def control_url(self):
        return "http://%s:%d" % (self.config["control"].get("host", "127.0.0.1"), self.control_port)

    def apply_faults(self, request):
        """Apply the fault rules firing on ``request``; False when the connection must be dropped."""
        for rule in self.faults.firing(request):
            if rule.action == "latency":
                time.sleep(rule.seconds)
            elif rule.action == "token_lifetime":
                request.token_lifetime = rule.seconds
            elif rule.action == "drop":
                return False
            else:
                raise rule.error("oauth" if is_identity_path(request.path) else "graph")
        return True

    def start(self):
        listen = self.config["listen"]
        tls = self.config["tls"]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls["cert"], tls["key"])
        router = Router()
        router.include(self.identity.router)
        router.include(self.graph.router)
        self._https = _Server((listen.get("host", "127.0.0.1"), listen.get("port", 443)), _make_handler(self, router, True))
        self._https.socket = context.wrap_socket(self._https.socket, server_side=True, do_handshake_on_connect=False)
        self.tokens.public_base = self.base_url()
        control = self.config["control"]
        self._control = _Server((control.get("host", "127.0.0.1"), control.get("port", 8450)), _make_handler(self, self.control.router, False))
        for server in (self._https, self._control):
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self):
        for server in (self._https, self._control):
            if server is not None:
                server.shutdown()
                server.server_close()
        for thread in self._threads:
            thread.join(5)
        self._threads = []


def build_server(config, source_factory=LdapSource):
    """The emulator for ``config`` (the JSON the lab writes); call ``.start()`` then ``.stop()``."""
    return Emulator(config, source_factory)

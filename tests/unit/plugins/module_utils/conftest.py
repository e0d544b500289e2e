"""A tiny HTTPS server on 127.0.0.1 with its own CA, standing in for Graph and the identity platform."""

import datetime
import ipaddress
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, issuer, public_key, signing_key, ca, sans=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer)).public_key(public_key)
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=2))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _pem_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1 signed by it, and an unrelated CA."""
    directory = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("unit test CA", "unit test CA", ca_key.public_key(), ca_key, True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate("localhost", "unit test CA", server_key.public_key(), ca_key, False, sans=True)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other_cert = _certificate("other CA", "other CA", other_key.public_key(), other_key, True)
    paths = {"ca": directory / "ca.pem", "server": directory / "server.pem", "other_ca": directory / "other.pem"}
    paths["ca"].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths["other_ca"].write_bytes(other_cert.public_bytes(serialization.Encoding.PEM))
    paths["server"].write_bytes(_pem_key(server_key) + server_cert.public_bytes(serialization.Encoding.PEM))
    return {name: str(path) for name, path in paths.items()}


class Recorded:
    def __init__(self, method, target, headers, body):
        split = urlsplit(target)
        self.method = method
        self.path = split.path
        self.query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.body = body

    def form(self):
        return {k: v[0] for k, v in parse_qs(self.body.decode("utf-8")).items()}


class FakeServer:
    """``handler(recorded) -> (status, headers, body)``; body dict is sent as JSON. ``requests`` lists what arrived."""

    def __init__(self, httpd):
        self.httpd = httpd
        self.handler = lambda request: (404, {}, {"error": {"code": "NotFound", "message": "no handler"}})
        self.requests = []

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.httpd.server_address[1]

    def respond(self, responses):
        """Answer with the given (status, headers, body) tuples in order."""
        queue = list(responses)
        self.handler = lambda request: queue.pop(0)


def _make_handler(server_ref):
    class Handler(BaseHTTPRequestHandler):
        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            recorded = Recorded(self.command, self.path, dict(self.headers), self.rfile.read(length) if length else b"")
            fake = server_ref[0]
            fake.requests.append(recorded)
            status, headers, body = fake.handler(recorded)
            payload = json.dumps(body).encode("utf-8") if isinstance(body, (dict, list)) else (body or b"")
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if payload:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PATCH = do_DELETE = _handle

        def log_message(self, *args):  # keep test output quiet
            pass

    return Handler


@pytest.fixture
def https_server(pki):
    ref = [None]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(ref))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server"])
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    ref[0] = FakeServer(httpd)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield ref[0]
    httpd.shutdown()
    httpd.server_close()

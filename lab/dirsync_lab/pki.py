"""The lab's certificates: one CA, one server certificate (Samba LDAPS and the emulator's HTTPS),
an application certificate for certificate sign-in, and the token signing key.

Generated when the lab starts (``ensure_pki``); kept while the files exist so that a running
lab, cached Samba snapshots and users' copies of ``ca.pem`` stay valid together.
"""

import datetime
import hashlib
import ipaddress
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dirsync_lab.files import write_atomic

# Microsoft's public host names too: a test may resolve them to the lab in a private mount namespace
# (tests/integration/test_default_cloud.py) to run the modules with their default endpoints.
# One certificate for every forest's DC (each on its own loopback address).
SERVER_NAMES = ("localhost", "dc1.lab.test", "dc1.fabrikam.test", "login.microsoftonline.com", "graph.microsoft.com")
SERVER_IPS = ("127.0.0.1", "127.0.0.2")


def _key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _builder(subject, issuer, public_key, days):
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days)))


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "entraid.dirsync lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def thumbprint(cert_pem):
    """SHA-1 thumbprint (hex, upper case) of a PEM certificate, as Entra shows it."""
    cert = x509.load_pem_x509_certificate(cert_pem if isinstance(cert_pem, bytes) else cert_pem.encode())
    return hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()  # nosec - Entra's thumbprint is SHA-1


def _server_cert(server_key, ca_key, ca_name):
    sans = [x509.DNSName(n) for n in SERVER_NAMES] + [x509.IPAddress(ipaddress.ip_address(i)) for i in SERVER_IPS]
    return (_builder(_name("localhost"), ca_name, server_key.public_key(), 825)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))


def _server_names_missing(path):
    """SERVER_NAMES and SERVER_IPS the certificate at ``path`` does not name."""
    with open(path, "rb") as handle:
        cert = x509.load_pem_x509_certificate(handle.read())
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = sans.get_values_for_type(x509.DNSName) + [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    return sorted(set(SERVER_NAMES + SERVER_IPS) - set(names))


def ensure_pki(directory):
    """Create (once) and return the paths of the lab's keys and certificates."""
    os.makedirs(directory, mode=0o700, exist_ok=True)
    paths = {
        "ca_cert": os.path.join(directory, "ca.pem"),
        "ca_key": os.path.join(directory, "ca.key"),
        "server_cert": os.path.join(directory, "server.pem"),
        "server_key": os.path.join(directory, "server.key"),
        "app_cert": os.path.join(directory, "app-cert.pem"),
        "app_key": os.path.join(directory, "app-key.pem"),
        "app_bundle": os.path.join(directory, "app.pem"),
        "signing_key": os.path.join(directory, "signing.key"),
    }
    if all(os.path.exists(p) for p in paths.values()):
        if not _server_names_missing(paths["server_cert"]):
            return paths
        # An older lab's server certificate: issue a new one from the same CA, so copies of ca.pem stay valid.
        with open(paths["ca_key"], "rb") as handle:
            ca_key = serialization.load_pem_private_key(handle.read(), password=None)
        with open(paths["ca_cert"], "rb") as handle:
            ca_name = x509.load_pem_x509_certificate(handle.read()).subject
        server_key = _key()
        write_atomic(paths["server_key"], _key_pem(server_key))
        write_atomic(paths["server_cert"], _cert_pem(_server_cert(server_key, ca_key, ca_name)), 0o644)
        return paths

    ca_key = _key()
    ca_name = _name("entraid.dirsync lab CA")
    ca_cert = (_builder(ca_name, ca_name, ca_key.public_key(), 3650)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                            content_commitment=False, key_encipherment=False, data_encipherment=False,
                                            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))

    server_key = _key()
    server_cert = _server_cert(server_key, ca_key, ca_name)

    # Entra accepts self-signed application certificates; the lab's is self-signed too.
    app_key = _key()
    app_name = _name("entraid.dirsync lab automation app")
    app_cert = (_builder(app_name, app_name, app_key.public_key(), 825)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .sign(app_key, hashes.SHA256()))

    write_atomic(paths["ca_key"], _key_pem(ca_key))
    write_atomic(paths["ca_cert"], _cert_pem(ca_cert), 0o644)
    write_atomic(paths["server_key"], _key_pem(server_key))
    write_atomic(paths["server_cert"], _cert_pem(server_cert), 0o644)
    write_atomic(paths["app_key"], _key_pem(app_key))
    write_atomic(paths["app_cert"], _cert_pem(app_cert), 0o644)
    write_atomic(paths["app_bundle"], _key_pem(app_key) + _cert_pem(app_cert))
    write_atomic(paths["signing_key"], _key_pem(_key()))
    return paths

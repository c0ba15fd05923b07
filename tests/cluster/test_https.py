"""A token-auth cluster behind https: the probe and Ray's client verify the certificate (a private
CA through ``REQUESTS_CA_BUNDLE``), and a token sent over plain http beyond loopback is warned of."""

from __future__ import annotations

import datetime
import http.server
import json
import ssl
import threading

import pytest

pytest.importorskip("ray")
x509 = pytest.importorskip("cryptography.x509")

from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from visionflow.cluster import head, jobs  # noqa: E402


def self_signed(folder) -> tuple[str, str]:
    """(certificate, key) PEM files of a self-signed certificate for 127.0.0.1."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


@pytest.fixture
def https_dashboard(tmp_path):
    """A stand-in for a dashboard behind a TLS proxy: answers /api/version, records the tokens."""
    import ray

    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            body = json.dumps({"version": "4", "ray_version": ray.__version__}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    cert_file, key_file = self_signed(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", cert_file, seen
    server.shutdown()
    server.server_close()


def test_an_https_address_with_a_private_ca_connects_and_sends_the_token(
    https_dashboard, monkeypatch, capsys
):
    address, cert_file, seen = https_dashboard
    monkeypatch.setenv("RAY_AUTH_TOKEN", "secret")
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert_file)
    client = jobs.connect(address)
    assert client.get_address() == address
    assert seen and set(seen) == {"Bearer secret"}  # our probe and Ray's client both
    assert "warning" not in capsys.readouterr().err


def test_an_unknown_certificate_is_refused_in_one_line(https_dashboard, monkeypatch):
    address, _, _ = https_dashboard
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    with pytest.raises(head.ClusterError, match="CERTIFICATE_VERIFY_FAILED|certificate verify"):
        head.get_json(f"{address}/api/version")


def test_a_token_over_plain_http_beyond_loopback_is_warned_of(capsys):
    head.warn_if_clear_text("http://10.0.0.5:8265", head.bearer("secret"))
    head.warn_if_clear_text("https://10.0.0.5:8265", head.bearer("secret"))
    head.warn_if_clear_text("http://127.0.0.1:8265", head.bearer("secret"))
    head.warn_if_clear_text("http://10.0.0.5:8265", {})
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "http://10.0.0.5:8265" in lines[0] and "clear text" in lines[0]

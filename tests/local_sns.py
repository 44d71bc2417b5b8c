"""A stand-in for Amazon SNS on 127.0.0.1: a signing key, its certificates served over HTTP,
SNS's signature over a message, and a SubscribeURL that records its visits.

Point `Settings.sns_origin_pattern` (CONTACTREPORTS_SNS_ORIGIN_PATTERN) at `origin_pattern`.
"""

from __future__ import annotations

import base64
import re
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

# The fields SNS signs, whichever of them a message has; sorted, as the documentation says.
SIGNED = {"Message", "MessageId", "Subject", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"}
HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
CONFIRMED = b"<ConfirmSubscriptionResponse><ConfirmSubscriptionResult/></ConfirmSubscriptionResponse>"


def sns_time(at: datetime) -> str:
    """A time as SNS writes Timestamp: 2012-04-26T20:45:04.751Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def certificate(key: rsa.RSAPrivateKey, not_before: datetime, not_after: datetime) -> bytes:
    """A self-signed certificate for `key`, as PEM."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.local.test")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


class LocalSns:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.now(UTC)
        self.files = {
            "/cert.pem": certificate(self.key, now - timedelta(days=1), now + timedelta(days=30)),
            "/expired.pem": certificate(self.key, now - timedelta(days=30), now - timedelta(days=1)),
        }
        # Requests by path (with the query): certificate fetches and SubscribeURL visits.
        self.requests: Counter[str] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.port = self._server.server_address[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.origin_pattern = re.escape(self.origin)

    def url(self, path: str) -> str:
        return self.origin + path

    def sign(
        self, message: dict[str, Any], version: str = "1", cert: str = "/cert.pem", at: datetime | None = None
    ) -> dict[str, Any]:
        """`message` stamped `at` (default now), signed with this key and naming the certificate at `cert`
        (a path on this server, or a whole URL)."""
        signed = {
            **message,
            "Timestamp": sns_time(at or datetime.now(UTC)),
            "SignatureVersion": version,
            "SigningCertURL": cert if "://" in cert else self.url(cert),
        }
        text = "".join(f"{name}\n{signed[name]}\n" for name in sorted(signed) if name in SIGNED)
        signature = self.key.sign(text.encode(), padding.PKCS1v15(), HASHES[version]())
        signed["Signature"] = base64.b64encode(signature).decode()
        return signed

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sns = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                sns.requests[self.path] += 1
                if self.path.startswith("/confirm"):
                    self._answer(200, CONFIRMED)
                elif self.path == "/error.pem":
                    self._answer(503, b"unavailable")
                elif self.path in sns.files:
                    self._answer(200, sns.files[self.path])
                else:
                    self._answer(404, b"not found")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        return Handler

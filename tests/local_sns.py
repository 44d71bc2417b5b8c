"""A stand-in for Amazon SNS on 127.0.0.1: a signing key, its certificates served over HTTP at
paths shaped as SNS's, SNS's signature over a message, and a SubscribeURL that records its visits.

Give `origin_pattern` to the adapter (`SesAdapter(sns.origin_pattern)`) or to the API
(CONTACTREPORTS_SNS_ORIGIN_PATTERN). Its certificates carry the name of SNS's own,
`sns.amazonaws.com`, which is what the adapter asks of a certificate off an SNS regional host.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
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
SNS_NAME = "sns.amazonaws.com"


def pem_path(label: str) -> str:
    """A certificate path as SNS names them (/SimpleNotificationService-<32 hex digits>.pem), one per label."""
    return f"/SimpleNotificationService-{hashlib.sha256(label.encode()).hexdigest()[:32]}.pem"


CERT = pem_path("cert")
EXPIRED = pem_path("expired")
# Certificates not issued to SNS: another name in the subject and the alternative names, or
# SNS's name in the subject but another as its only alternative name (which then is the name).
UNNAMED = pem_path("unnamed")
SAN_ELSEWHERE = pem_path("san-elsewhere")
# SNS's name in the subject and no alternative names: the subject's name counts.
SUBJECT_ONLY = pem_path("subject-only")
FAILING = pem_path("failing")  # answers 503
# The certificate, then 1 MB of blank lines: declared in Content-Length, or streamed without end.
HUGE = pem_path("huge")
ENDLESS = pem_path("endless")
# The certificate a few bytes at a time: each read is quick, the whole takes SLOW_SECONDS.
SLOW = pem_path("slow")
SLOW_SECONDS = 3.0


def sns_time(at: datetime) -> str:
    """A time as SNS writes Timestamp: 2012-04-26T20:45:04.751Z."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def certificate(
    key: rsa.RSAPrivateKey,
    not_before: datetime,
    not_after: datetime,
    name: str = SNS_NAME,
    alt_names: list[str] | None = None,
) -> bytes:
    """A self-signed certificate for `key` naming `name` as its subject's common name and
    `alt_names` (default: `name`; empty: no such extension) as its alternative names, as PEM."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    alt_names = [name] if alt_names is None else alt_names
    if alt_names:
        san = x509.SubjectAlternativeName([x509.DNSName(alt) for alt in alt_names])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


class LocalSns:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.now(UTC)
        valid = (self.key, now - timedelta(days=1), now + timedelta(days=30))
        cert = certificate(*valid)
        self.files = {
            CERT: cert,
            EXPIRED: certificate(self.key, now - timedelta(days=30), now - timedelta(days=1)),
            UNNAMED: certificate(*valid, name="sns.local.test"),
            SAN_ELSEWHERE: certificate(*valid, alt_names=["sns.local.test"]),
            SUBJECT_ONLY: certificate(*valid, alt_names=[]),
            HUGE: cert + b"\n" * 1_000_000,
            SLOW: cert,
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

    def subscribe_url(self, topic_arn: str, token: str) -> str:
        """A SubscribeURL of this server's, shaped as SNS's."""
        return self.url(f"/?Action=ConfirmSubscription&TopicArn={topic_arn}&Token={token}")

    def sign(
        self, message: dict[str, Any], version: str = "1", cert: str = CERT, at: datetime | None = None
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
                if self.path.startswith("/?Action=ConfirmSubscription&"):
                    self._answer(200, CONFIRMED)
                elif self.path == FAILING:
                    self._answer(503, b"unavailable")
                elif self.path == ENDLESS:
                    self._stream(sns.files[CERT], b"\n" * 65536, repeat=1000, pause=0)
                elif self.path == SLOW:
                    pieces = 20
                    body = sns.files[SLOW]
                    size = -(-len(body) // pieces)
                    chunks = [body[i : i + size] for i in range(0, len(body), size)]
                    self._stream(b"", *chunks, pause=SLOW_SECONDS / len(chunks))
                elif self.path in sns.files:
                    self._answer(200, sns.files[self.path])
                else:
                    self._answer(404, b"not found")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, first: bytes, *chunks: bytes, repeat: int = 1, pause: float) -> None:
                """A 200 with no Content-Length (the body ends when the connection does): `first`,
                then `chunks` `repeat` times, `pause` seconds apart; stops when the client leaves."""
                self.send_response(200)
                self.end_headers()
                try:
                    self.wfile.write(first)
                    for _ in range(repeat):
                        for chunk in chunks:
                            time.sleep(pause)
                            self.wfile.write(chunk)
                            self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        return Handler

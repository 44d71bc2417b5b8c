"""Amazon SNS's HTTP(S) messages, and their signatures checked as AWS documents them.

"Verifying the signatures of Amazon SNS messages":
https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html

Trust comes from where the signing certificate is fetched: over HTTPS from an Amazon SNS
host (TLS proves the host), as AWS's own SDK validators do. A message names its certificate's
URL, so that URL must match `Settings.sns_origin_pattern` before anything is fetched.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import OrderedDict
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from contactreports.webhooks.base import Unauthorized, Unavailable

# SNS stamps a message when it is published and keeps that Timestamp on every retry, and an
# HTTP(S) delivery policy retries for at most 3,600 seconds (a hard limit): an older message
# is a replay. Five minutes more, either way, allow for clock skew.
CLOCK_SKEW_SECONDS = 300
MAX_AGE_SECONDS = 3600 + CLOCK_SKEW_SECONDS

SIGNATURE_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
# The fields each type of message signs, in the documented (byte-sorted) order.
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
# SNS signs with a handful of certificates at a time; a few more allow for rotation and regions.
MAX_CACHED_CERTIFICATES = 16
FETCH_TIMEOUT_SECONDS = 5.0


class SnsMessage(msgspec.Struct, frozen=True):
    """The JSON body SNS posts (names as SNS spells them: they are part of the string it signs)."""

    Type: str
    MessageId: str
    TopicArn: str
    Message: str
    # Kept as sent: the signed string holds it verbatim.
    Timestamp: str
    SignatureVersion: str
    Signature: str
    SigningCertURL: str
    Subject: str | None = None
    SubscribeURL: str | None = None
    Token: str | None = None


_decode_message = msgspec.json.Decoder(SnsMessage).decode


def decode_message(body: bytes) -> SnsMessage:
    """The SNS message in `body`; raises ValueError saying what is wrong."""
    try:
        return _decode_message(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as error:
        raise ValueError(f"not an Amazon SNS message: {error}") from error


def has_origin(url: str, origin: re.Pattern[str]) -> bool:
    """Whether `url`'s scheme and host (and port) match `origin` in full."""
    parts = urlsplit(url)
    return origin.fullmatch(f"{parts.scheme}://{parts.netloc}") is not None


def string_to_sign(message: SnsMessage) -> bytes:
    """Each signed field present as "name\\nvalue\\n", in the documented order."""
    fields = SIGNED_FIELDS.get(message.Type)
    if fields is None:
        raise Unauthorized(f"unknown SNS message Type {message.Type!r}")
    lines = []
    for name in fields:
        value = getattr(message, name)
        if value is None:
            if name != "Subject":  # the only signed field a message may leave out
                raise Unauthorized(f"the SNS {message.Type} has no {name}")
            continue
        lines.append(f"{name}\n{value}\n")
    return "".join(lines).encode()


def check_fresh(message: SnsMessage, now: float) -> None:
    try:
        published = datetime.fromisoformat(message.Timestamp)
    except ValueError:
        published = None
    if published is None or published.tzinfo is None:
        raise Unauthorized(f"SNS Timestamp {message.Timestamp!r} is not a time in UTC")
    if not now - MAX_AGE_SECONDS <= published.timestamp() <= now + CLOCK_SKEW_SECONDS:
        raise Unauthorized(f"SNS Timestamp {message.Timestamp} is stale (more than {MAX_AGE_SECONDS} s from now)")


class SignatureVerifier:
    """Checks SNS signatures, keeping the certificates it fetched (a bounded number) for later messages."""

    def __init__(self, origin: re.Pattern[str]):
        self._origin = origin
        self._certificates: OrderedDict[str, x509.Certificate] = OrderedDict()

    async def verify(self, message: SnsMessage, now: float) -> None:
        hash_type = SIGNATURE_HASHES.get(message.SignatureVersion)
        if hash_type is None:
            raise Unauthorized(f"unsupported SNS SignatureVersion {message.SignatureVersion!r}")
        url = message.SigningCertURL
        if not (has_origin(url, self._origin) and urlsplit(url).path.endswith(".pem")):
            raise Unauthorized(f"SigningCertURL {url!r} is not an Amazon SNS certificate URL")
        signed = string_to_sign(message)
        try:
            signature = base64.b64decode(message.Signature, validate=True)
        except binascii.Error:
            raise Unauthorized("the SNS Signature is not base64") from None
        certificate = await self._certificate(url)
        if not certificate.not_valid_before_utc <= datetime.fromtimestamp(now, UTC) <= certificate.not_valid_after_utc:
            raise Unauthorized(f"the certificate at {url} is not valid now")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Unauthorized(f"the certificate at {url} does not hold an RSA key")
        try:
            key.verify(signature, signed, padding.PKCS1v15(), hash_type())
        except InvalidSignature:
            raise Unauthorized("the SNS signature does not match the message") from None

    async def _certificate(self, url: str) -> x509.Certificate:
        certificate = self._certificates.get(url)
        if certificate is not None:
            self._certificates.move_to_end(url)
            return certificate
        certificate = await fetch_certificate(url)
        self._certificates[url] = certificate
        if len(self._certificates) > MAX_CACHED_CERTIFICATES:
            self._certificates.popitem(last=False)
        return certificate


async def fetch_certificate(url: str) -> x509.Certificate:
    """The PEM certificate at `url`. A network failure or a 5xx is Unavailable, not Unauthorized:
    the route then answers 503 and SNS retries, where a 401 would lose the message."""
    try:
        async with httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS) as client:
            response = await client.get(url)
    except httpx.HTTPError as error:
        raise Unavailable(f"The SNS signing certificate could not be fetched from {url}: {error!r}.") from error
    if response.is_server_error:
        raise Unavailable(f"The SNS signing certificate host answered {response.status_code} for {url}.")
    if response.status_code != 200:
        raise Unauthorized(f"SigningCertURL {url} answered {response.status_code}")
    try:
        return x509.load_pem_x509_certificate(response.content)
    except ValueError:
        raise Unauthorized(f"SigningCertURL {url} is not a PEM certificate") from None

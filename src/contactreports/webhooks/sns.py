r"""Amazon SNS's HTTP(S) messages, and their signatures checked as AWS documents them.

"Verifying the signatures of Amazon SNS messages":
https://docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html

Trust comes from where the signing certificate is fetched, over HTTPS from an Amazon SNS
regional host (TLS proves the host), and from whom it is issued to, as AWS's SDK validators
check. A message names its certificate's URL, so before anything is fetched that URL must be,
character for character, `<origin>/SimpleNotificationService-<hex>.pem` with an origin matching
`Settings.sns_origin_pattern`; a SubscribeURL must be `<origin>/?Action=ConfirmSubscription&...`.

What AWS's own validators accept, and why these rules:
- Hosts. AWS's PHP, JavaScript and Ruby validators take hosts matching
  `sns\.[a-zA-Z0-9\-]{3,}\.amazonaws\.com(\.cn)?`, and so a bucket named "sns" on S3 too
  (sns.s3-us-west-2.amazonaws.com, sns.s3-website-us-east-1.amazonaws.com); the AWS SDK for
  Java (v1 SnsMessageManager, v2 sns-message-manager) takes only the regional endpoint it is
  pinned to. The default pattern takes `sns.<region>.amazonaws.com` (`.amazonaws.com.cn` in
  China) with a region shaped as the SDKs' partitions define them (partitions.json
  `regionRegex`: `(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+`, `us-gov-\w+-\d+`, `cn-\w+-\d+`):
  two letters, `-gov` in GovCloud, a word, a number. No S3 host has that shape.
- Paths. SNS serves its certificates at /SimpleNotificationService-<hex>.pem; the validators
  above ask for a path ending .pem, which any file on a shared host could have.
- Names. The AWS SDK for Java v2 (SnsHostProvider.signingCertCommonName, checked as an HTTPS
  client checks a server's name) wants the certificate issued to `sns.amazonaws.com` in most
  regions, `sns-signing.<region>.amazonaws.com` in newer ones (af-south-1, ap-east-1,
  me-south-1, il-central-1, ...), `sns-us-gov-west-1.amazonaws.com` in both GovCloud regions
  and `sns-<region>.amazonaws.com.cn` in China. A genuine SNS certificate (us-east-2, 2021,
  quoted in aws/aws-sdk-ruby, gems/aws-sdk-sns/spec/message_verifier_spec.rb) has subject
  CN=sns.amazonaws.com and subjectAltName DNS:sns.amazonaws.com, and is about 2 KB of PEM.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections import OrderedDict
from datetime import UTC, datetime
from urllib.parse import SplitResult, parse_qs, urlsplit

import httpx
import msgspec
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

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
# The whole download of a certificate, not only each read of it: past it, Unavailable (503).
FETCH_TIMEOUT_SECONDS = 5.0
# SNS's certificates are about 2 KB; more is not a certificate, and will not become one on a retry.
MAX_CERTIFICATE_BYTES = 10 * 1024
# The characters of a URL (RFC 3986's unreserved and reserved ones, and % for escapes), up to
# 2,048 of them. Controls, spaces, backslashes and non-ASCII are what URL parsers disagree on
# (urlsplit drops tabs and newlines, httpx refuses them): refused, the URL checked is the one fetched.
URL = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]{1,2048}")
CERTIFICATE_PATH = re.compile(r"/SimpleNotificationService-[0-9A-Fa-f]+\.pem")
SNS_HOST = re.compile(r"sns\.(?P<region>[a-z]{2}(-gov)?-[a-z]+-\d+)\.amazonaws\.com(\.cn)?")


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


def _at_origin(url: str, origin: re.Pattern[str]) -> SplitResult | None:
    """`url`'s parts when it is a plain URL (no user, no fragment) whose scheme and host (and
    port) match `origin` in full; else None."""
    if URL.fullmatch(url) is None or "#" in url:
        return None
    parts = urlsplit(url)
    if "@" in parts.netloc or origin.fullmatch(f"{parts.scheme}://{parts.netloc}") is None:
        return None
    return parts


def check_certificate_url(url: str, origin: re.Pattern[str]) -> None:
    """Raise Unauthorized unless `url` is `<origin>/SimpleNotificationService-<hex>.pem` and no more."""
    parts = _at_origin(url, origin)
    if parts is None or CERTIFICATE_PATH.fullmatch(parts.path) is None or "?" in url:
        raise Unauthorized(f"SigningCertURL {url!r} is not an Amazon SNS certificate URL")


def is_subscribe_url(url: str, origin: re.Pattern[str]) -> bool:
    """Whether `url` is `<origin>/?Action=ConfirmSubscription&...`, as SNS's SubscribeURL is."""
    parts = _at_origin(url, origin)
    return parts is not None and parts.path == "/" and parse_qs(parts.query).get("Action") == ["ConfirmSubscription"]


def signing_names(host: str) -> frozenset[str]:
    """The names SNS's signing certificate served from `host` is issued to (see the module's notes);
    `sns.amazonaws.com` for a host that is not a regional SNS host (a local stand-in, in tests).
    The newer regions' `sns-signing.<region>` name is taken in every region: the SDK's list of
    them grows with each region, and no one but AWS has a certificate for either name."""
    sns_host = SNS_HOST.fullmatch(host)
    if sns_host is None:
        return frozenset({"sns.amazonaws.com"})
    region = sns_host["region"]
    if region.startswith("cn-"):
        return frozenset({f"sns-{region}.amazonaws.com.cn"})
    if region.startswith("us-gov-"):
        return frozenset({"sns-us-gov-west-1.amazonaws.com"})
    return frozenset({"sns.amazonaws.com", f"sns-signing.{region}.amazonaws.com"})


def certificate_names(certificate: x509.Certificate) -> set[str]:
    """The names `certificate` is issued to, as an HTTPS client reads them (RFC 6125): the DNS
    names of its subjectAltName, or, when it has none, its subject's common names."""
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(name) for name in alternative.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(cn.value) for cn in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return {name.lower() for name in names}


def signed_fields(message: SnsMessage) -> list[tuple[str, str]]:
    """(name, value) of each field `message` signs, in the documented order; raises Unauthorized
    for a Type SNS does not sign or a signed field missing."""
    fields = SIGNED_FIELDS.get(message.Type)
    if fields is None:
        raise Unauthorized(f"unknown SNS message Type {message.Type!r}")
    present = []
    for name in fields:
        value = getattr(message, name)
        if value is None:
            if name != "Subject":  # the only signed field a message may leave out
                raise Unauthorized(f"the SNS {message.Type} has no {name}")
            continue
        present.append((name, value))
    return present


def string_to_sign(message: SnsMessage) -> bytes:
    """Each signed field present as "name\\nvalue\\n", in the documented order."""
    return "".join(f"{name}\n{value}\n" for name, value in signed_fields(message)).encode()


def check_signature(message: SnsMessage, signature: Signature) -> None:
    """Raise Unauthorized unless `signature` is its key's over `message`'s signed fields: the part
    of the check whose work grows with the message."""
    try:
        signature.key.verify(signature.value, string_to_sign(message), padding.PKCS1v15(), signature.hash_type())
    except InvalidSignature:
        raise Unauthorized("the SNS signature does not match the message") from None


def check_fresh(message: SnsMessage, now: float) -> None:
    try:
        published = datetime.fromisoformat(message.Timestamp)
    except ValueError:
        published = None
    if published is None or published.tzinfo is None:
        raise Unauthorized(f"SNS Timestamp {message.Timestamp!r} is not a time in UTC")
    if not now - MAX_AGE_SECONDS <= published.timestamp() <= now + CLOCK_SKEW_SECONDS:
        raise Unauthorized(f"SNS Timestamp {message.Timestamp} is stale (more than {MAX_AGE_SECONDS} s from now)")


class Signature(msgspec.Struct, frozen=True):
    """A message's signature, decoded, and what checks it: its certificate's key and the hash its
    SignatureVersion names."""

    value: bytes
    key: rsa.RSAPublicKey
    hash_type: type[hashes.HashAlgorithm]


class SignatureVerifier:
    """Reads an SNS message's signature and finds its key, keeping the certificates it fetched (a
    bounded number) for later messages; `check_signature` then checks the signature with it."""

    def __init__(self, origin: re.Pattern[str]):
        self._origin = origin
        self._certificates: OrderedDict[str, x509.Certificate] = OrderedDict()

    async def signature(self, message: SnsMessage, now: float) -> Signature:
        """`message`'s signature and the key SNS signs it with, from the certificate it names
        (fetched, or kept from before): raises Unauthorized for a message SNS cannot have signed
        (an unknown version or Type, a certificate from elsewhere, ...). Whether the signature
        matches is `check_signature`'s."""
        hash_type = SIGNATURE_HASHES.get(message.SignatureVersion)
        if hash_type is None:
            raise Unauthorized(f"unsupported SNS SignatureVersion {message.SignatureVersion!r}")
        url = message.SigningCertURL
        check_certificate_url(url, self._origin)
        signed_fields(message)
        try:
            signature = base64.b64decode(message.Signature, validate=True)
        except ValueError:  # binascii.Error, or a character that is not ASCII
            raise Unauthorized("the SNS Signature is not base64") from None
        certificate = await self._certificate(url)
        if not certificate.not_valid_before_utc <= datetime.fromtimestamp(now, UTC) <= certificate.not_valid_after_utc:
            raise Unauthorized(f"the certificate at {url} is not valid now")
        key = certificate.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Unauthorized(f"the certificate at {url} does not hold an RSA key")
        return Signature(signature, key, hash_type)

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
    """The PEM certificate at `url`, issued to Amazon SNS. A network failure, a 5xx or a download
    taking more than FETCH_TIMEOUT_SECONDS in all is Unavailable, not Unauthorized: the route then
    answers 503 and SNS retries, where a 401 would lose the message. Anything else that is not
    SNS's certificate (another status, more than MAX_CERTIFICATE_BYTES, not PEM, issued to
    another name) is Unauthorized: a retry would fetch the same."""
    try:
        async with asyncio.timeout(FETCH_TIMEOUT_SECONDS):
            body = await _download(url)
    except TimeoutError:
        raise Unavailable(
            f"The SNS signing certificate at {url} took more than {FETCH_TIMEOUT_SECONDS} s to download."
        ) from None
    try:
        certificate = x509.load_pem_x509_certificate(body)
        names = certificate_names(certificate)
    except ValueError:
        raise Unauthorized(f"SigningCertURL {url} is not a PEM certificate") from None
    expected = signing_names(urlsplit(url).hostname or "")
    if not names & expected:
        raise Unauthorized(f"the certificate at {url} is not issued to Amazon SNS ({', '.join(sorted(expected))})")
    return certificate


async def _download(url: str) -> bytes:
    """The body at `url`, read as it comes (not decompressed) and given up past MAX_CERTIFICATE_BYTES."""
    too_large = Unauthorized(f"SigningCertURL {url} sent more than {MAX_CERTIFICATE_BYTES} bytes: not a certificate")
    try:
        async with (
            httpx.AsyncClient(timeout=FETCH_TIMEOUT_SECONDS, headers={"Accept-Encoding": "identity"}) as client,
            client.stream("GET", url) as response,
        ):
            if response.is_server_error:
                raise Unavailable(f"The SNS signing certificate host answered {response.status_code} for {url}.")
            if response.status_code != 200:
                raise Unauthorized(f"SigningCertURL {url} answered {response.status_code}")
            declared = response.headers.get("Content-Length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > MAX_CERTIFICATE_BYTES:
                raise too_large
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > MAX_CERTIFICATE_BYTES:
                    raise too_large
            return bytes(body)
    except httpx.InvalidURL as error:  # check_certificate_url refuses these first; never a 500
        raise Unauthorized(f"SigningCertURL {url!r} is not a URL: {error}") from None
    except httpx.HTTPError as error:
        raise Unavailable(f"The SNS signing certificate could not be fetched from {url}: {error!r}.") from error

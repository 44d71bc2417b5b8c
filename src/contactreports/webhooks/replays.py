"""The replay guard: a signature seen before with other events is refused (Mailgun's)."""

from __future__ import annotations

import hashlib

import msgspec
from redis.exceptions import RedisError

from contactreports.models import Account
from contactreports.services import Services
from contactreports.webhooks.base import Adapter, Parsed, Unauthorized


class RedisUnavailable(Exception):
    """Redis, which keeps the signatures and counts failed verifications, cannot be reached: the
    delivery cannot be checked (the API's 503, which providers retry)."""

    def __init__(self) -> None:
        super().__init__("Redis is unavailable; try again. Nothing was stored.")


async def signed_once(
    services: Services, account: Account, adapter: Adapter, parsed: Parsed, received_at: float
) -> None:
    """Refuse a signature seen before with other events: a replay carrying forged ones.

    Mailgun signs a timestamp and a token, not the body, so whoever sees one delivery could post
    any events with its signature for as long as it is accepted; Mailgun's advice is to keep the
    tokens used. The same events again are a retry, let through to count as duplicates. What is
    compared is what the delivery says (its events, sorted keys), not its bytes: a retry written
    out anew, with other spacing or key order, is still the same delivery.

    The tokens are kept in Redis, at most `Settings.webhook_signatures_kept` an account (see
    _KEEP_SIGNATURE), so no account can fill the shared Redis: past that many, the oldest is
    forgotten to keep a new one, and a signature no newer than those forgotten is refused as one
    that might be a replay. So the window shrinks while an account gets more signatures than it
    may keep for as long as they are accepted, and a replay never gets through.
    """
    keys = [f"contactreports:webhook-signatures:{account.id}:{adapter.name}:{part}" for part in ("at", "said")]
    said = msgspec.json.encode([parsed.events, parsed.campaigns, parsed.ignored], order="sorted")
    kept = services.settings.webhook_signatures_kept
    arguments = [
        _digest((parsed.nonce or "").encode()),
        _digest(said),
        parsed.nonce_signed_at,
        received_at - parsed.nonce_seconds,
        kept,
        max(parsed.nonce_seconds, 1),
    ]
    try:
        seen = await services.redis.register_script(_KEEP_SIGNATURE)(keys=keys, args=arguments)
    except RedisError as error:  # unchecked, it might be a replay: the provider retries a 503
        raise RedisUnavailable() from error
    if seen == b"replay":
        raise Unauthorized("This signature came before with another body: a replay. Nothing was stored.")
    if seen == b"too old":
        raise Unauthorized(
            f"This signature is no newer than the oldest of the {kept:,} this account keeps against replays, "
            "so it might be one. Nothing was stored.",
        )


def _digest(data: bytes) -> str:
    """128 bits of SHA-256: no two tokens or bodies share them but by design, which no one can do."""
    return hashlib.sha256(data).hexdigest()[:32]


# Keeps the token of a signature (ARGV[1]) with the digest of what it signed (ARGV[2]), atomically
# (a Lua script: no other API process comes in between), in two keys of the account's:
# KEYS[1], a sorted set of the tokens by when they were signed (ARGV[3]), and KEYS[2], a hash of
# token -> digest. First it forgets the tokens signed before ARGV[4], which the adapter refuses
# anyway. A token kept already: "again" with the same digest, else "replay". A new one: when
# ARGV[5] are kept, "too old" if it was signed no later than the newest of those it would push
# out, else they are forgotten and it is kept: "new". So every token signed after the newest one
# forgotten is kept while it is accepted, and none signed before is accepted again. The keys
# live ARGV[6] seconds after their last token. Forgetting goes 1,000 tokens a call: Lua takes
# only so many arguments.
_KEEP_SIGNATURE = """
local at, said = KEYS[1], KEYS[2]
local token, digest, signed_at, kept = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5])
local function forget(tokens)
  for first = 1, #tokens, 1000 do
    local last = math.min(first + 999, #tokens)
    redis.call('ZREM', at, unpack(tokens, first, last))
    redis.call('HDEL', said, unpack(tokens, first, last))
  end
end
forget(redis.call('ZRANGEBYSCORE', at, '-inf', '(' .. ARGV[4]))
local before = redis.call('HGET', said, token)
if before then
  return before == digest and 'again' or 'replay'
end
local excess = redis.call('ZCARD', at) - kept + 1
if excess > 0 then
  local oldest = redis.call('ZRANGE', at, 0, excess - 1, 'WITHSCORES')
  if signed_at <= tonumber(oldest[#oldest]) then
    return 'too old'
  end
  local tokens = {}
  for i = 1, #oldest, 2 do
    tokens[#tokens + 1] = oldest[i]
  end
  forget(tokens)
end
redis.call('ZADD', at, signed_at, token)
redis.call('HSET', said, token, digest)
redis.call('EXPIRE', at, ARGV[6])
redis.call('EXPIRE', said, ARGV[6])
return 'new'
"""

"""The data plane's rate-limit windows in Redis: exact across replicas, one round trip per admission.

The same rule as `cielo.dataplane.quota.decide` (two fixed windows per deployment, the request window and the
token window; a window stored by a replica whose clock read came later is kept, never reset to an earlier one),
run by Redis as one Lua script over the same four numbers, a hash per deployment. Refunds (`settle`) give tokens
back to the window they were charged to, if it is still the current one. Each hash expires when both its windows
have ended, so deleted deployments leave nothing behind.
"""

from __future__ import annotations

import logging

import redis

from cielo.dataplane.quota import Admission, Limits
from cielo.shared.connection import guarded, redacted

log = logging.getLogger("cielo.shared")

# KEYS[1]: the deployment's hash. ARGV: now, request limit, request period, token limit, token period, tokens.
# Returns {verdict, request window start, requests used, token window start, tokens used}, verdict 0 admitted,
# 1 refused for requests, 2 refused for tokens (nothing is written on a refusal, as `decide`).
CHARGE = """
local now = tonumber(ARGV[1])
local rl, rp, tl, tp, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local s = redis.call('HMGET', KEYS[1], 'rs', 'ru', 'ts', 'tu')
local rs, ru, ts, tu = tonumber(s[1]) or 0, tonumber(s[2]) or 0, tonumber(s[3]) or 0, tonumber(s[4]) or 0
local start = math.floor(now / rp) * rp
if start > rs then rs, ru = start, 0 end
start = math.floor(now / tp) * tp
if start > ts then ts, tu = start, 0 end
local verdict = 0
if ru + 1 > rl then
  verdict = 1
elseif tu + n > tl then
  verdict = 2
else
  ru = ru + 1
  tu = tu + n
  redis.call('HSET', KEYS[1], 'rs', string.format('%.17g', rs), 'ru', string.format('%.17g', ru),
             'ts', string.format('%.17g', ts), 'tu', string.format('%.17g', tu))
  local ends = math.max(rs + rp, ts + tp)
  redis.call('PEXPIRE', KEYS[1], math.max(1000, math.ceil((ends - now) * 1000) + 1000))
end
return {verdict, string.format('%.17g', rs), string.format('%.17g', ru), string.format('%.17g', ts),
        string.format('%.17g', tu)}
"""

# KEYS[1]: the deployment's hash. ARGV: the token window start the tokens were charged to, tokens to give back.
REFUND = """
local s = redis.call('HMGET', KEYS[1], 'ts', 'tu')
if s[1] == false or tonumber(s[1]) ~= tonumber(ARGV[1]) then return 0 end
local tu = math.max(0, (tonumber(s[2]) or 0) - tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], 'tu', string.format('%.17g', tu))
return 1
"""


class RedisQuotaCounter:
    """`cielo.dataplane.quota.QuotaCounter` over Redis. Redis unreachable: `charge` raises
    `SharedStateUnavailable` (a 503: nothing is admitted unchecked); a failed refund is logged and dropped (it only
    ever gives tokens back)."""

    def __init__(self, client: redis.Redis, url: str, prefix: str) -> None:
        self._client = client
        self._url = url
        self._prefix = f"{prefix}:quota:"
        self._charge = client.register_script(CHARGE)
        self._refund = client.register_script(REFUND)

    def charge(self, key: str, limits: Limits, tokens: int, now: float) -> Admission:
        with guarded(self._url, "a quota admission"):
            reply = self._charge(keys=[self._prefix + key], args=[
                repr(now), limits.requests, limits.request_period, limits.tokens, limits.token_period, tokens])
        verdict = int(reply[0])
        req_start, req_used, tok_start, tok_used = (float(v) for v in reply[1:])
        if verdict == 1:
            return Admission(False, 0, max(0, limits.tokens - int(tok_used)),
                             max(0.0, req_start + limits.request_period - now), "request", limits.tokens)
        if verdict == 2:
            return Admission(False, limits.requests - int(req_used), max(0, limits.tokens - int(tok_used)),
                             max(0.0, tok_start + limits.token_period - now), "token", limits.tokens)
        return Admission(True, limits.requests - int(req_used), limits.tokens - int(tok_used),
                         token_limit=limits.tokens, charged=tokens, token_window=tok_start)

    def refund(self, key: str, token_window: float, tokens: int) -> None:
        if tokens <= 0:
            return
        try:
            self._refund(keys=[self._prefix + key], args=[repr(token_window), tokens])
        except (redis.RedisError, OSError) as exc:
            log.warning("Redis (%s): a quota refund of %d tokens was dropped: %s", redacted(self._url), tokens,
                        type(exc).__name__)

    def close(self) -> None:
        """The client is the shared state's (`cielo.shared.state`): closed there."""

"""Failed sign-ins counted in Redis (smart lockout, per-address throttling), for replicas that share Redis.

The same counts and rules as `cielo.store.signin.SignInFailureRepo` (one hash per digest key: failures, window
start, locked until, lockouts), each change one Lua script, so concurrent failures on several replicas never lose
a count. Each hash expires `ttl_s` after its last failure (twice the longest lockout or throttling window, as the
database's `forget_before` would drop it). Redis unreachable: every call raises `SharedStateUnavailable`, so a
sign-in is refused with a 503 rather than let through uncounted.
"""

from __future__ import annotations

import redis

from cielo.shared.connection import guarded
from cielo.store.signin import FailureCount

# KEYS[1]: the count. ARGV: now, window, ttl. Returns {failures, window start, locked until, lockouts}.
RECORD = """
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local s = redis.call('HMGET', KEYS[1], 'failures', 'window_start', 'locked_until', 'lockouts')
local failures, start = tonumber(s[1]), tonumber(s[2])
local locked, lockouts = tonumber(s[3]) or 0, tonumber(s[4]) or 0
if failures == nil or not (start > now - window) then failures = 0 end
failures = failures + 1
if failures == 1 then start = now end
local out = {string.format('%d', failures), string.format('%.17g', start), string.format('%.17g', locked),
             string.format('%d', lockouts)}
redis.call('HSET', KEYS[1], 'failures', out[1], 'window_start', out[2], 'locked_until', out[3], 'lockouts', out[4])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return out
"""

# KEYS[1]: the count. ARGV: locked until, lockouts, ttl. Only an existing count is locked (as the UPDATE).
LOCK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'locked_until', ARGV[1], 'lockouts', ARGV[2], 'failures', '0')
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


class RedisSignInFailures:
    """`cielo.store.signin.FailureCounts` over Redis."""

    def __init__(self, client: redis.Redis, url: str, prefix: str, ttl_s: float) -> None:
        self._client = client
        self._url = url
        self._prefix = f"{prefix}:signin:"
        self._ttl = max(1, int(ttl_s))
        self._record = client.register_script(RECORD)
        self._lock = client.register_script(LOCK)

    def get(self, key: str) -> FailureCount | None:
        with guarded(self._url, "a sign-in check"):
            row = self._client.hmget(self._prefix + key, ["failures", "window_start", "locked_until", "lockouts"])
        failures, start, locked, lockouts = row
        if failures is None or start is None or locked is None or lockouts is None:
            return None
        return FailureCount(int(failures), float(start), float(locked), int(lockouts))

    def record_failure(self, key: str, now: float, window_s: float) -> FailureCount:
        with guarded(self._url, "counting a failed sign-in"):
            row = self._record(keys=[self._prefix + key], args=[repr(now), repr(float(window_s)), self._ttl])
        return FailureCount(int(row[0]), float(row[1]), float(row[2]), int(row[3]))

    def lock(self, key: str, until: float, lockouts: int) -> None:
        with guarded(self._url, "locking a user name"):
            self._lock(keys=[self._prefix + key], args=[repr(until), lockouts, self._ttl])

    def clear(self, key: str) -> None:
        with guarded(self._url, "clearing a sign-in count"):
            self._client.delete(self._prefix + key)

    def forget_before(self, cutoff: float) -> None:
        """Nothing to do: each count expires in Redis `ttl_s` after its last failure."""

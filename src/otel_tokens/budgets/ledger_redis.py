"""The team ledger: Redis (``OTEL_TOKENS_LEDGER=redis://HOST:6379/0``), exact across machines.

Per (budget, scope, period) one hash ``otel_tokens:b:{budget}:{scope}:{period}`` with
``spent``, ``held``, ``reported`` (threshold bits), ``first``, ``updated`` and one field
``h:{rid}`` per hold, plus a sorted set ``...:x`` of hold expiries and an index set
``otel_tokens:i:{budget}:{period}`` of scopes. Reserve and settle are Lua scripts, so each
runs atomically on the server; every key expires some weeks after its period
(`ledger.KEEP_S`). Needs the ``redis`` package: ``pip install 'otel-tokens[redis]'``.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Sequence
from typing import Any

from otel_tokens.budgets.ledger import Charge, Hold, Key, LedgerError, Refusal, Row, Settled

_PREFIX = "otel_tokens:b:"
_INDEX = "otel_tokens:i:"

# KEYS: (hash, expiries, index) per hold. ARGV: rid, now, expires, n, then per hold:
# amount, limit, ttl seconds, scope.
_RESERVE = """
local rid, now, expires, n = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
for i = 1, n do
  local h, x = KEYS[3*i-2], KEYS[3*i-1]
  local amount, limit = tonumber(ARGV[4*i+1]), tonumber(ARGV[4*i+2])
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', x, '-inf', '(' .. now)) do
    local a = redis.call('HGET', h, 'h:' .. old)
    if a then
      redis.call('HINCRBY', h, 'held', -tonumber(a))
      redis.call('HDEL', h, 'h:' .. old)
    end
    redis.call('ZREM', x, old)
  end
  local spent = tonumber(redis.call('HGET', h, 'spent') or '0')
  local held = tonumber(redis.call('HGET', h, 'held') or '0')
  if spent + held + amount > limit then return {i, spent, held} end
end
for i = 1, n do
  local h, x, idx = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local amount, ttl, scope = ARGV[4*i+1], tonumber(ARGV[4*i+3]), ARGV[4*i+4]
  redis.call('HSET', h, 'h:' .. rid, amount)
  redis.call('HINCRBY', h, 'held', amount)
  redis.call('HSETNX', h, 'first', ARGV[2])
  redis.call('HSETNX', h, 'updated', ARGV[2])
  redis.call('ZADD', x, expires, rid)
  redis.call('SADD', idx, scope)
  redis.call('EXPIRE', h, ttl)
  redis.call('EXPIRE', x, ttl)
  redis.call('EXPIRE', idx, ttl)
end
return {0, 0, 0}
"""

# KEYS: (hash, expiries, index) per charge. ARGV: rid, now, n, then per charge:
# cost, ttl seconds, scope, held (1: drop this call's hold), k, threshold 1..k.
_SETTLE = """
local rid, now, n = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out, p = {}, 4
for i = 1, n do
  local h, x, idx = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  local cost, ttl, scope, k = ARGV[p], tonumber(ARGV[p+1]), ARGV[p+2], tonumber(ARGV[p+4])
  if ARGV[p+3] == '1' then
    local a = redis.call('HGET', h, 'h:' .. rid)
    if a then
      redis.call('HINCRBY', h, 'held', -tonumber(a))
      redis.call('HDEL', h, 'h:' .. rid)
    end
    redis.call('ZREM', x, rid)
  end
  local spent = redis.call('HINCRBY', h, 'spent', cost)
  redis.call('HSETNX', h, 'first', now)
  redis.call('HSET', h, 'updated', now)
  local reported = tonumber(redis.call('HGET', h, 'reported') or '0')
  local mask, bit = 0, 1
  for j = 1, k do
    if spent >= tonumber(ARGV[p+4+j]) and math.floor(reported / bit) % 2 == 0 then mask = mask + bit end
    bit = bit * 2
  end
  if mask > 0 then redis.call('HSET', h, 'reported', reported + mask) end
  redis.call('SADD', idx, scope)
  redis.call('EXPIRE', h, ttl)
  redis.call('EXPIRE', x, ttl)
  redis.call('EXPIRE', idx, ttl)
  out[2*i-1], out[2*i] = spent, mask
  p = p + 5 + k
end
return out
"""

_RELEASE = """
for i = 1, #KEYS, 2 do
  local a = redis.call('HGET', KEYS[i], 'h:' .. ARGV[1])
  if a then
    redis.call('HINCRBY', KEYS[i], 'held', -tonumber(a))
    redis.call('HDEL', KEYS[i], 'h:' .. ARGV[1])
  end
  redis.call('ZREM', KEYS[i+1], ARGV[1])
end
return 0
"""


_SHA = {
    name: hashlib.sha1(source.encode()).hexdigest()
    for name, source in (("reserve", _RESERVE), ("settle", _SETTLE), ("release", _RELEASE))
}
_IDLE_MAX = 64


def _hash(key: Key) -> str:
    return f"{_PREFIX}{key[0]}:{key[1]}:{key[2]}"


_key_names: dict[Key, tuple[str, str, str]] = {}


def _keys(key: Key) -> tuple[str, str, str]:
    names = _key_names.get(key)
    if names is None:
        if len(_key_names) > 4096:  # periods and task runs come and go
            _key_names.clear()
        h = _hash(key)
        names = _key_names[key] = (h, h + ":x", f"{_INDEX}{key[0]}:{key[2]}")
    return names


def _ttl(keep_until: float, now: float) -> int:
    return max(math.ceil(keep_until - now), 60)


class RedisLedger:
    def __init__(self, url: str) -> None:
        try:
            import redis
        except ImportError:
            raise LedgerError(
                "OTEL_TOKENS_LEDGER is a redis:// URL but the redis package is missing"
                " (fix: pip install 'otel-tokens[redis]')"
            ) from None
        self.url = url
        self._redis = redis
        self._client: Any = None
        self._lock = threading.Lock()
        self._scripts: dict[str, Any] = {}
        self._pid = 0
        self._pool: Any = None
        self._free: list[Any] = []  # idle connections of the reserve/settle path (pop/append: atomic)

    def _connection(self) -> Any:
        """An idle connection of this process (a forked child makes its own)."""
        pid = os.getpid()
        if self._pid != pid or self._pool is None:
            with self._lock:
                if self._pid != pid or self._pool is None:
                    self._free = []
                    self._pool = self._redis.ConnectionPool.from_url(
                        self.url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30
                    )
                    self._pid = pid
        try:
            return self._free.pop()
        except IndexError:
            return self._pool.connection_class(**self._pool.connection_kwargs)

    def _script(self, name: str, source: str) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._redis.Redis.from_url(
                    self.url, socket_timeout=2.0, socket_connect_timeout=2.0, health_check_interval=30
                )
            script = self._scripts.get(name)
            if script is None:
                script = self._scripts[name] = self._client.register_script(source)
            return script

    def _run(self, name: str, source: str, keys: list[str], args: list[Any]) -> Any:
        """One EVALSHA round trip on a connection of our own (no pool checkout, no retry: a
        reservation whose reply was lost must not be made twice); the script is loaded once
        per server, on NOSCRIPT."""
        sha = _SHA[name]
        conn = self._connection()
        try:
            try:
                conn.send_command("EVALSHA", sha, len(keys), *keys, *args)
                reply = conn.read_response()
            except self._redis.exceptions.NoScriptError:
                conn.send_command("SCRIPT", "LOAD", source)
                conn.read_response()
                conn.send_command("EVALSHA", sha, len(keys), *keys, *args)
                reply = conn.read_response()
        except BaseException as exc:
            conn.disconnect()
            if isinstance(exc, self._redis.RedisError):
                raise LedgerError(f"budget ledger {self.url}: {exc}") from exc
            raise
        if len(self._free) < _IDLE_MAX:
            self._free.append(conn)
        else:
            conn.disconnect()
        return reply

    def reserve(self, rid: str, holds: Sequence[Hold], expires: float, now: float) -> Refusal | None:
        keys: list[str] = []
        args: list[Any] = [rid, repr(now), repr(expires), len(holds)]
        for hold in holds:
            keys += _keys(hold.key)
            args += [hold.amount, hold.limit, _ttl(hold.keep_until, now), hold.key[1]]
        index, spent, held = self._run("reserve", _RESERVE, keys, args)
        return None if int(index) == 0 else Refusal(int(index) - 1, int(spent), int(held))

    def settle(self, rid: str, charges: Sequence[Charge], now: float) -> list[Settled]:
        keys: list[str] = []
        args: list[Any] = [rid, repr(now), len(charges)]
        for charge in charges:
            keys += _keys(charge.key)
            ttl = _ttl(charge.keep_until, now)
            args += [charge.cost, ttl, charge.key[1], 1 if charge.held else 0, len(charge.thresholds)]
            args += charge.thresholds
        out = self._run("settle", _SETTLE, keys, args)
        return [Settled(int(out[2 * i]), int(out[2 * i + 1])) for i in range(len(charges))]

    def release(self, rid: str, keys: Sequence[Key]) -> None:
        flat: list[str] = []
        for key in keys:
            flat += _keys(key)[:2]
        if flat:
            self._run("release", _RELEASE, flat, [rid])

    def holders(self, key: Key) -> list[str]:
        try:
            self._script("release", _RELEASE)
            return [m.decode() for m in self._client.zrange(_hash(key) + ":x", 0, -1)]
        except self._redis.RedisError as exc:
            raise LedgerError(f"budget ledger {self.url}: {exc}") from exc

    def rows(self, budget: str, period: str) -> list[Row]:
        """`period` may end in ``%`` (a prefix, as SQL LIKE), e.g. ``t%`` for every task run."""
        try:
            self._script("release", _RELEASE)
            client = self._client
            if period.endswith("%"):
                names = [k.decode() for k in client.scan_iter(f"{_INDEX}{budget}:{period[:-1]}*", count=500)]
            else:
                names = [f"{_INDEX}{budget}:{period}"]
            out: list[Row] = []
            for index in names:
                p = index.removeprefix(f"{_INDEX}{budget}:")
                for scope in sorted(m.decode() for m in client.smembers(index)):
                    data = client.hmget(_hash((budget, scope, p)), "spent", "held", "first", "updated")
                    if data[0] is None and data[1] is None:
                        continue
                    spent, held, first, updated = (v.decode() if v is not None else "0" for v in data)
                    out.append(Row(scope, int(spent), int(held), float(first), float(updated)))
            return sorted(out, key=lambda r: -r.spent)
        except self._redis.RedisError as exc:
            raise LedgerError(f"budget ledger {self.url}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
                self._scripts.clear()
            for conn in self._free:
                conn.disconnect()
            self._free = []

"""State that replicas must share exactly, kept in Redis (`cielo up --redis-url`; off by default).

- `connection`: the client, and Redis failures turned into `SharedStateUnavailable` (503 in each surface's
  envelope: nothing is admitted or decided unchecked while Redis is away);
- `quota`: the data plane's rate-limit windows, one Lua script per admission;
- `signin`: smart-lockout and per-address throttling counts;
- `feed`: change markers (`ChangeMarker`) pushed to every replica over pub/sub, so a role, directory or
  deployment change reaches every replica's caches;
- `state`: the bundle the app factory wires.

Single use of authorization and device codes and refresh-token replay detection stay in the database: each is
one conditional UPDATE (`store/grants.py`), exact across replicas on a shared PostgreSQL.
"""

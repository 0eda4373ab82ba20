"""Several `cielo up` replicas on loopback ports sharing one PostgreSQL database and one Redis, as behind a load
balancer: one public URL (the token issuer) for all, each its own data directory, port and single worker.

Used by tests/scaleout and benchmarks/scale_out.py. The first replica makes the tenant (first start); the others
start on the database it made. Each replica's signing keys, CA and sealing key come from the database, sealed under
the one key-encryption key they are given.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.server import CieloServer, free_port, start_server

# Each replica has a data directory of its own, as replicas on several machines would: the signing keys, the
# sealing key and the CA come from the database (sealed under CIELO_KEY_ENCRYPTION_KEY), everything else through
# PostgreSQL and Redis. True would make them share one (a shared volume).
SHARED_DATA_DIR = False

# A fixed key-encryption key for tests and benchmarks (32 url-safe base64 bytes): never one for a real server.
TEST_KEK = "dGVzdC1vbmx5LWtleS1lbmNyeXB0aW9uLWtleS0wMDA="


@dataclass
class Cluster:
    replicas: list[CieloServer]
    public_url: str
    database_url: str
    redis_url: str
    redis_prefix: str

    @property
    def tenant_id(self) -> str:
        return self.replicas[0].tenant_id

    @property
    def subscription_id(self) -> str:
        return self.replicas[0].subscription_id

    def stop(self) -> None:
        for replica in self.replicas:
            replica.stop()


def start_replica(data_dir: Path, port: int, public_url: str, env: dict[str, str], extra_args: tuple[str, ...] = (),
                  timeout_s: float = 60) -> CieloServer:
    """One replica: `cielo up --workers 1` on `port`, naming the cluster's public URL."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    return start_server(data_dir, port=port, timeout_s=timeout_s, env=env,
                        extra_args=("--public-url", public_url, "--workers", "1", *extra_args))


@contextmanager
def cluster(work_dir: Path, count: int, database_url: str, redis_url: str, *,
            extra_env: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()) -> Iterator[Cluster]:
    ports = [free_port() for _ in range(count)]
    public_url = f"https://127.0.0.1:{ports[0]}"
    prefix = f"cielo-scaleout-{uuid.uuid4().hex[:10]}"
    env = {"CIELO_DATABASE_URL": database_url, "CIELO_KEY_ENCRYPTION_KEY": TEST_KEK, "CIELO_REDIS_URL": redis_url,
           "CIELO_REDIS_PREFIX": prefix, **(extra_env or {})}
    replicas: list[CieloServer] = []
    try:
        for index, port in enumerate(ports):
            data_dir = work_dir / ("data" if SHARED_DATA_DIR else f"replica{index}")
            replicas.append(start_replica(data_dir, port, public_url, env, extra_args))
        for replica in replicas[1:]:  # a later start may not print the tenant: it is the first one's
            replica.tenant_id = replica.tenant_id or replicas[0].tenant_id
            replica.subscription_id = replica.subscription_id or replicas[0].subscription_id
        yield Cluster(replicas, public_url, database_url, redis_url, prefix)
    finally:
        for replica in replicas:
            replica.stop()
        _forget(redis_url, prefix)


def kill(server: CieloServer) -> None:
    """kill -9, as a crashed machine would stop: its workers follow (PR_SET_PDEATHSIG)."""
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(10)


def _forget(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


POSTGRES_ADMIN = os.environ.get("CIELO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _pg(dbname: str = "postgres") -> object:
    import psycopg
    from sqlalchemy import make_url

    url = make_url(POSTGRES_ADMIN)
    return psycopg.connect(host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username or "postgres",
                           password=url.password, dbname=dbname, autocommit=True, connect_timeout=3)


def postgres_unavailable() -> str | None:
    try:
        conn = _pg()
        conn.close()  # type: ignore[attr-defined]
    except Exception as exc:  # any failure: the tests skip, saying why
        return f"no PostgreSQL at {POSTGRES_ADMIN.split('@')[-1]} ({type(exc).__name__}: {str(exc)[:120]})"
    return None


@contextmanager
def postgres_database(prefix: str = "cielo_scaleout") -> Iterator[str]:
    """A new database, uniquely named; dropped (closing what is still connected) at the end."""
    from sqlalchemy import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = _pg()
    conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    conn.close()  # type: ignore[attr-defined]
    try:
        yield make_url(POSTGRES_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        conn = _pg()
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[attr-defined]
        conn.close()  # type: ignore[attr-defined]

"""`cielo migrate`: bring a database to the newest schema revision explicitly, without starting a server.

`cielo up` migrates at start too; run this before rolling out a new release to replicas sharing one PostgreSQL
database, so the schema changes once, while the old replicas are still serving or stopped (docs/deployment.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from cielo.cli.common import CliError, global_options
from cielo.cli.up import _DATA_DIR_HELP, _DATABASE_URL_HELP, _settings
from cielo.errors import DataDirectoryError


@click.command("migrate")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="CIELO_DATA_DIR", default=None,
              help=_DATA_DIR_HELP)
@click.option("--database-url", envvar="CIELO_DATABASE_URL", default=None, help=_DATABASE_URL_HELP)
@global_options
def migrate(data_dir: Path | None, database_url: str | None) -> dict[str, Any]:
    """Bring the database (SQLite in the data directory, or --database-url) to the newest schema revision.

    An existing SQLite database is checked and copied beside itself first (cielo.db.before-upgrade-<time>); for
    PostgreSQL, take the server's own backup (pg_dump) first. The whole upgrade is one transaction.

    \b
    Examples:
      cielo migrate --data-dir ~/.local/share/cielo
      CIELO_DATABASE_URL=postgresql+psycopg://cielo@db.example/cielo cielo migrate -o table"""
    from cielo.store.datadir import open_database
    from cielo.store.migrate import HEAD

    settings = _settings(data_dir, database_url=database_url)
    if settings.database_url is None and not settings.db_path.exists():
        raise CliError(f"no Cielo data in {settings.data_dir}; give --data-dir (or CIELO_DATA_DIR), or --database-url")
    try:
        engine, upgraded = open_database(settings.data_dir, settings.db_path, settings.database_url)
    except DataDirectoryError as exc:
        raise CliError(f"cannot migrate: {exc}") from exc
    where = engine.url.render_as_string(hide_password=True) if settings.database_url else str(settings.db_path)
    engine.dispose()
    result: dict[str, Any] = {"database": where, "revision": upgraded.to_revision if upgraded else HEAD,
                              "upgraded": upgraded is not None}
    if upgraded is not None:
        result["from"] = upgraded.from_revision
        result["backup"] = str(upgraded.backup) if upgraded.backup else None
        result["notes"] = list(upgraded.notes)
    return result

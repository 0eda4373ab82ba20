"""`cielo export` and `cielo import`: move a Cielo's data (a SQLite data directory) into another database, such as
the PostgreSQL database replicas share, without loss (docs/deployment.md, "PostgreSQL and shared keys")."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from cielo.cli.common import CliError, global_options
from cielo.cli.up import _DATA_DIR_HELP, _DATABASE_URL_HELP, _settings
from cielo.errors import ConfigError, DataDirectoryError

_KEK_HELP = ("The key-encryption key the replicas will use (32 random bytes, base64), from this file; or env "
             "CIELO_KEY_ENCRYPTION_KEY. It seals the data directory's keys in the export.")


@click.command("export")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="CIELO_DATA_DIR", default=None,
              help=_DATA_DIR_HELP)
@click.option("--database-url", envvar="CIELO_DATABASE_URL", default=None,
              help="Export this database instead of the data directory's (its keys are in it already).")
@click.option("--key-encryption-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="CIELO_KEY_ENCRYPTION_KEY_FILE", default=None, help=_KEK_HELP)
@click.option("--file", "output_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The file to write (made 0600; an existing file is never overwritten).")
@global_options
def export(data_dir: Path | None, database_url: str | None, key_encryption_key_file: Path | None,
           output_file: Path) -> dict[str, Any]:
    """Write every row of the database, with the data directory's keys sealed, to one file for `cielo import`.

    Stop the server first (rows written meanwhile may be missed). The database is brought to this Cielo's newest
    schema revision first, as `cielo migrate` does. The file holds password hashes and sealed keys: keep it as
    private as the database, and delete it once imported.

    \b
    Examples:
      CIELO_KEY_ENCRYPTION_KEY_FILE=./kek cielo export --data-dir ~/.local/share/cielo --file cielo.export
      cielo import --database-url postgresql+psycopg://cielo@db.example/cielo --file cielo.export"""
    from cielo.identity.keys import key_encryption_key
    from cielo.store.datadir import open_database
    from cielo.store.transfer import export_lines, key_file_rows, write_export

    settings = _settings(data_dir, database_url=database_url, key_encryption_key_file=key_encryption_key_file)
    if settings.database_url is None and not settings.db_path.exists():
        raise CliError(f"no Cielo data in {settings.data_dir}; give --data-dir (or CIELO_DATA_DIR), or --database-url")
    try:
        keys = [] if settings.database_url else key_file_rows(settings.data_dir, key_encryption_key(settings),
                                                             time.time())
        engine, _ = open_database(settings.data_dir, settings.db_path, settings.database_url)
    except (ConfigError, DataDirectoryError) as exc:
        raise CliError(f"cannot export: {exc}") from exc
    try:
        rows = write_export(export_lines(engine, keys), output_file)
    except FileExistsError as exc:
        raise CliError(f"cannot export: {output_file} exists; give a new file") from exc
    except OSError as exc:
        raise CliError(f"cannot export to {output_file}: {exc.strerror or exc}") from exc
    finally:
        engine.dispose()
    return {"output": str(output_file), "rows": rows, "keys": len(keys)}


@click.command("import")
@click.option("--database-url", envvar="CIELO_DATABASE_URL", required=True, help=_DATABASE_URL_HELP)
@click.option("--file", "input_file", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A file `cielo export` wrote.")
@global_options
def import_(database_url: str, input_file: Path) -> dict[str, Any]:
    """Load a `cielo export` file into a new, empty database (made and migrated first), in one transaction.

    \b
    Examples:
      cielo import --database-url postgresql+psycopg://cielo@db.example/cielo --file cielo.export -o table"""
    from cielo.store.datadir import open_server_database
    from cielo.store.transfer import import_file

    try:
        engine, _ = open_server_database(database_url)
    except DataDirectoryError as exc:
        raise CliError(f"cannot import: {exc}") from exc
    where = engine.url.render_as_string(hide_password=True)
    try:
        with input_file.open(encoding="utf-8") as handle:
            counts = import_file(handle, engine, where)
    except DataDirectoryError as exc:
        raise CliError(f"cannot import: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {input_file}: {exc}") from exc
    finally:
        engine.dispose()
    return {"database": where, "rows": sum(counts.values()), "tables": counts}

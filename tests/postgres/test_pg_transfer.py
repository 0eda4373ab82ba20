"""`cielo export` from a populated SQLite data directory and `cielo import` into a fresh PostgreSQL database lose
nothing: every table compared row by row; the keys travel sealed (the file holds no private key in plaintext) and a
replica on the imported database signs with the data directory's key, opens its account keys and serves its CA;
`cielo migrate` brings either kind of database to the newest revision."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner, Result

from cielo.api.app import build_services
from cielo.cli.main import cli
from cielo.core.arm_ids import ResourceId
from cielo.core.clock import FrozenClock
from cielo.identity.pki import ensure_tls
from cielo.settings import Settings
from cielo.store.datadir import open_database, open_server_database
from cielo.store.migrate import HEAD
from cielo.store.models import RefreshToken
from cielo.store.responses import ResponseRepo
from cielo.store.signin import SignInFailureRepo
from cielo.store.template_deployments import DeploymentRecordRepo
from postgres.database import TEST_KEK, table_rows, temporary_database

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "release-bc75321"
MANIFEST = json.loads((FIXTURE / "manifest.json").read_text())
KEYS_ONLY_ON_POSTGRES = ("shared_keys", "key_versions")


def _run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={"CIELO_KEY_ENCRYPTION_KEY": TEST_KEK, **(env or {})})


def _populated(tmp_path: Path) -> Path:
    """A data directory of a previous release (users, groups, an application with credentials, a custom role, role
    assignments, an account with keys, its signing key and sealing key), upgraded, with rows in the newer tables."""
    data_dir = tmp_path / "data"
    shutil.copytree(FIXTURE, data_dir)
    services = build_services(Settings(data_dir=data_dir), FrozenClock())
    ensure_tls(data_dir / "tls")
    engine, _ = open_database(data_dir, data_dir / "cielo.db")
    ResponseRepo(engine).save(response_id="resp_1", account_id="/subscriptions/S/acct", owner="oid:x",
                              created_at=1.1, expires_at=9e9, response={"output": "héllo ✓ \u00e9", "n": 0.1 + 0.2},
                              input_items=[{"role": "user"}], context=[])
    DeploymentRecordRepo(engine).save(deployment_id="/subscriptions/s/resourcegroups/g/deployments/d",
                                      group_id="/subscriptions/s/resourcegroups/g", name="d", state="Succeeded",
                                      operation_id="op", record={"x": 1}, operations=[], owner="h:1:b",
                                      created_at=1.5, now=2.5)
    SignInFailureRepo(engine).record_failure("k", 1234.5678901234, 60.0)
    services.grants.add_refresh_token(RefreshToken("rt", "fam", MANIFEST["tenantId"], "c", "u", 9e9, True, False))
    engine.dispose()
    return data_dir


def _account_keys(settings: Settings) -> dict[str, str]:
    services = build_services(settings, FrozenClock())
    rid = ResourceId(MANIFEST["subscriptionId"], "cielo-rg", "Microsoft.CognitiveServices", ("accounts",),
                     ("cielo-openai",))
    return services.resources.list_keys(services.resources.get_account(rid))


def test_a_data_directory_moves_into_postgresql_without_loss(tmp_path: Path) -> None:
    data_dir = _populated(tmp_path)
    export_file = tmp_path / "cielo.export"
    exported = _run("export", "--data-dir", str(data_dir), "--file", str(export_file), "-o", "json")
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.output)["keys"] == 4  # the KEK's check, the signing key, the sealing key, the CA
    assert oct(export_file.stat().st_mode & 0o777) == "0o600"
    content = export_file.read_bytes()
    assert b"PRIVATE KEY" not in content and (data_dir / "sealing.key").read_bytes().strip() not in content
    again = _run("export", "--data-dir", str(data_dir), "--file", str(export_file))
    assert again.exit_code == 1 and "exists" in again.output
    sqlite_engine, _ = open_database(data_dir, data_dir / "cielo.db")
    with temporary_database("cielo_import") as url:
        imported = _run("import", "--database-url", url, "--file", str(export_file), "-o", "json")
        assert imported.exit_code == 0, imported.output
        assert json.loads(imported.output)["tables"]["users"] == 2
        engine, _ = open_server_database(url)
        on_postgres, on_sqlite = table_rows(engine), table_rows(sqlite_engine)
        for name in KEYS_ONLY_ON_POSTGRES:
            assert on_sqlite[name] == [] and on_postgres.pop(name) and on_sqlite.pop(name) == []
        assert on_postgres == on_sqlite
        assert sum(len(rows) for rows in on_postgres.values()) > 20
        # A replica on the imported database: the data directory's signing key, account keys and CA.
        replica = Settings(data_dir=tmp_path / "replica", database_url=url, key_encryption_key=TEST_KEK)
        services = build_services(replica, FrozenClock())
        assert services.keys.signing_key().kid == next((data_dir / "keys").glob("*.json")).stem
        assert _account_keys(replica) == _account_keys(Settings(data_dir=data_dir))
        from cielo.identity.keys import share_ca

        share_ca(replica, engine, 0.0)
        assert (tmp_path / "replica" / "tls" / "ca.pem").read_bytes() == (data_dir / "tls" / "ca.pem").read_bytes()
        refused = _run("import", "--database-url", url, "--file", str(export_file))
        assert refused.exit_code == 1 and "is not empty" in refused.output
        engine.dispose()
    sqlite_engine.dispose()


def test_import_refuses_what_is_not_an_export(tmp_path: Path) -> None:
    (tmp_path / "not-an-export").write_text('{"hello": 1}\n')
    with temporary_database("cielo_import") as url:
        refused = _run("import", "--database-url", url, "--file", str(tmp_path / "not-an-export"))
    assert refused.exit_code == 1 and "not a `cielo export`" in refused.output
    missing = _run("export", "--data-dir", str(_populated(tmp_path)), "--file", str(tmp_path / "x"),
                   env={"CIELO_KEY_ENCRYPTION_KEY": ""})
    assert missing.exit_code == 1 and "key-encryption key" in missing.output


def test_cielo_migrate_upgrades_either_database(tmp_path: Path) -> None:
    with temporary_database("cielo_migrate") as url:
        first = _run("migrate", "--database-url", url, "-o", "json")
        assert first.exit_code == 0, first.output
        assert json.loads(first.output) | {"database": ""} == {
            "database": "", "revision": HEAD, "upgraded": True, "from": "(new database)", "backup": None, "notes": []}
        second = _run("migrate", "--database-url", url, "-o", "json")
        assert json.loads(second.output)["upgraded"] is False
        assert "postgres" in json.loads(second.output)["database"] and "@" in json.loads(second.output)["database"]
    release = tmp_path / "release"
    shutil.copytree(FIXTURE, release)
    done = _run("migrate", "--data-dir", str(release), "-o", "json")
    assert done.exit_code == 0, done.output
    answer = json.loads(done.output)
    assert answer["upgraded"] is True and answer["revision"] == HEAD and Path(answer["backup"]).exists()
    nothing = _run("migrate", "--data-dir", str(tmp_path / "empty"))
    assert nothing.exit_code == 1 and "no Cielo data" in nothing.output
    unreachable = _run("migrate", "--database-url", "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/x")
    assert unreachable.exit_code == 1 and "cannot be reached" in unreachable.output
    assert "hunter2" not in unreachable.output  # the password is never shown

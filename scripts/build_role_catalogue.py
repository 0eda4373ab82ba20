#!/usr/bin/env python3
"""Rebuild Cielo's vendored Azure data: every built-in role definition, and the provider operations of the
providers Cielo serves.

Source: github.com/easimon/azure-builtin-roles (MIT), a daily archive of Azure's own answers to
`az role definition list` (one file per built-in role under `azure-roles/`) and to `az provider operation
show --namespace …` (one file per provider under `azure-provider-operations/`), pinned to one commit below.
Only facts are taken from it: ids, names, descriptions, permission lists, operation names.

    scripts/build_role_catalogue.py                        # downloads the pinned commit from GitHub
    scripts/build_role_catalogue.py --source DIR           # a checkout (work tree) of that repository
    scripts/build_role_catalogue.py --source GIT_DIR       # a bare git directory / mirror (reads --commit)
    scripts/build_role_catalogue.py --source FILE.tar.gz   # GitHub's tarball of the commit, downloaded before
    scripts/build_role_catalogue.py --commit SHA --date YYYY-MM-DD   # another commit of the same repository

Writes src/cielo/rbac/data/builtin_roles.json and src/cielo/control/data/provider_operations.json (compact
JSON; see docs/rbac.md, "The built-in role catalogue").
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

REPOSITORY = "https://github.com/easimon/azure-builtin-roles"
COMMIT = "db0b2258505032bd004bc356dd3eec87250d5b99"
COMMIT_DATE = "2026-08-22"
TARBALL = "https://codeload.github.com/easimon/azure-builtin-roles/tar.gz/{commit}"
ROLES_DIR = "azure-roles"
OPERATIONS_DIR = "azure-provider-operations"
# The providers whose operations Cielo serves (ARM routes, RBAC actions and the Azure OpenAI data actions).
SERVED_NAMESPACES = (
    "Microsoft.Authorization", "Microsoft.CognitiveServices", "Microsoft.Compute", "Microsoft.Insights",
    "Microsoft.ManagedIdentity", "Microsoft.Resources", "Microsoft.Web",
)
ROOT = Path(__file__).resolve().parent.parent
ROLES_OUT = ROOT / "src/cielo/rbac/data/builtin_roles.json"
OPERATIONS_OUT = ROOT / "src/cielo/control/data/provider_operations.json"
PERMISSION_FIELDS = ("actions", "notActions", "dataActions", "notDataActions")

Reader = Callable[[], Iterable[tuple[str, bytes]]]  # (path in the repository, content) for every file


def from_tarball(commit: str, path: Path | None = None) -> Reader:
    """GitHub's tarball of `commit` (downloaded), or that same tarball already on disk at `path`."""
    def read() -> Iterable[tuple[str, bytes]]:
        if path is not None:
            data = path.read_bytes()
        else:
            with urllib.request.urlopen(TARBALL.format(commit=commit), timeout=120) as response:  # noqa: S310
                data = response.read()
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive.getmembers():
                if member.isfile():
                    handle = archive.extractfile(member)
                    if handle is not None:
                        yield member.name.split("/", 1)[1], handle.read()  # drop the "{repo}-{commit}/" prefix
    return read


def from_work_tree(root: Path) -> Reader:
    def read() -> Iterable[tuple[str, bytes]]:
        for folder in (ROLES_DIR, OPERATIONS_DIR):
            for path in sorted((root / folder).glob("*.json")):
                yield f"{folder}/{path.name}", path.read_bytes()
    return read


def from_git_dir(git_dir: Path, commit: str) -> Reader:
    def git(*args: str) -> bytes:
        return subprocess.run(["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True).stdout

    def read() -> Iterable[tuple[str, bytes]]:
        names = git("ls-tree", "-r", "--name-only", "-z", commit, ROLES_DIR, OPERATIONS_DIR).split(b"\0")
        for name in filter(None, names):
            path = name.decode()
            yield path, git("show", f"{commit}:{path}")
    return read


def _role_row(role: dict[str, Any]) -> list[Any]:
    """[guid, roleName, description, [[actions, notActions, dataActions, notDataActions, condition,
    conditionVersion], …]]: Azure's values as they are (patterns keep their case and any oddity)."""
    if role.get("roleType") != "BuiltInRole" or role.get("assignableScopes") != ["/"]:
        raise ValueError(f"{role.get('roleName')!r} is not a built-in role assignable at '/'")
    blocks = [[*(list(p.get(f) or []) for f in PERMISSION_FIELDS), p.get("condition"), p.get("conditionVersion")]
              for p in role["permissions"]]
    return [role["name"].lower(), role["roleName"], role.get("description") or "", blocks]


def _operation_row(op: dict[str, Any]) -> list[Any]:
    """[name, displayName, description, isDataAction, origin]; `properties` (metric and log specifications) is
    left out: Cielo answers it as null."""
    return [op["name"], op.get("displayName") or "", op.get("description") or "", bool(op.get("isDataAction")),
            op.get("origin")]


def _provider_row(provider: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": provider["name"],
        "displayName": provider.get("displayName") or provider["name"],
        "operations": [_operation_row(op) for op in provider.get("operations") or []],
        "resourceTypes": [
            {"name": rt["name"], "displayName": rt.get("displayName") or rt["name"],
             "operations": [_operation_row(op) for op in rt.get("operations") or []]}
            for rt in provider.get("resourceTypes") or []
        ],
    }


def build(read: Reader, commit: str, date: str) -> tuple[dict[str, Any], dict[str, Any]]:
    roles: list[list[Any]] = []
    providers: dict[str, dict[str, Any]] = {}
    wanted = {ns.lower() for ns in SERVED_NAMESPACES}
    for path, content in read():
        folder, _, name = path.partition("/")
        if folder == ROLES_DIR and name.endswith(".json"):
            roles.append(_role_row(json.loads(content)))
        elif folder == OPERATIONS_DIR and name.lower().removesuffix(".json") in wanted:
            provider = json.loads(content)
            providers[provider["name"].lower()] = _provider_row(provider)
    missing = wanted - set(providers)
    if missing:
        raise ValueError(f"no provider operations for {sorted(missing)}")
    roles.sort(key=lambda r: r[1].lower())
    ids = [r[0] for r in roles]
    names = [r[1].lower() for r in roles]
    if len(set(ids)) != len(ids) or len(set(names)) != len(names):
        raise ValueError("duplicate role ids or names")
    source = {"repository": REPOSITORY, "commit": commit, "date": date,
              "how": "Azure's answers to `az role definition list` / `az provider operation show`, archived daily"}
    return (
        {"source": source, "format": "[id, roleName, description, [[actions, notActions, dataActions, "
                                     "notDataActions, condition, conditionVersion], ...]]", "roles": roles},
        {"source": source, "format": "operation: [name, displayName, description, isDataAction, origin]",
         "providers": [providers[k] for k in sorted(providers)]},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, help="a work tree or git directory of the source repository")
    parser.add_argument("--commit", default=COMMIT, help=f"the source commit (default {COMMIT})")
    parser.add_argument("--date", default=COMMIT_DATE, help="that commit's date, recorded in the files")
    args = parser.parse_args(argv)
    if args.source is None:
        read = from_tarball(args.commit)
    elif args.source.is_file():
        read = from_tarball(args.commit, args.source)
    elif (args.source / ROLES_DIR).is_dir():
        read = from_work_tree(args.source)
    else:
        read = from_git_dir(args.source, args.commit)
    roles, operations = build(read, args.commit, args.date)
    for out, data in ((ROLES_OUT, roles), (OPERATIONS_OUT, operations)):
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{len(roles['roles'])} built-in roles -> {ROLES_OUT.relative_to(ROOT)}; "
          f"{len(operations['providers'])} providers -> {OPERATIONS_OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

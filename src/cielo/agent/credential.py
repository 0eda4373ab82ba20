"""The host credential file that enrolls an agent to one compute resource (mode 0600, never handed to
workloads): written by `cielo vm agent-credential`, read by `cielo agent --credential`."""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class HostCredentialFile:
    endpoint: str
    tenant_id: str
    resource_id: str
    credential: str
    ca_bundle: str | None

    @classmethod
    def load(cls, path: Path) -> HostCredentialFile:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PermissionError(f"{path} is readable by others; run `chmod 600 {path}` (it holds a secret)")
        data = json.loads(path.read_text())
        ca_bundle = data.get("caBundle")
        if ca_bundle and not Path(ca_bundle).is_file():
            # The file names the bundle where `agent-credential` ran: on another host, copy Cielo's
            # tls/bundle.pem there and point caBundle at it (or set it to null if Cielo's CA is trusted).
            raise ValueError(f"its caBundle {ca_bundle} does not exist on this host; copy Cielo's tls/bundle.pem "
                             "here and set caBundle to its path")
        return cls(data["endpoint"], data["tenantId"], data["resourceId"], data["credential"], ca_bundle)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"endpoint": self.endpoint, "tenantId": self.tenant_id, "resourceId": self.resource_id,
                       "credential": self.credential, "caBundle": self.ca_bundle}, handle, indent=2)
        os.replace(tmp, path)

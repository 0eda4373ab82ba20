"""What a site (web app or function app) keeps besides its identity: the App Service properties `az functionapp
create` and `az webapp create` send (`httpsOnly`, `reserved`, `serverFarmId`, `siteConfig` with its `appSettings`),
in Azure's shapes (Azure/azure-rest-api-specs: specification/web/…/Microsoft.Web/stable/2024-04-01, `Site`,
`SiteConfig`, `StringDictionary`).

Cielo runs no code: these are records. They live in two child resources of the site, `config/web` (the site
configuration, plain) and `config/appsettings` (the app settings, which carry storage keys in connection strings:
sealed, never stored in plaintext). A site's GET shows `httpsOnly`, `reserved`, `serverFarmId` and `siteConfig`
without its app settings, as Azure's does; `POST …/config/appsettings/list` shows the settings. A site
configuration property Cielo does not keep is refused, naming it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from cielo.control.resources import ResourceService
from cielo.control.storage import PLAN_TYPE
from cielo.core.arm_ids import InvalidResourceId, ResourceId, parse
from cielo.errors import InvalidRequestContent, NotFound
from cielo.store.resources import Resource

CONFIG_TYPE = "Microsoft.Web/sites/config"
# The site properties kept here (the rest of a site's properties are the identity service's).
SITE_PROPERTIES = ("httpsOnly", "reserved", "serverFarmId", "siteConfig", "clientAffinityEnabled")
# `siteConfig` properties kept and echoed (what az's function app and web app commands send).
SITE_CONFIG = ("appSettings", "alwaysOn", "linuxFxVersion", "windowsFxVersion", "use32BitWorkerProcess",
               "netFrameworkVersion", "javaVersion", "powerShellVersion", "nodeVersion", "pythonVersion",
               "phpVersion", "http20Enabled", "ftpsState", "minTlsVersion", "localMySqlEnabled",
               "functionAppScaleLimit", "minimumElasticInstanceCount", "numberOfWorkers")
_BOOLS = ("httpsOnly", "reserved", "clientAffinityEnabled")


def split_site_body(body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the body without the App Service properties, those properties); nulls are left out of both."""
    props = body.get("properties")
    if not isinstance(props, dict):
        return body, {}
    kept = {k: v for k, v in props.items() if k not in SITE_PROPERTIES}
    ours = {k: v for k, v in props.items() if k in SITE_PROPERTIES and v is not None}
    return {**body, "properties": kept}, ours


def _check(changes: dict[str, Any]) -> None:
    for key in _BOOLS:
        if key in changes and not isinstance(changes[key], bool):
            raise InvalidRequestContent(f"The Microsoft.Web/sites property 'properties.{key}' must be true or false.")
    if "serverFarmId" in changes and not isinstance(changes["serverFarmId"], str):
        raise InvalidRequestContent("The Microsoft.Web/sites property 'properties.serverFarmId' must be a string.")
    config = changes.get("siteConfig")
    if config is None:
        return
    if not isinstance(config, dict):
        raise InvalidRequestContent("The Microsoft.Web/sites property 'properties.siteConfig' must be an object.")
    for key, value in config.items():
        if value is not None and key not in SITE_CONFIG:
            raise InvalidRequestContent(
                f"The Microsoft.Web/sites property 'properties.siteConfig.{key}' is not served by this Cielo (a site "
                f"here keeps {', '.join(SITE_CONFIG)}). Send the site without it.")
    settings = config.get("appSettings")
    if settings is not None and (not isinstance(settings, list) or not all(
            isinstance(s, dict) and isinstance(s.get("name"), str) and isinstance(s.get("value"), str | None)
            and set(s) <= {"name", "value"} for s in settings)):
        raise InvalidRequestContent("The Microsoft.Web/sites property 'properties.siteConfig.appSettings' must be a "
                                    "list of {name, value} strings.")


class SiteConfigService:
    def __init__(self, resources: ResourceService) -> None:
        self._resources = resources

    def plan_of(self, site: ResourceId, server_farm_id: str) -> Resource:
        """The plan a site names: a full id, or a name in the site's group (az passes `--plan`'s name as is)."""
        try:
            rid = parse(server_farm_id) if server_farm_id.startswith("/") else ResourceId(
                site.subscription, site.resource_group, "Microsoft.Web", ("serverfarms",), (server_farm_id,))
        except InvalidResourceId:
            rid = None
        found = self._resources.find(rid) if rid is not None and rid.subscription.lower() == site.subscription.lower() \
            else None
        if found is None or found.type != PLAN_TYPE:
            raise NotFound(f"The App Service plan '{server_farm_id}' was not found in subscription "
                           f"'{site.subscription}'.", code="ServerFarmNotFound")
        return found

    def check(self, site: ResourceId, changes: dict[str, Any]) -> Resource | None:
        """Refuse what cannot be kept before anything is written; the plan named, if any."""
        _check(changes)
        return self.plan_of(site, changes["serverFarmId"]) if "serverFarmId" in changes else None

    def apply(self, site: Resource, changes: dict[str, Any], plan: Resource | None) -> None:
        """Keep the changes under the site (after the site itself is stored). App settings given replace the
        site's; a `siteConfig` without them keeps them (az sends the site back without them after a GET)."""
        if not changes:
            return
        web = self._get(site, "web")
        current: dict[str, Any] = dict(web.properties) if web else {}
        config = dict(changes.get("siteConfig") or {})
        settings = config.pop("appSettings", None)
        for key in ("httpsOnly", "reserved", "clientAffinityEnabled"):
            if key in changes:
                current[key] = changes[key]
        if plan is not None:
            current["serverFarmId"] = plan.id
        if config:
            current["siteConfig"] = {**(current.get("siteConfig") or {}),
                                     **{k: v for k, v in config.items() if v is not None}}
        self._put(site, "web", current)
        if settings is not None:
            sealed = self._resources.seal(json.dumps({s["name"]: s.get("value") for s in settings}))
            self._put(site, "appsettings", {"sealed": sealed})

    def render(self, site_json: dict[str, Any], site: Resource) -> dict[str, Any]:
        """A site's ARM representation with what is kept here."""
        web = self._get(site, "web")
        if web is None:
            return site_json
        props = {**site_json["properties"], **{k: v for k, v in web.properties.items() if k != "siteConfig"}}
        if "siteConfig" in web.properties:
            props["siteConfig"] = {**web.properties["siteConfig"], "appSettings": None}
        return {**site_json, "properties": props}

    def web_config(self, site: Resource) -> dict[str, Any]:
        """`GET config/web` (az's `functionapp show` and `webapp show` read it): the site's configuration as kept
        here, its app settings left out (they are listed by `config/appsettings/list` only, as Azure does)."""
        web = self._get(site, "web")
        config = dict((web.properties.get("siteConfig") or {}) if web else {})
        config.pop("appSettings", None)
        return {"id": f"{site.id}/config/web", "name": site.name, "type": CONFIG_TYPE, "location": site.location,
                "properties": {**config, "appSettings": None}}

    def app_settings(self, site: Resource) -> dict[str, Any]:
        """`POST config/appsettings/list`: Azure's StringDictionary."""
        found = self._get(site, "appsettings")
        values = json.loads(self._resources.unseal(found.properties["sealed"])) if found else {}
        return {"id": f"{site.id}/config/appsettings", "name": "appsettings", "type": CONFIG_TYPE,
                "location": site.location, "properties": values}

    def _get(self, site: Resource, name: str) -> Resource | None:
        return self._resources.get_by_key(f"{site.key}/config/{name}")

    def _put(self, site: Resource, name: str, properties: dict[str, Any]) -> None:
        self._resources.store(Resource(
            id=f"{site.id}/config/{name}", subscription_id=site.subscription_id, resource_group=site.resource_group,
            parent_key=site.key, type=CONFIG_TYPE, name=name, location=site.location, kind=None, sku=None, tags=None,
            properties=properties, identity=None, system_data=None, etag=uuid.uuid4().hex))

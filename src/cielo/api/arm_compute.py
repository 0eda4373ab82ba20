"""ARM routes for managed identities: user-assigned identities, and VMs, scale sets and web apps
with their `identity` blocks, plus Cielo's host-credential actions for the host agent."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cielo.api.arm_context import ArmContext, read_json_body
from cielo.control.identities import SITE_TYPE, UAMI_TYPE, VM_TYPE, VMSS_TYPE, IdentityService, compute_json
from cielo.core.arm_ids import ResourceId
from cielo.errors import ArmError, BadRequest, NotFound

# (namespace, type) -> full type
TYPES = {
    ("microsoft.compute", "virtualmachines"): VM_TYPE,
    ("microsoft.compute", "virtualmachinescalesets"): VMSS_TYPE,
    ("microsoft.web", "sites"): SITE_TYPE,
    ("microsoft.managedidentity", "userassignedidentities"): UAMI_TYPE,
}
NAMESPACES = {ns for ns, _ in TYPES}


async def handle(request: Request, ctx: ArmContext, subscription: str, rg: str, tail: list[str],
                 method: str) -> Response:
    """`tail` starts at the namespace: [ns, type, name?, action?]."""
    svc: IdentityService = request.app.state.identity_service
    type_ = TYPES.get((tail[0].lower(), tail[1].lower())) if len(tail) >= 2 else None
    if type_ is None:
        raise NotFound(f"The resource type '{'/'.join(tail[:2])}' is not served by this Cielo.",
                       code="InvalidResourceType")
    group = request.app.state.resource_service.get_group(subscription, rg)
    if len(tail) == 2:
        if method != "GET":
            raise ArmError(f"The HTTP method '{method}' is not supported at this path.", code="MethodNotAllowed")
        items = [r for r in request.app.state.resource_service.repo.list_resources(
            subscription_id=subscription, resource_group=rg, type_=type_) if ctx.allowed(f"{type_}/read", r.id)]
        if not items:
            ctx.require(f"{type_}/read", group.id)
        return JSONResponse({"value": [compute_json(r) for r in items]})
    rid = ResourceId(subscription, group.name, tail[0], (tail[1],), (tail[2],))
    tenant = ctx.principal.tenant_id
    if len(tail) == 3:
        if method == "GET":
            ctx.require(f"{type_}/read", rid.id)
            return JSONResponse(compute_json(svc.get_typed(rid, type_)))
        if method in ("PUT", "PATCH"):
            ctx.require(f"{type_}/write", rid.id)
            body = await read_json_body(request)
            if type_ == UAMI_TYPE:
                resource, created = svc.put_uami(rid, body, tenant, ctx.writer())
            else:
                identity = body.get("identity")
                if identity is not None and not isinstance(identity, dict):
                    raise BadRequest("identity must be an object.", code="InvalidIdentity")
                wanted = (identity or {}).get("userAssignedIdentities")
                if isinstance(wanted, dict):
                    # Attaching a user-assigned identity needs its assign action (ARM checks it too);
                    # detaching one (value null) does not.
                    for uami_id, value in wanted.items():
                        if value is not None:
                            ctx.require("Microsoft.ManagedIdentity/userAssignedIdentities/assign/action", uami_id)
                if method == "PATCH":
                    svc.get_typed(rid, type_)
                resource, created = svc.put_compute(rid, type_, body, tenant, ctx.writer(), patch=method == "PATCH")
            return JSONResponse(compute_json(resource), status_code=201 if created else 200)
        if method == "DELETE":
            ctx.require(f"{type_}/delete", rid.id)
            deleted = svc.delete_uami(rid) if type_ == UAMI_TYPE else svc.delete_compute(rid, type_)
            if deleted:
                ctx.access.scopes_deleted()
            return Response(status_code=200 if deleted else 204)
        raise ArmError(f"The HTTP method '{method}' is not supported at this path.", code="MethodNotAllowed")
    action = tail[3].lower()
    if len(tail) == 4 and method == "POST" and type_ != UAMI_TYPE and action in ("issuehostcredential",
                                                                                "revokehostcredentials"):
        ctx.require(f"{type_}/write", rid.id)
        resource = svc.get_typed(rid, type_)
        if action == "issuehostcredential":
            return JSONResponse({"credential": svc.issue_host_credential(resource), "resourceId": resource.id,
                                 "tenantId": tenant, "endpoint": request.app.state.settings.base_url})
        return JSONResponse({"revoked": svc.revoke_host_credentials(resource)})
    raise NotFound(f"The path under '{rid.name}' is not served by this Cielo.", code="InvalidResourceType")

"""Directory writes through the Graph-compatible API by principals without a directory role.

As in Entra's defaults, members of a tenant may read its directory and only directory administrators write it;
a service principal without a directory role (Cielo grants none) may do neither. Every write below is refused with
Graph's 403 `Authorization_RequestDenied`, and the administrator reads back that nothing changed: a member cannot
create or delete users, groups, applications or service principals, add itself to a group, add a secret, a
certificate or a federated credential to someone else's application (each of which would let it sign in as that
application), change another user's password or make itself an administrator.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from identity_support import graph, make_certificate, new_app, new_user, token_post
from security_support import GRAPH, admin_graph, claims_of, graph_call, graph_denied

from support.server import CLI_CLIENT_ID, CieloServer

pytestmark = pytest.mark.e2e

GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"


@dataclass(frozen=True)
class Directory:
    """Objects the administrator made, and the two callers without a directory role."""

    server: CieloServer
    callers: dict[str, tuple[str, str]]  # "member" | "service-principal" -> (object id, Graph token)
    member_upn: str
    member_password: str
    victim: str  # a user (member of `group`)
    victim_upn: str
    victim_password: str
    group: str
    app: dict[str, Any]  # with a secret, a certificate, a federated credential and a service principal
    app_without_sp: dict[str, Any]
    certificate_der: bytes
    fic: str

    def snapshot(self) -> dict[str, Any]:
        """What the administrator reads of the directory: every object, the group's members, the application."""
        def ids(path: str) -> list[str]:
            return sorted(o["id"] for o in admin_graph(self.server, "GET", path)["value"])

        app = admin_graph(self.server, "GET", f"/applications/{self.app['objectId']}")
        return {
            "users": ids("/users"), "groups": ids("/groups"), "applications": ids("/applications"),
            "servicePrincipals": ids("/servicePrincipals"), "members": ids(f"/groups/{self.group}/members"),
            "app": app, "fics": ids(f"/applications/{self.app['objectId']}/federatedIdentityCredentials"),
        }


def _graph_token(server: CieloServer, form: dict[str, str]) -> str:
    answer = token_post(server, {**form, "scope": f"{GRAPH}/.default"})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


@pytest.fixture(scope="module")
def directory(cielo_server: CieloServer, tmp_path_factory: pytest.TempPathFactory) -> Directory:
    server = cielo_server
    member, victim = new_user(server, "sec-member"), new_user(server, "sec-victim")
    member_token = _graph_token(server, {"client_id": CLI_CLIENT_ID, "grant_type": "password",
                                         "username": member.upn, "password": member.password})
    caller_app = new_app(server, "sec-sp-caller")
    sp_token = _graph_token(server, {"client_id": caller_app["appId"], "client_secret": caller_app["secret"],
                                     "grant_type": "client_credentials"})
    name = f"sec-group-{secrets.token_hex(3)}"
    group = graph(server, "POST", "/groups", {"displayName": name, "mailNickname": name})["id"]
    graph(server, "POST", f"/groups/{group}/members/$ref",
          {"@odata.id": f"{server.base_url}/v1.0/directoryObjects/{victim.object_id}"})
    app = new_app(server, "sec-target")
    app["secretKeyId"] = graph(server, "GET", f"/applications/{app['objectId']}")["passwordCredentials"][0]["keyId"]
    cert = make_certificate(tmp_path_factory.mktemp("sec-dir-cert"))
    graph(server, "PATCH", f"/applications/{app['objectId']}", {"keyCredentials": [{
        "type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.b64encode(cert.der).decode()}]})
    fic = graph(server, "POST", f"/applications/{app['objectId']}/federatedIdentityCredentials", {
        "name": "ci", "issuer": "https://issuer.example", "subject": "repo:cielo:ref:refs/heads/main",
        "audiences": ["api://AzureADTokenExchange"]})["id"]
    attacker_cert = make_certificate(tmp_path_factory.mktemp("sec-dir-attacker"), "attacker")
    return Directory(
        server=server,
        callers={"member": (member.object_id, member_token), "service-principal": (caller_app["spObjectId"], sp_token)},
        member_upn=member.upn, member_password=member.password,
        victim=victim.object_id, victim_upn=victim.upn, victim_password=victim.password, group=group, app=app,
        app_without_sp=new_app(server, "sec-no-sp", secret=False, sp=False), certificate_der=attacker_cert.der,
        fic=fic,
    )


# ----------------------------------------------------------------------------- the writes
Write = Callable[[Directory, str], tuple[str, str, Any]]  # (directory, caller's object id) -> method, path, body


def _ref(d: Directory, object_id: str) -> dict[str, str]:
    return {"@odata.id": f"{d.server.base_url}/v1.0/directoryObjects/{object_id}"}


def _unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


WRITES: dict[str, Write] = {
    "create-user": lambda d, me: ("POST", "/users", {
        "userPrincipalName": f"{_unique('planted')}@cielo.local", "displayName": "Planted",
        "passwordProfile": {"password": "Pl4nted-Passw0rd!"}}),
    "delete-user": lambda d, me: ("DELETE", f"/users/{d.victim}", None),
    "create-group": lambda d, me: ("POST", "/groups", {"displayName": (n := _unique("planted")), "mailNickname": n}),
    "delete-group": lambda d, me: ("DELETE", f"/groups/{d.group}", None),
    "add-self-to-group": lambda d, me: ("POST", f"/groups/{d.group}/members/$ref", _ref(d, me)),
    "remove-member-from-group": lambda d, me: ("DELETE", f"/groups/{d.group}/members/{d.victim}/$ref", None),
    "create-application": lambda d, me: ("POST", "/applications", {"displayName": _unique("planted")}),
    "delete-application": lambda d, me: ("DELETE", f"/applications/{d.app['objectId']}", None),
    "add-secret-to-someone-elses-application": lambda d, me: (
        "POST", f"/applications/{d.app['objectId']}/addPassword", {"passwordCredential": {"displayName": "mine"}}),
    "add-secret-by-app-id": lambda d, me: (
        "POST", f"/applications/{d.app['appId']}/addPassword", {"passwordCredential": {"displayName": "mine"}}),
    "replace-secrets": lambda d, me: (
        "POST", f"/applications/{d.app['objectId']}/addPassword", {"passwordCredential": {}, "replace": True}),
    "remove-secret": lambda d, me: ("POST", f"/applications/{d.app['objectId']}/removePassword",
                                    {"keyId": d.app["secretKeyId"]}),
    "add-certificate": lambda d, me: ("PATCH", f"/applications/{d.app['objectId']}", {"keyCredentials": [{
        "type": "AsymmetricX509Cert", "usage": "Verify", "key": base64.b64encode(d.certificate_der).decode()}]}),
    "claim-an-identifier-uri": lambda d, me: (
        "PATCH", f"/applications/{d.app['objectId']}", {"identifierUris": ["https://management.azure.com"]}),
    "make-the-application-public": lambda d, me: (
        "PATCH", f"/applications/{d.app['objectId']}", {"isFallbackPublicClient": True}),
    "add-federated-credential": lambda d, me: (
        "POST", f"/applications/{d.app['objectId']}/federatedIdentityCredentials", {
            "name": "mine", "issuer": "https://attacker.example", "subject": "me",
            "audiences": ["api://AzureADTokenExchange"]}),
    "delete-federated-credential": lambda d, me: (
        "DELETE", f"/applications/{d.app['objectId']}/federatedIdentityCredentials/{d.fic}", None),
    "create-service-principal": lambda d, me: ("POST", "/servicePrincipals", {"appId": d.app_without_sp["appId"]}),
    "delete-service-principal": lambda d, me: ("DELETE", f"/servicePrincipals/{d.app['spObjectId']}", None),
}


@pytest.mark.parametrize("caller", ["member", "service-principal"])
@pytest.mark.parametrize("write", list(WRITES), ids=list(WRITES))
def test_directory_write_without_a_directory_role_is_refused(directory: Directory, caller: str, write: str) -> None:
    object_id, token = directory.callers[caller]
    method, path, body = WRITES[write](directory, object_id)
    before = directory.snapshot()
    graph_denied(graph_call(directory.server, method, path, token, body))
    assert directory.snapshot() == before


def test_members_read_the_directory_and_service_principals_do_not(directory: Directory) -> None:
    """The control: the member's token is accepted (Entra lets members read), so the 403s above are decisions."""
    _, member = directory.callers["member"]
    assert graph_call(directory.server, "GET", "/me", member).json()["userPrincipalName"] == directory.member_upn
    assert graph_call(directory.server, "GET", f"/groups/{directory.group}/members", member).status_code == 200
    _, sp = directory.callers["service-principal"]
    for path in ("/users", "/groups", f"/applications/{directory.app['objectId']}", "/me"):
        graph_denied(graph_call(directory.server, "GET", path, sp))


def _sign_in(server: CieloServer, upn: str, password: str) -> httpx.Response:
    return token_post(server, {"client_id": CLI_CLIENT_ID, "grant_type": "password", "username": upn,
                               "password": password, "scope": f"{GRAPH}/.default"})


def test_member_cannot_change_a_password_or_become_an_administrator(directory: Directory) -> None:
    """Cielo's Graph has no route that changes a password or grants a directory role to anyone; the calls az and
    Graph clients would make are refused (405 on /users/{id}, 404 elsewhere), and nothing changed."""
    me, token = directory.callers["member"]
    new_password = "Ch4nged-Passw0rd!"
    attempts = [
        ("PATCH", f"/users/{directory.victim}", {"passwordProfile": {"password": new_password,
                                                                     "forceChangePasswordNextSignIn": False}}),
        ("PATCH", f"/users/{me}", {"passwordProfile": {"password": new_password}}),
        ("POST", f"/users/{directory.victim}/authentication/methods/28c10230-6103-485e-b985-444c60001490/"
                 "resetPassword", {"newPassword": new_password}),
        ("POST", "/me/changePassword", {"currentPassword": directory.member_password, "newPassword": new_password}),
        ("POST", f"/directoryRoles/roleTemplateId={GLOBAL_ADMINISTRATOR}/members/$ref", _ref(directory, me)),
        ("POST", "/roleManagement/directory/roleAssignments", {
            "principalId": me, "roleDefinitionId": GLOBAL_ADMINISTRATOR, "directoryScopeId": "/"}),
    ]
    for method, path, body in attempts:
        answer = graph_call(directory.server, method, path, token, body)
        assert answer.status_code in (403, 404, 405), f"{method} {path}: {answer.status_code} {answer.text}"
        assert answer.json()["error"]["code"] in ("Authorization_RequestDenied", "NotFound", "MethodNotAllowed")
    # The victim's password is the one the administrator set; the member's is unchanged and it is no administrator.
    assert _sign_in(directory.server, directory.victim_upn, new_password).status_code == 400
    assert _sign_in(directory.server, directory.victim_upn, directory.victim_password).status_code == 200
    signed_in = _sign_in(directory.server, directory.member_upn, directory.member_password)
    assert signed_in.status_code == 200, signed_in.text
    fresh = signed_in.json()["access_token"]
    assert "wids" not in claims_of(fresh)
    graph_denied(graph_call(directory.server, "POST", "/groups", fresh,
                            {"displayName": (n := _unique("planted")), "mailNickname": n}))

"""Where the console runs in Azure: App Service authentication (authsettingsV2) with the Entra app roles the
console knows, deployed only with a console app registration; CONSOLE_AUTH set to match; and the console
sending anyone without a principal to the platform's sign-in when Easy Auth is on."""

from __future__ import annotations

import json
from pathlib import Path

import azure.functions as func

from functions.console.app import handle
from functions.console.auth import ROLES
from tests.infra.conftest import parse_bicep

INFRA = Path(__file__).resolve().parents[2] / "infra"


def test_the_app_roles_are_the_console_roles():
    roles = json.loads((INFRA / "console-app-roles.json").read_text())
    assert [r["value"] for r in roles] == list(ROLES)
    assert len({r["id"] for r in roles}) == 4 and all(r["allowedMemberTypes"] == ["User"] for r in roles)


def test_easy_auth_module_lets_the_webhook_through_and_trusts_entra():
    parsed = parse_bicep(INFRA / "modules" / "console-auth.bicep")
    (auth,) = [r["config"] for r in parsed["resources"].values() if r["type"] == "Microsoft.Web/sites/config"]
    assert auth["name"] == "authsettingsV2"
    props = auth["properties"]
    assert props["platform"]["enabled"] is True
    # the SendGrid webhook and the admin API (automation) have no person behind them
    assert props["globalValidation"]["unauthenticatedClientAction"] == "AllowAnonymous"
    assert props["httpSettings"]["requireHttps"] is True
    aad = props["identityProviders"]["azureActiveDirectory"]
    assert aad["enabled"] is True and aad["registration"]["clientId"] == "consoleClientId"
    main = (INFRA / "main.bicep").read_text()
    assert "module consoleAuth 'modules/console-auth.bicep' = if (!empty(consoleClientId))" in main
    app = (INFRA / "modules" / "functionapp.bicep").read_text()
    assert "CONSOLE_AUTH: empty(consoleClientId) ? 'links' : 'easyauth'" in app


def test_without_a_principal_the_console_sends_people_to_entra_sign_in(svc, monkeypatch):
    monkeypatch.setattr(svc.settings, "console_auth", "easyauth")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    req = func.HttpRequest(
        "GET",
        "https://ta.example.net/api/console/alerts",
        headers={},
        route_params={"path": "alerts"},
        body=b"",
    )
    resp = handle(req, svc)
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/.auth/login/aad?post_login_redirect_uri=/api/console/alerts"
    api = func.HttpRequest(
        "GET",
        "https://ta.example.net/api/console/data/map",
        headers={},
        route_params={"path": "data/map"},
        body=b"",
    )
    assert handle(api, svc).status_code == 401

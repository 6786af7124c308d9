"""One telemetry pipeline in Azure: host.json in OpenTelemetry mode, the worker continuing the host's trace
context, and ingestion authenticated with the app's managed identity (Entra), not the instrumentation key."""

from __future__ import annotations

import json

from tests.infra.conftest import ROOT, function_call, render, resources_of_type

from .test_bicep import var_value

METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"


def test_host_json_is_in_opentelemetry_mode():
    assert json.loads((ROOT / "host.json").read_text(encoding="utf-8"))["telemetryMode"] == "OpenTelemetry"


def test_function_app_ingests_with_its_identity(module, main_bicep):
    app = module("functionapp")
    plain = var_value(app, "plainSettings")
    assert plain["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "Authorization=AAD"  # system-assigned
    assert plain["PYTHON_ENABLE_OPENTELEMETRY"] == "true"
    # the connection string stays a Key Vault reference (it locates the resource; the identity authorizes)
    secrets = function_call(var_value(main_bicep, "secretSettingNames"))[1]["arg_1"]
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in secrets
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" not in plain
    # ... and the identity may publish: Monitoring Metrics Publisher on the Application Insights resource
    roles = var_value(app, "roles")
    publishers = [
        r for r in resources_of_type(app, "Microsoft.Authorization/roleAssignments").values()
        if roles.get(render(r["config"]["properties"]["roleDefinitionId"]).rstrip(")").split("roles.")[1])
        == METRICS_PUBLISHER
    ]
    assert len(publishers) == 1 and publishers[0]["config"]["scope"] == "appInsights"
    assert render(publishers[0]["config"]["properties"]["principalId"]) == "site.identity.principalId"


def test_application_insights_refuses_key_only_ingestion(module):
    monitoring = module("monitoring")
    (appi,) = resources_of_type(monitoring, "Microsoft.Insights/components").values()
    assert appi["config"]["properties"]["DisableLocalAuth"] == "localAuthDisabled"
    assert monitoring["parameters"]["localAuthDisabled"]["default"] is True

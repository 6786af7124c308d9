"""Invariants of infra/ (Bicep), checked by parsing every file with pycep-parser (no Bicep CLI, no Azure)."""

from __future__ import annotations

import re
import typing

import pytest

from functions import names
from tests.infra.conftest import (
    INFRA,
    bicep_files,
    body,
    function_call,
    parse_bicep,
    render,
    resources_of_type,
    walk,
)

# Suffixes of setting names that hold secrets; a setting named like this must be a Key Vault reference.
SECRET_NAME = re.compile(r"(KEY|TOKEN|PASSWORD|SECRET|CONNECTION_STRING|DATABASE_URL|CREDENTIALS?)$", re.I)
KV_REFERENCE_PREFIX = "@Microsoft.KeyVault(SecretUri="


def var_value(parsed, name):
    return parsed["variables"][name]["value"]


# ---------------------------------------------------------------- every file parses


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path):
    parsed = parse_bicep(path)
    assert parsed.get("resources") or parsed.get("functions") or parsed.get("modules"), path


def test_main_uses_every_module(main_bicep):
    used = {m["detail"]["path"] for m in main_bicep["modules"].values()}
    helpers = {"modules/naming.bicep", "modules/acr-pull.bicep"}  # imported / called by modules
    on_disk = {str(p.relative_to(INFRA)) for p in (INFRA / "modules").glob("*.bicep")}
    assert on_disk - helpers <= used, f"modules not deployed by main.bicep: {on_disk - helpers - used}"


# ---------------------------------------------------------------- names shared with the application


def test_queue_and_container_names_equal_functions_names(main_bicep):
    assert var_value(main_bicep, "queueNames") == list(names.ALL_QUEUES)
    assert var_value(main_bicep, "containerNames") == list(names.ALL_CONTAINERS)
    assert var_value(main_bicep, "inboundRoute") == names.INBOUND_ROUTE


def test_storage_module_creates_those_queues_and_containers(main_bicep, module):
    params = main_bicep["modules"]["storage"]["config"]["params"]
    assert params["queues"] == "queueNames"
    assert params["containers"] == "containerNames"
    storage = module("storage")
    (queues,) = resources_of_type(storage, "Microsoft.Storage/storageAccounts/queueServices/queues").values()
    assert queues["config"]["loop_type"]["detail"]["array_name"] == "queues"
    containers = resources_of_type(storage, "Microsoft.Storage/storageAccounts/blobServices/containers")
    looped = [c for c in containers.values() if "loop_type" in c["config"]]
    assert [c["config"]["loop_type"]["detail"]["array_name"] for c in looped] == ["containers"]


def test_every_work_queue_has_its_poison_queue(main_bicep):
    queues = var_value(main_bicep, "queueNames")
    work = [q for q in queues if not q.endswith(names.POISON_SUFFIX)]
    assert work, "no work queue"
    for q in work:
        assert names.poison_queue(q) in queues


def test_webhook_url_output_uses_the_inbound_route(main_bicep):
    out = main_bicep["outputs"]["sendgridWebhookUrl"]["value"]
    assert out.startswith("https://${functionApp.outputs.defaultHostName}/api/")
    assert out.endswith("/api/${inboundRoute}")


# ---------------------------------------------------------------- app settings and secrets


def secret_settings_of_app() -> set[str]:
    """Names of the settings that functions/settings.py declares as secrets (SecretStr)."""
    from functions.settings import Settings, _alias_of

    secret = set()
    for field_name, field in Settings.model_fields.items():
        if "SecretStr" in str(field.annotation) or any(
            getattr(a, "__name__", "") == "SecretStr" for a in typing.get_args(field.annotation)
        ):
            secret.add(_alias_of(field_name))
    return secret


def test_secret_setting_names_cover_the_app_secrets(main_bicep, parameters):
    call = function_call(var_value(main_bicep, "secretSettingNames"))
    assert call and call[0] == "concat"
    fixed, channels = call[1]["arg_1"], call[1]["arg_2"]
    assert channels == "channelSecretNames"
    app_secrets = secret_settings_of_app()
    assert app_secrets, "functions/settings.py declares no SecretStr setting?"
    missing = app_secrets - set(fixed)
    assert not missing, f"secret settings without a Key Vault reference: {missing}"
    for env in ("dev", "prod"):
        for name in parameters[env]["channelSecretNames"]:
            assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name), name
    fn_params = main_bicep["modules"]["functionApp"]["config"]["params"]
    assert fn_params["secretSettingNames"] == "secretSettingNames"


def test_secret_settings_are_key_vault_references(module):
    naming = module("naming")
    expr = naming["functions"]["kvReference"]["expression"]
    assert expr.startswith(KV_REFERENCE_PREFIX) and expr.endswith(")")
    assert "${vaultUri}secrets/" in expr

    app = module("functionapp")
    (settings,) = resources_of_type(app, "Microsoft.Web/sites/config").values()
    assert settings["config"]["name"] == "appsettings"
    call = function_call(settings["config"]["properties"])
    assert call and call[0] == "union"
    plain_var, secret_var = call[1]["arg_1"], call[1]["arg_2"]

    secret = function_call(var_value(app, secret_var))
    assert secret and secret[0] == "toObject" and secret[1]["arg_1"] == "secretSettingNames"
    value_of = secret[1]["arg_3"]["detail"]["expression"]
    assert function_call(value_of)[0] == "kvReference", "secret settings must be Key Vault references"
    assert "kvReference" in app["imports"]

    plain = var_value(app, plain_var)
    assert isinstance(plain, dict)
    for setting, value in plain.items():
        assert not SECRET_NAME.search(setting), f"{setting} looks secret but is a plain app setting"
        assert setting not in secret_settings_of_app(), f"{setting} is a SecretStr in settings.py"
        assert "AccountKey" not in str(value)


def test_storage_is_identity_based_in_app_settings(module):
    plain = var_value(module("functionapp"), "plainSettings")
    assert "AzureWebJobsStorage__accountName" in plain
    assert "AzureWebJobsStorage" not in plain, "a connection string would carry the account key"
    # Flex Consumption refuses these: the runtime comes from functionAppConfig.
    refused = {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE"}
    assert not refused & set(plain)


def test_required_app_settings_are_set(module, main_bicep):
    from functions.settings import Settings, _alias_of

    plain = set(var_value(module("functionapp"), "plainSettings"))
    secrets = set(function_call(var_value(main_bicep, "secretSettingNames"))[1]["arg_1"])
    required = {_alias_of(n) for n, f in Settings.model_fields.items() if f.is_required()}
    wanted = required | {"SCORING_URL", "PUBLIC_BASE_URL", "AzureWebJobsStorage__accountName"}
    assert wanted <= plain | secrets, f"missing app settings: {wanted - plain - secrets}"


def test_no_storage_key_anywhere():
    for path in bicep_files():
        text = path.read_text(encoding="utf-8")
        assert "AccountKey" not in text, path
        parsed = parse_bicep(path)
        storage_symbols = set(resources_of_type(parsed, "Microsoft.Storage/storageAccounts"))
        for node in walk(parsed):
            if isinstance(node, dict) and node.get("type") == "function_accessor":
                target = node["operands"]["operand_1"]
                assert target not in storage_symbols, f"{path}: {target}.{node['operands']['func_name']}()"
    for path in (INFRA / "parameters").glob("*.json"):
        assert "AccountKey" not in path.read_text(encoding="utf-8"), path


def test_key_vault_secret_names_match_the_references(module):
    """Secrets written by Bicep use kvSecretName(<setting>), the same mapping kvReference uses."""
    naming = module("naming")["functions"]
    name_expr = naming["kvSecretName"]["expression"]
    assert function_call(name_expr)[0] == "to_lower"
    assert "toLower(replace(settingName, '_', '-'))" in naming["kvReference"]["expression"]
    written = []
    for mod in ("keyvault", "postgres"):
        for r in resources_of_type(module(mod), "Microsoft.KeyVault/vaults/secrets").values():
            call = function_call(body(r)["name"])
            assert call and call[0] == "kvSecretName", r
            written.append(render(call[1]["arg_1"]))
    assert "s.key" in written, "channel secrets are named by their app setting"
    assert {"DATABASE_URL", "SCORING_API_KEY", "APPLICATIONINSIGHTS_CONNECTION_STRING"} <= set(written)


def test_secure_parameters_are_secure_and_never_in_parameter_files(main_bicep, parameters):
    secure = {n for n, p in main_bicep["parameters"].items() if {"type": "secure"} in p["decorators"]}
    assert {"postgresAdminPassword", "scoringApiKey", "sendgridApiKey", "channelSecrets"} <= secure
    for env, values in parameters.items():
        assert not secure & set(values), f"{env}: secrets in a parameter file: {secure & set(values)}"


# ---------------------------------------------------------------- parameter files


def test_dev_and_prod_set_the_same_parameters(parameters, main_bicep):
    assert set(parameters) >= {"dev", "prod"}
    assert set(parameters["dev"]) == set(parameters["prod"])
    assert set(parameters["azd"]) == set(parameters["dev"]), "infra/main.parameters.json (azd) differs"
    declared = set(main_bicep["parameters"])
    assert set(parameters["dev"]) <= declared, f"unknown parameters: {set(parameters['dev']) - declared}"
    secure = {n for n, p in main_bicep["parameters"].items() if {"type": "secure"} in p["decorators"]}
    required = {n for n, p in main_bicep["parameters"].items() if p.get("default") is None} - secure
    unset = required - set(parameters["dev"])
    assert not unset, f"not set by the parameter files: {unset}"


def test_environment_values(parameters):
    assert parameters["dev"]["environmentName"] == "dev"
    assert parameters["prod"]["environmentName"] == "prod"
    assert parameters["dev"]["scoringMinReplicas"] == 0
    assert parameters["prod"]["scoringMinReplicas"] >= 1, "prod keeps a warm GPU replica"
    assert parameters["prod"]["functionAlwaysReady"], "prod keeps Function instances ready"
    for entry in parameters["prod"]["functionAlwaysReady"]:
        assert entry["name"] == "http" or entry["name"].startswith("function:"), entry
        assert entry["instanceCount"] >= 1
    assert parameters["prod"]["keyVaultPurgeProtection"] is True
    for env in ("dev", "prod"):
        assert 1 <= parameters[env]["photoRetentionDays"] <= 3650
        for park, days in parameters[env]["parkPhotoRetentionDays"].items():
            assert 1 <= days <= parameters[env]["photoRetentionDays"], park
        assert parameters[env]["scoringGpu"] in ("T4", "A100")


# ---------------------------------------------------------------- security baseline


def test_storage_account_baseline(module):
    (account,) = resources_of_type(module("storage"), "Microsoft.Storage/storageAccounts").values()
    props = account["config"]["properties"]
    assert props["allowBlobPublicAccess"] is False
    assert props["minimumTlsVersion"] == "TLS1_2"
    assert props["allowSharedKeyAccess"] is False
    assert props["supportsHttpsTrafficOnly"] is True
    ctype = "Microsoft.Storage/storageAccounts/blobServices/containers"
    containers = resources_of_type(module("storage"), ctype)
    assert containers
    for c in containers.values():
        assert body(c)["properties"]["publicAccess"] == "None"


def test_photo_lifecycle_rule(main_bicep, module):
    storage = module("storage")
    (policy,) = resources_of_type(storage, "Microsoft.Storage/storageAccounts/managementPolicies").values()
    rules = function_call(policy["config"]["properties"]["policy"]["rules"])
    assert rules[0] == "concat" and rules[1]["arg_1"] == ["defaultRule"]
    default = var_value(storage, "defaultRule")
    assert default["enabled"] is True
    days = default["definition"]["actions"]["baseBlob"]["delete"]["daysAfterCreationGreaterThan"]
    assert days == "photoRetentionDays"
    prefix = default["definition"]["filters"]["prefixMatch"]
    assert prefix["loop_type"]["detail"]["array_name"] == "photoContainers"
    assert {names.IMAGES_CONTAINER, names.RAW_EMAILS_CONTAINER, names.ANNOTATED_CONTAINER} <= set(
        var_value(main_bicep, "photoContainers")
    )
    assert names.IMAGES_CONTAINER in var_value(main_bicep, "parkLayoutContainers")
    park = function_call(var_value(storage, "parkRules"))
    delete = park[1]["arg_2"]["detail"]["expression"]["definition"]["actions"]["baseBlob"]["delete"]
    capped = function_call(delete["daysAfterCreationGreaterThan"])
    assert capped[0] == "min", "a park can only shorten retention"
    assert capped[1]["arg_2"] == "photoRetentionDays"


def test_function_app_flex_consumption_python_311_identity(module):
    app = module("functionapp")
    (plan,) = resources_of_type(app, "Microsoft.Web/serverfarms").values()
    assert plan["config"]["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["config"]["properties"]["reserved"] is True
    (site,) = resources_of_type(app, "Microsoft.Web/sites").values()
    cfg = site["config"]
    assert cfg["kind"] == "functionapp,linux"
    assert cfg["identity"]["type"] == "SystemAssigned"
    props = cfg["properties"]
    assert props["httpsOnly"] is True
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    assert props["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}
    assert props["functionAppConfig"]["scaleAndConcurrency"]["alwaysReady"] == "alwaysReady"
    deploy = props["functionAppConfig"]["deployment"]["storage"]
    assert deploy["authentication"]["type"] == "SystemAssignedIdentity"


def test_function_app_role_assignments(module):
    app = module("functionapp")
    roles = var_value(app, "roles")
    wanted = {
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",  # Storage Queue Data Contributor
        "4633458b-17de-408a-b874-0445c86b69e6",  # Key Vault Secrets User
    }
    assert wanted <= set(roles.values())
    assigned = set()
    for r in resources_of_type(app, "Microsoft.Authorization/roleAssignments").values():
        role = render(r["config"]["properties"]["roleDefinitionId"])  # subscriptionResourceId(..., roles.x)
        prefix = "subscription_resource_id(Microsoft.Authorization/roleDefinitions, roles."
        assert role.startswith(prefix), role
        assigned.add(roles[role.rstrip(")").split("roles.")[1]])
        assert render(r["config"]["properties"]["principalId"]) == "site.identity.principalId"
    assert wanted <= assigned


def test_key_vault_rbac(module):
    (vault,) = resources_of_type(module("keyvault"), "Microsoft.KeyVault/vaults").values()
    props = vault["config"]["properties"]
    assert props["enableRbacAuthorization"] is True
    assert props["enableSoftDelete"] is True
    assert "accessPolicies" not in props


def test_postgres_not_open_to_the_internet(module):
    pg = module("postgres")
    rules = resources_of_type(pg, "Microsoft.DBforPostgreSQL/flexibleServers/firewallRules")
    assert rules
    for symbol, r in rules.items():
        props = body(r)["properties"]
        assert props.get("endIpAddress") != "255.255.255.255", symbol
        if props.get("startIpAddress") == "0.0.0.0":  # the "Azure services" rule: only behind its switch
            assert r["config"].get("condition") == "allowAzureServices", symbol
    assert pg["parameters"]["allowAzureServices"]["default"] is False
    (server,) = resources_of_type(pg, "Microsoft.DBforPostgreSQL/flexibleServers").values()
    assert server["config"]["properties"]["administratorLoginPassword"] == "administratorPassword"
    assert {"type": "secure"} in pg["parameters"]["administratorPassword"]["decorators"]


def test_registry_has_no_admin_user_or_anonymous_pull():
    reg = parse_bicep(INFRA / "registry.bicep")
    (acr,) = resources_of_type(reg, "Microsoft.ContainerRegistry/registries").values()
    assert acr["config"]["properties"]["adminUserEnabled"] is False
    assert acr["config"]["properties"]["anonymousPullEnabled"] is False


# ---------------------------------------------------------------- scoring service


def test_container_apps_environment_is_internal_with_gpu_profile(module):
    scoring = module("scoring")
    (env,) = resources_of_type(scoring, "Microsoft.App/managedEnvironments").values()
    props = env["config"]["properties"]
    assert props["vnetConfiguration"]["internal"] is True, "the detector must not have a public endpoint"
    profiles = var_value(scoring, "gpuProfiles")
    assert profiles["T4"]["workloadProfileType"] == "Consumption-GPU-NC8as-T4"
    assert profiles["A100"]["workloadProfileType"] == "Consumption-GPU-NC24-A100"
    assert scoring["parameters"]["gpu"]["default"] == "T4"
    chosen = conditional(var_value(scoring, "profile"))
    assert chosen == (("compute", "gpu"), "gpuProfiles[gpu]", "cpuProfile")
    assert conditional(props["workloadProfiles"]) == (("compute", "gpu"), "gpuWorkloadProfiles",
                                                      "cpuWorkloadProfiles")
    gpu_declared = [render(p["workloadProfileType"]) for p in var_value(scoring, "gpuWorkloadProfiles")]
    assert gpu_declared == ["Consumption", "profile.workloadProfileType"]
    cpu_declared = [render(p["workloadProfileType"]) for p in var_value(scoring, "cpuWorkloadProfiles")]
    assert cpu_declared == ["Consumption"], "the CPU option needs no GPU profile"
    cpu = var_value(scoring, "cpuProfile")
    assert cpu["profileName"] == "Consumption" and (cpu["cpu"], cpu["memory"]) == ("4", "8Gi")


def test_scoring_app_ingress_scale_and_secret(module):
    scoring = module("scoring")
    (app,) = resources_of_type(scoring, "Microsoft.App/containerApps").values()
    props = app["config"]["properties"]
    assert render(props["workloadProfileName"]) == "profile.profileName"
    ingress = props["configuration"]["ingress"]
    assert ingress["allowInsecure"] is False
    # In an internal environment (asserted above) external=true means "reachable from the VNet" only.
    assert ingress["external"] in (True, False)
    scale = props["template"]["scale"]
    assert scale["minReplicas"] == "minReplicas"
    (rule,) = scale["rules"]
    assert "concurrentRequests" in rule["http"]["metadata"]
    (secret,) = props["configuration"]["secrets"]
    assert "keyVaultUrl" in secret and "value" not in secret
    env = props["template"]["containers"][0]["env"]
    assert {"name": "SCORING_API_KEY", "secretRef": secret["name"]} in env


def conditional(node):
    """((left, right) of the == condition, true value, false value) of a parsed `(a == b) ? x : y`."""
    ops = node["operator"]["operands"]
    cond = ops["condition"]["operator"]
    assert cond["type"] == "equals"
    return (cond["operands"]["operand_1"], cond["operands"]["operand_2"]), render(ops["true_value"]), render(
        ops["false_value"])


def test_scoring_model_and_compute_are_chosen_per_environment(main_bicep, parameters):
    from scoring.catalogue import CATALOGUE, SERVABLE

    declared = main_bicep["parameters"]
    allowed = next(d["argument"] for d in declared["scoringModel"]["decorators"] if d["type"] == "allowed")
    assert allowed == list(SERVABLE), "the Bicep offers exactly the releases the images can bake"
    compute = next(d["argument"] for d in declared["scoringCompute"]["decorators"] if d["type"] == "allowed")
    assert compute == ["gpu", "cpu"]
    for env in ("dev", "prod", "azd"):
        assert parameters[env]["scoringModel"] in CATALOGUE
        assert parameters[env]["scoringCompute"] in ("gpu", "cpu")
    # dev deploys the very image prod will run
    assert (parameters["dev"]["scoringModel"], parameters["dev"]["scoringCompute"]) == (
        parameters["prod"]["scoringModel"], parameters["prod"]["scoringCompute"])
    params = main_bicep["modules"]["scoring"]["config"]["params"]
    assert (params["compute"], params["model"], params["image"]) == ("scoringCompute", "scoringModel",
                                                                      "scoringImageRef")


def test_scoring_image_reference_is_the_one_the_pipeline_pushes(main_bicep):
    import yaml

    variables = yaml.safe_load((INFRA.parent / "azure-pipelines.yml").read_text())["variables"]
    assert main_bicep["parameters"]["scoringImageRepository"]["default"] == variables["imageRepository"]
    assert conditional(var_value(main_bicep, "scoringRepository")) == (
        ("scoringCompute", "cpu"), "${scoringImageRepository}-cpu", "scoringImageRepository")
    ref = var_value(main_bicep, "scoringImageRef")["operator"]["operands"]
    assert render(ref["condition"]) == "empty(scoringImage)" and ref["false_value"] == "scoringImage"
    composed = "${registryName}.azurecr.io/${scoringRepository}:${scoringImageTag}-${scoringModel}"
    assert ref["true_value"] == composed
    # the pipeline's registryLogin is <registryName>.azurecr.io of the parameter files
    assert variables["registryLogin"] == f"{variables['registryName']}.azurecr.io"


def test_scoring_revision_is_ready_only_with_its_model_loaded(module):
    scoring = module("scoring")
    (app,) = resources_of_type(scoring, "Microsoft.App/containerApps").values()
    container = app["config"]["properties"]["template"]["containers"][0]
    probes = {p["type"]: p for p in container["probes"]}
    assert set(probes) == {"Startup", "Liveness", "Readiness"}
    assert probes["Startup"]["httpGet"]["path"] == "readyPath" == probes["Readiness"]["httpGet"]["path"]
    assert probes["Liveness"]["httpGet"]["path"] == "healthPath"
    assert scoring["parameters"]["readyPath"]["default"] == "/readyz"
    assert scoring["parameters"]["healthPath"]["default"] == "/healthz"
    assert conditional(var_value(scoring, "startupFailureThreshold")) == (("compute", "gpu"), 30, 18)
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SCORING_EXPECTED_MODEL"] == "model", "the replica refuses an image with another model"
    assert conditional(env["SCORING_MAX_BATCH"]) == (("compute", "gpu"), "8", "1")
    assert "SCORING_MODEL_PATH" not in env, "the image's own SCORING_MODEL_PATH (baked model) is used"
    assert not [v for v in walk(app["config"]) if isinstance(v, dict) and "volumeMounts" in v]


# ---------------------------------------------------------------- PostgreSQL as its operators expect it

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def evaluate(node, variables: dict, values: dict):
    """The value of a parsed Bicep expression of main.bicep's variables, with parameter ``values``: integer
    arithmetic, min/max, object index: enough for the connection budget."""
    if isinstance(node, bool | int):
        return node
    if isinstance(node, str):
        if node in values:
            return values[node]
        if node in variables:
            return evaluate(variables[node]["value"], variables, values)
        return node
    if isinstance(node, dict) and "operator" in node:
        op = node["operator"]
        a, b = (evaluate(op["operands"][k], variables, values) for k in ("operand_1", "operand_2"))
        return {"add": lambda: a + b, "substract": lambda: a - b, "multiply": lambda: a * b,
                "divide": lambda: a // b, "index_accessor": lambda: a[b]}[op["type"]]()
    call = function_call(node)
    if call and call[0] in ("min", "max"):
        args = [evaluate(v, variables, values) for v in call[1].values()]
        return min(args) if call[0] == "min" else max(args)
    if isinstance(node, dict):
        return {k: evaluate(v, variables, values) for k, v in node.items()}
    raise AssertionError(f"cannot evaluate {node!r}")


def test_postgres_entra_authentication_with_an_entra_admin(module, main_bicep, parameters):
    pg = module("postgres")
    (server,) = resources_of_type(pg, "Microsoft.DBforPostgreSQL/flexibleServers").values()
    auth = server["config"]["properties"]["authConfig"]
    assert auth["activeDirectoryAuth"] == "Enabled"
    assert render(auth["tenantId"]) == "subscription().tenantId"
    (admin,) = resources_of_type(pg, "Microsoft.DBforPostgreSQL/flexibleServers/administrators").values()
    cfg = body(admin)
    assert cfg["name"] == "entraAdminObjectId"
    assert cfg["properties"]["principalName"] == "entraAdminName"
    assert cfg["properties"]["principalType"] == "entraAdminType"
    params = main_bicep["modules"]["postgres"]["config"]["params"]
    assert (params["entraAdminName"], params["entraAdminObjectId"], params["entraAdminType"]) == (
        "postgresEntraAdminName", "postgresEntraAdminObjectId", "postgresEntraAdminType")
    assert render(params["appRoleName"]) == "names.functionApp", "the role is named like the app's identity"
    for env in ("dev", "prod"):
        assert GUID.match(parameters[env]["postgresEntraAdminObjectId"]), env
        assert parameters[env]["postgresEntraAdminType"] in ("User", "Group", "ServicePrincipal")
        assert parameters[env]["postgresEntraAdminName"]


def test_the_app_connects_as_its_own_role_without_password(module):
    pg = module("postgres")
    (secret,) = resources_of_type(pg, "Microsoft.KeyVault/vaults/secrets").values()
    assert render(function_call(body(secret)["name"])[1]["arg_1"]) == "DATABASE_URL"
    url = body(secret)["properties"]["value"]
    assert url.startswith("postgresql://${uriComponent(appRoleName)}@"), url
    assert "administrator" not in url and "assword" not in url, "no admin login, no password in DATABASE_URL"
    userinfo = url.split("://", 1)[1].split("@", 1)[0]
    assert ":" not in userinfo, "no password in the URL"
    assert ":${appPort}/" in url and url.endswith("?sslmode=require")
    app = var_value(module("functionapp"), "plainSettings")
    assert app["DATABASE_AUTH"] == "entra"
    from functions.settings import Settings

    assert Settings.model_fields["database_auth"].default == "password", "local/dev keeps password URLs"


def test_pgbouncer_on_port_6432_where_the_tier_offers_it(module, main_bicep, parameters):
    pg = module("postgres")
    variables = pg["variables"]
    assert conditional_values(variables["appPort"]["value"]) == ("pgbouncerEnabled", 6432, 5432)
    enabled = variables["pgbouncerEnabled"]["value"]["operator"]
    assert enabled["type"] == "not_equals" and enabled["operands"] == {"operand_1": "skuTier",
                                                                         "operand_2": "Burstable"}
    configs = {body(r)["name"]: r for r in resources_of_type(
        pg, "Microsoft.DBforPostgreSQL/flexibleServers/configurations").values()}
    on = configs["pgbouncer.enabled"]
    assert on["config"]["condition"] == "pgbouncerEnabled" and body(on)["properties"]["value"] == "true"
    pool = configs["pgbouncer.default_pool_size"]
    assert render(body(pool)["properties"]["value"]) == "string(pgbouncerPoolSize)"
    pg_params = main_bicep["modules"]["postgres"]["config"]["params"]
    assert pg_params["pgbouncerPoolSize"] == "postgresAppConnections"
    # prod (HA, the failovers that matter) runs a tier with PgBouncer: the app connects on 6432 there
    assert parameters["prod"]["postgresSkuTier"] in ("GeneralPurpose", "MemoryOptimized")
    assert render(main_bicep["outputs"]["postgresAppPort"]["value"]) == "postgres.outputs.appPort"


def conditional_values(node):
    ops = node["operator"]["operands"]
    return ops["condition"], ops["true_value"], ops["false_value"]


def test_connection_budget_is_derived_and_fits_the_server(main_bicep, module, parameters):
    text = (INFRA / "main.bicep").read_text(encoding="utf-8")
    assert "DATABASE_POOL_MAX = min(32, appConnections / functionMaximumInstanceCount)" in text, \
        "the formula is stated where the variable is"
    variables = main_bicep["variables"]
    pool_expr = var_value(main_bicep, "databasePoolMax")
    assert "functionMaximumInstanceCount" in str(pool_expr) and "postgresAppConnections" in str(pool_expr)
    assert "postgresMaxConnections" in str(var_value(main_bicep, "postgresAppConnections"))
    by_sku = var_value(main_bicep, "postgresMaxConnectionsBySku")
    assert by_sku["Standard_B1ms"] == 50 and by_sku["Standard_D2ds_v5"] == 859  # Azure's published limits
    for env in ("dev", "prod", "azd"):
        values = parameters[env]
        assert values["postgresSkuName"] in by_sku, f"{env}: max_connections of this size unknown"
        max_conn = evaluate("postgresMaxConnections", variables, values)
        app_conn = evaluate("postgresAppConnections", variables, values)
        pool = evaluate("databasePoolMax", variables, values)
        instances = values["functionMaximumInstanceCount"]
        assert app_conn <= max_conn - 15, "Azure keeps 15 connections"
        assert pool >= 2, f"{env}: {pool} connection(s) per instance; a unit of work may need a second"
        assert pool * instances <= app_conn, f"{env}: {instances} x {pool} exceeds {app_conn} connections"
    fn = module("functionapp")
    assert render(var_value(fn, "plainSettings")["DATABASE_POOL_MAX"]) == "string(databasePoolMax)"
    assert {"type": "min_value", "argument": 1} in fn["parameters"]["databasePoolMax"]["decorators"], \
        "a budget of 0 connections per instance fails the deployment"
    assert main_bicep["modules"]["functionApp"]["config"]["params"]["databasePoolMax"] == "databasePoolMax"


def test_pipeline_creates_the_app_database_principal(main_bicep):
    import yaml

    steps = yaml.safe_load((INFRA / "pipelines" / "deploy-steps.yml").read_text())["steps"]
    names_ = [s.get("displayName", "") for s in steps]
    migrate = next(i for i, n in enumerate(names_) if "migrations" in n)
    principal = next(i for i, n in enumerate(names_) if "principal" in n.lower())
    deploy = next(i for i, n in enumerate(names_) if n == "Deploy Function app")
    assert migrate < principal < deploy, "the role and its grants exist before the new code runs"
    script = steps[principal]["inputs"]["inlineScript"]
    assert "pgaadauth_create_principal_with_oid" in script and "--resource-type oss-rdbms" in script
    assert "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES" in script
    assert "ALTER DEFAULT PRIVILEGES" in script
    assert steps[principal]["env"]["POSTGRES_ADMIN_PASSWORD"] == "$(POSTGRES_ADMIN_PASSWORD)"
    used = set(re.findall(r"\bout (\w+)", script)) | set(re.findall(
        r"jq -r \.(\w+)\.value", steps[migrate]["inputs"]["inlineScript"]))
    assert used <= set(main_bicep["outputs"]), f"outputs the pipeline reads but main.bicep lacks: {used}"
    assert "database-url" not in steps[migrate]["inputs"]["inlineScript"], \
        "migrations run as the schema owner, not with the app's passwordless URL"

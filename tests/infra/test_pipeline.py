"""azure-pipelines.yml is valid YAML with the stages the deployment story relies on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import yaml

from tests.infra.conftest import INFRA, ROOT

PIPELINE = ROOT / "azure-pipelines.yml"


def load(path):
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict), path
    return doc


def stages():
    return {s["stage"]: s for s in load(PIPELINE)["stages"]}


def scripts(steps) -> list[str]:
    out = []
    for step in steps:
        if "script" in step:
            out.append(step["script"])
        elif step.get("task", "").startswith("AzureCLI@"):
            out.append(step["inputs"].get("inlineScript", ""))
    return out


def test_stages_in_order():
    assert list(stages()) == ["Validate", "Build", "DeployDev", "DeployProd"]
    s = stages()
    assert s["Build"]["dependsOn"] == "Validate"
    assert s["DeployDev"]["dependsOn"] == "Build"
    assert s["DeployProd"]["dependsOn"] == "DeployDev"
    for name in ("Build", "DeployDev", "DeployProd"):
        assert "isMain" in s[name]["condition"], f"{name} must run on main only"


def test_runs_on_pull_requests_and_main():
    doc = load(PIPELINE)
    assert "main" in doc["pr"]["branches"]["include"]
    assert "main" in doc["trigger"]["branches"]["include"]


def test_validate_runs_lint_typecheck_make_test_and_publishes_junit():
    (job,) = stages()["Validate"]["jobs"]
    text = "\n".join(scripts(job["steps"]))
    assert "ruff check" in text
    assert "mypy" in text
    test_steps = [st for st in job["steps"] if st.get("script", "").strip() == "make test"]
    assert test_steps, "Validate must run the README's test command: make test"
    assert "--junitxml=" in test_steps[0]["env"]["PYTEST_ADDOPTS"]
    (publish,) = [st for st in job["steps"] if st.get("task") == "PublishTestResults@2"]
    assert publish["inputs"]["testResultsFormat"] == "JUnit"
    assert publish["condition"] == "succeededOrFailed()"


def test_build_packages_function_app_with_dependencies_and_both_images():
    jobs = {j["job"]: j for j in stages()["Build"]["jobs"]}
    text = "\n".join(scripts(jobs["FunctionApp"]["steps"]))
    assert ".python_packages/lib/site-packages" in text
    # the compiled lock, hashes checked (tests/infra/test_lock.py); the files: the checkout minus .funcignore
    assert "-r requirements.lock" in text and "--require-hashes" in text and "-r requirements.txt" not in text
    assert "core.excludesFile=.funcignore" in text
    assert any(st.get("task") == "ArchiveFiles@2" for st in jobs["FunctionApp"]["steps"])


def test_build_scoring_images_with_their_model():
    jobs = {j["job"]: j for j in stages()["Build"]["jobs"]}
    images = "\n".join(scripts(jobs["ScoringImages"]["steps"]))
    assert "scoring/Dockerfile;" in images and "scoring/Dockerfile.cpu;" in images
    assert '--build-arg SCORING_MODEL="$model"' in images and 'docker push "$ref"' in images
    (login,) = [st for st in jobs["ScoringImages"]["steps"] if st.get("task") == "Docker@2"]
    assert login["inputs"]["command"] == "login"


def test_scoring_images_are_the_ones_the_parameter_files_name(tmp_path):
    """Run the Build stage's image script with a stand-in `docker` that records its arguments."""
    assert shutil.which("jq"), "jq is missing: `make test` installs it (Makefile SYSTEM_PACKAGES)"
    jobs = {j["job"]: j for j in stages()["Build"]["jobs"]}
    (script,) = scripts(jobs["ScoringImages"]["steps"])
    variables = load(PIPELINE)["variables"]
    for name in ("imageRepository", "registryLogin"):
        script = script.replace(f"$({name})", variables[name])
    script = script.replace("$(imageTag)", "abc123")
    log = tmp_path / "docker.log"
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    fake.chmod(0o755)
    env = {"PATH": f"{fake.parent}:/usr/bin:/bin"}
    subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, check=True, timeout=60)
    calls = log.read_text().splitlines()
    wanted = set()
    for env_name in ("dev", "prod"):
        params = json.loads((INFRA / "parameters" / f"{env_name}.json").read_text())["parameters"]
        compute, model = params["scoringCompute"]["value"], params["scoringModel"]["value"]
        repo = variables["imageRepository"] + ("-cpu" if compute == "cpu" else "")
        dockerfile = "scoring/Dockerfile" if compute == "gpu" else "scoring/Dockerfile.cpu"
        ref = f"{variables['registryLogin']}/{repo}:abc123-{model}"
        wanted.add(ref)
        assert f"build --build-arg SCORING_MODEL={model} -f {dockerfile} -t {ref} ." in calls
        assert f"push {ref}" in calls
    assert len([c for c in calls if c.startswith("push ")]) == len(wanted), "one image per compute and model"


def test_deploy_passes_the_tag_and_repository_the_build_used():
    steps = load(INFRA / "pipelines" / "deploy-steps.yml")["steps"]
    texts = [st.get("inputs", {}).get("inlineScript", "") for st in steps]
    deploys = [t for t in texts if "deployment group" in t]
    assert len(deploys) == 2
    for text in deploys:
        assert 'scoringImageTag="$(imageTag)"' in text
        assert 'scoringImageRepository="$(imageRepository)"' in text


def test_deploy_stages_use_environments_and_the_shared_steps():
    s = stages()
    envs = {}
    for name in ("DeployDev", "DeployProd"):
        (job,) = s[name]["jobs"]
        envs[name] = job["environment"]
        (step,) = job["strategy"]["runOnce"]["deploy"]["steps"]
        assert step["template"] == "infra/pipelines/deploy-steps.yml"
        assert (ROOT / step["template"]).is_file()
    assert envs == {"DeployDev": "trapalert-dev", "DeployProd": "trapalert-prod"}


def test_deploy_steps_what_if_then_deploy_then_migrate_then_app():
    steps = load(INFRA / "pipelines" / "deploy-steps.yml")["steps"]
    order = []
    for st in steps:
        text = st.get("inputs", {}).get("inlineScript", "")
        if "deployment group what-if" in text:
            order.append("what-if")
        elif "deployment group create" in text:
            order.append("deploy")
        elif "trapalert db migrate" in text:
            order.append("migrate")
        elif st.get("task", "").startswith("AzureFunctionApp@"):
            order.append("app")
            assert st["inputs"]["isFlexConsumption"] is True
    assert order == ["what-if", "deploy", "migrate", "app"]
    for st in steps:  # secrets reach scripts through env mapping, never inline in the parameter files
        text = st.get("inputs", {}).get("inlineScript", "")
        if "postgresAdminPassword=" in text:
            assert st["env"]["POSTGRES_ADMIN_PASSWORD"] == "$(POSTGRES_ADMIN_PASSWORD)"


def test_azd_services_match_bicep_tags():
    doc = load(ROOT / "azure.yaml")
    assert doc["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert (INFRA / "main.parameters.json").is_file(), "azd reads infra/<module>.parameters.json"
    tagged = set()
    for path in (INFRA / "modules").glob("*.bicep"):
        text = path.read_text(encoding="utf-8")
        tagged |= set(re.findall(r"'azd-service-name': '([a-z-]+)'", text))
    assert set(doc["services"]) == tagged
    assert doc["services"]["api"]["host"] == "function"
    assert doc["services"]["scoring"]["host"] == "containerapp"

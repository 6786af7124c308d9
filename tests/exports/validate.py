"""Validate a Camtrap DP package offline against the standard's own files (tests/exports/schemas/, see the
README there): the tables with frictionless (types, constraints, primary and foreign keys) against the 1.0.2
table schemas, the descriptor with jsonschema against the 1.0.2 profile."""

from __future__ import annotations

import json
from pathlib import Path

import frictionless
import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

SCHEMAS = Path(__file__).parent / "schemas"
GEOJSON_URL = "http://json.schemastore.org/geojson.json"


def _profile_validator() -> jsonschema.Draft4Validator:
    profile = json.loads((SCHEMAS / "camtrap-dp-profile.json").read_text())
    # The first part of the profile is the generic Data Package schema (a remote file): frictionless checks
    # those rules itself when it loads the package. The GeoJSON schema is the one frictionless ships.
    profile["allOf"] = [p for p in profile["allOf"] if "$ref" not in p]
    geojson = json.loads((Path(frictionless.__file__).parent / "assets/profiles/geojson.json").read_text())
    registry = Registry().with_resource(
        GEOJSON_URL, Resource.from_contents(geojson, default_specification=DRAFT4)
    )
    return jsonschema.Draft4Validator(profile, registry=registry, format_checker=jsonschema.FormatChecker())


def validate_package(folder: Path) -> list[str]:
    """Every error found (empty: the package is valid)."""
    descriptor = json.loads((folder / "datapackage.json").read_text())
    errors = [
        f"profile: {'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in _profile_validator().iter_errors(descriptor)
    ]
    local = dict(descriptor)
    local.pop("profile", None)  # the URL of the profile checked above; frictionless would fetch it
    local["resources"] = []
    for res in descriptor["resources"]:
        res = dict(res)
        name = Path(res["schema"]).name
        assert res["schema"].endswith(f"/1.0.2/{name}"), res["schema"]
        res["schema"] = json.loads((SCHEMAS / name).read_text())
        local["resources"].append(res)
    package = frictionless.Package(local, basepath=str(folder))
    report = package.validate()
    for task in report.tasks:
        errors.extend(f"{task.name}: {e.type}: {e.note}" for e in task.errors)
    errors.extend(f"package: {e.type}: {e.note}" for e in report.errors)
    return errors

"""`trapalert rules show|set`: the alert rules of a park, with per-camera overrides."""

from __future__ import annotations

import getpass

import click

from ..adapters.audit_repo import AuditRepository, cli_actor
from ..adapters.rules_repo import RulesRepository
from ..domain.rules import KEYS, RulesError, effective_rules, new_layer, parse_assignment, to_flat
from .base import cli, db, echo_json, echo_table


@cli.group("rules", help="Alert rules per park, with per-camera overrides (see docs/rules.md).")
def rules() -> None:
    pass


@rules.command("show")
@click.option("--park", required=True, help="park slug")
@click.option("--camera", help="camera name (show its effective rules and where each value comes from)")
@click.option("--json", "as_json", is_flag=True)
def rules_show(park, camera, as_json) -> None:
    repo = RulesRepository(db())
    try:
        park_id, camera_id = repo.scope(park, camera)
        park_layer, camera_layer = repo.layers(park_id, camera_id)
        flat = to_flat(effective_rules(park_layer, camera_layer))
    except RulesError as exc:
        raise click.ClickException(str(exc)) from None
    rows = []
    for key, value in flat.items():
        source = "camera" if key in camera_layer else "park" if key in park_layer else "default"
        rows.append({"key": key, "value": value, "source": source, "help": KEYS[key].help})
    if as_json:
        echo_json(
            {
                "park": park,
                "camera": camera,
                "rules": flat,
                "park_overrides": park_layer,
                "camera_overrides": camera_layer if camera else None,
            }
        )
    else:
        echo_table(rows, ["key", "value", "source", "help"])


@rules.command("set")
@click.option("--park", required=True, help="park slug")
@click.option("--camera", help="camera name: set an override for this camera only")
@click.argument("assignments", nargs=-1, required=True)
def rules_set(park, camera, assignments) -> None:
    """Set rule keys: KEY=VALUE ... (an empty VALUE removes the key at this level).

    \b
    Examples:
      trapalert rules set --park kruger categories=person,vehicle,animal threshold.person.night=0.45
      trapalert rules set --park kruger --camera gate-3 active_hours=18:00-06:00 cooldown_s=600
      trapalert rules set --park kruger --camera gate-3 cooldown_s=      (back to the park's value)
    """
    repo = RulesRepository(db())
    try:
        park_id, camera_id = repo.scope(park, camera)
        changes: dict = {}
        for text in assignments:
            changes.update(parse_assignment(text))
        try:
            who = getpass.getuser()
        except Exception:  # noqa: BLE001 - no user name in some containers
            who = None
        with repo.editing(park_id) as edit:
            park_layer, camera_layer = edit.layers(camera_id)
            overrides = edit.overrides() if camera_id is None else []
            layer = new_layer(
                park_layer, camera_layer, changes, overrides, camera_level=camera_id is not None
            )
            edit.save(camera_id, layer, updated_by=who)
            AuditRepository.record_in(
                edit.cur,
                actor=cli_actor(),
                actor_role="operator",
                via="cli",
                action="rules.updated",
                park_id=park_id,
                target=f"camera:{camera}" if camera_id is not None else f"park:{park}",
                details={"changes": changes},
            )
    except RulesError as exc:
        raise click.ClickException(str(exc)) from None
    where = f"camera {camera} of park {park}" if camera else f"park {park}"
    click.echo(
        f"rules of {where}: " + (", ".join(f"{k}={v}" for k, v in sorted(layer.items())) or "(defaults)")
    )

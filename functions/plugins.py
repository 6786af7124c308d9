"""Plugins by entry point: what camera brands (functions/inbound/brands/) and channel adapters
(functions/notify/registry.py) share. Each keeps its own group, built-ins and error handling; a built-in
name is never shadowed by an entry point."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any


def load_ref(ref: str) -> Any:
    """The object a ``module:attr`` (or ``module:attr.sub``) reference names."""
    module, _, attr = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def discover(group: str, builtins: Mapping[str, str], log: logging.Logger, shadowed: str) -> dict[str, Any]:
    """name -> EntryPoint of ``group``, the first of each name; one that would shadow a built-in is left out
    with a warning (``shadowed``: its %-format, given the entry point's name, value and name again)."""
    found: dict[str, Any] = {}
    for ep in entry_points(group=group):
        if ep.name in builtins:
            log.warning(shadowed, ep.name, ep.value, ep.name)
            continue
        found.setdefault(ep.name, ep)
    return found


def origins(builtins: Mapping[str, str], found: Mapping[str, Any]) -> dict[str, str]:
    """Every name with where it comes from: ``builtin <ref>`` / ``entry point <ref> (<dist> <version>)``."""
    kinds = {k: f"builtin {v}" for k, v in builtins.items()}
    for name, ep in found.items():
        dist = getattr(ep, "dist", None)
        kinds[name] = f"entry point {ep.value}" + (f" ({dist.name} {dist.version})" if dist else "")
    return kinds

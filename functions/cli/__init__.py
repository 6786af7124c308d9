"""`trapalert` console script: thin commands over handlers and repositories.

Each topic is a module of this package that adds its commands to the group in base.py; they are all
imported here, so a new topic is a new file.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import cli

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name not in ("base",):
        importlib.import_module(f"{__name__}.{_mod.name}")


def main() -> None:
    cli(prog_name="trapalert")

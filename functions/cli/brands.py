"""`trapalert brands list`: the camera brands this install reads (built-in and entry-point plugins)."""

from __future__ import annotations

import click

from .base import cli, echo_json, echo_table


@cli.group("brands", help="Camera brands: how each brand's emails are read (functions/inbound/brands/).")
def brands_group() -> None:
    pass


@brands_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def brands_list(as_json: bool) -> None:
    from ..inbound.brands import available_brands, brands

    loaded = brands()
    rows = []
    for name, source in available_brands().items():
        brand = loaded.get(name)
        rows.append(
            {
                "brand": name,
                "source": source,
                "loaded": brand is not None,
                "vendor_shared": (
                    f"when the sender's domain has {brand.word!r}"
                    if getattr(brand, "word", "")
                    else getattr(brand, "vendor_shared", None)
                ),
                "link_hosts": ", ".join(getattr(brand, "link_hosts", ()) or ()) or "-",
            }
        )
    echo_json(rows) if as_json else echo_table(
        rows, ["brand", "vendor_shared", "link_hosts", "source", "loaded"]
    )

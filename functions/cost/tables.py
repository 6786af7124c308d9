"""Loads the dated price and throughput tables (JSON in this folder) into functions.domain.capacity types.

Both files carry ``as_of``; every price names its source page and the evidence that confirmed it (or says that
nothing here could); every throughput row names its basis (measured, published, derived) and its source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..domain.capacity import Hardware, PlanError, Rates

HERE = Path(__file__).resolve().parent
PRICES_FILE = HERE / "prices.json"
THROUGHPUT_FILE = HERE / "throughput.json"
COMPUTES = ("gpu", "cpu")
GPUS = ("T4", "A100")
# Earlier names of the releases (scoring/catalogue.py ALIASES) and the re-released files of v5.
_ALIASES = {
    "megadetector-v4.1": "mdv4.1",
    "megadetector-v5a": "mdv5a",
    "megadetector-v5b": "mdv5b",
    "mdv5a.0.1": "mdv5a",
    "mdv5b.0.1": "mdv5b",
}


@dataclass(frozen=True)
class PriceTable:
    as_of: str
    region: str
    currency: str
    entries: dict[str, dict]
    not_included: tuple[str, ...] = ()

    def value(self, key: str) -> float:
        try:
            return float(self.entries[key]["value"])
        except KeyError:
            raise PlanError(f"no price {key!r} in {PRICES_FILE.name}") from None

    def unconfirmed(self) -> list[str]:
        return sorted(k for k, e in self.entries.items() if not e.get("confirmed"))


@dataclass(frozen=True)
class ThroughputTable:
    as_of: str
    hardware: dict[str, dict]
    sources: dict[str, str]
    rows: list[dict]

    def models(self) -> list[str]:
        return sorted({r["model"] for r in self.rows})

    def row(self, model: str, kind: str) -> dict:
        key = model.strip().lower()
        key = _ALIASES.get(key, key)
        for r in self.rows:
            if r["model"] == key and r["hardware"] == kind:
                return r
        known = ", ".join(self.models())
        raise PlanError(f"no throughput figure for model {model!r} on {kind}; known models: {known}")


@cache
def prices(path: Path = PRICES_FILE) -> PriceTable:
    data = json.loads(path.read_text(encoding="utf-8"))
    return PriceTable(
        data["as_of"], data["region"], data["currency"], data["prices"], tuple(data.get("not_included", ()))
    )


@cache
def throughput(path: Path = THROUGHPUT_FILE) -> ThroughputTable:
    data = json.loads(path.read_text(encoding="utf-8"))
    return ThroughputTable(data["as_of"], data["hardware"], data["sources"], data["rows"])


def rates(table: PriceTable | None = None, postgres_sku: str = "Standard_D2ds_v5") -> Rates:
    p = table or prices()
    return Rates(
        fn_on_demand_gb_s=p.value("functions.flex.on_demand_gb_s"),
        fn_on_demand_per_million=p.value("functions.flex.on_demand_per_million"),
        fn_free_gb_s=p.value("functions.flex.free_gb_s"),
        fn_free_executions=p.value("functions.flex.free_executions"),
        fn_always_ready_baseline_gb_s=p.value("functions.flex.always_ready_baseline_gb_s"),
        fn_always_ready_gb_s=p.value("functions.flex.always_ready_gb_s"),
        fn_always_ready_per_million=p.value("functions.flex.always_ready_per_million"),
        queue_class1_per_10k=p.value("storage.queue.class1_per_10k"),
        queue_class2_per_10k=p.value("storage.queue.class2_per_10k"),
        blob_gb_month=p.value("storage.blob.hot_lrs_gb_month"),
        blob_write_per_10k=p.value("storage.blob.hot_lrs_write_per_10k"),
        blob_read_per_10k=p.value("storage.blob.hot_lrs_read_per_10k"),
        postgres_compute_per_hour=p.value(f"postgres.{postgres_sku}.hour"),
        postgres_storage_gb_month=p.value("postgres.storage_gb_month"),
        aca_requests_per_million=p.value("containerapps.requests_per_million"),
        aca_free_requests=p.value("containerapps.free_requests"),
        aca_free_vcpu_s=p.value("containerapps.free_vcpu_s"),
        aca_free_gib_s=p.value("containerapps.free_gib_s"),
        aca_vcpu_s_active=p.value("containerapps.consumption.vcpu_s_active"),
        aca_gib_s_active=p.value("containerapps.consumption.gib_s_active"),
    )


def postgres_skus(table: PriceTable | None = None) -> list[str]:
    p = table or prices()
    return sorted(k.split(".")[1] for k in p.entries if k.startswith("postgres.") and k.endswith(".hour"))


def hardware_kind(compute: str, gpu: str = "T4") -> str:
    if compute not in COMPUTES:
        raise PlanError(f"compute must be one of {', '.join(COMPUTES)}, not {compute!r}")
    if compute == "cpu":
        return "cpu-4vcpu"
    if gpu not in GPUS:
        raise PlanError(f"gpu must be one of {', '.join(GPUS)}, not {gpu!r}")
    return f"gpu-{gpu.lower()}"


def hardware(
    model: str,
    compute: str,
    gpu: str = "T4",
    price_table: PriceTable | None = None,
    throughput_table: ThroughputTable | None = None,
) -> Hardware:
    """One replica of ``model`` on ``compute``: its images/s (throughput.json) and its hourly price
    (prices.json)."""
    p = price_table or prices()
    t = throughput_table or throughput()
    kind = hardware_kind(compute, gpu)
    row = t.row(model, kind)
    hw = t.hardware[kind]
    if compute == "gpu":
        active = idle = p.value(hw["price"])
        vcpu = mem = 0.0
    else:
        vcpu, mem = float(hw["vcpu"]), float(hw["memory_gib"])
        active = 3600 * (
            vcpu * p.value("containerapps.consumption.vcpu_s_active")
            + mem * p.value("containerapps.consumption.gib_s_active")
        )
        idle = 3600 * (
            vcpu * p.value("containerapps.consumption.vcpu_s_idle")
            + mem * p.value("containerapps.consumption.gib_s_idle")
        )
    return Hardware(
        model=row["model"],
        compute=compute,
        kind=kind,
        images_per_s=float(row["images_per_s"]),
        usd_per_hour_active=active,
        usd_per_hour_idle=idle,
        startup_s=float(hw["startup_s"]),
        vcpu=vcpu,
        memory_gib=mem,
        basis=f"{row['basis']}: {row.get('note', '')} ({t.sources[row['source']].split(':')[0]})",
    )

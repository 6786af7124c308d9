"""Estimates built from the dated tables: a batch (time to finish, cost) and a park's month (cost by
component).

``estimate_batch(images, model, compute)`` is what `trapalert plan --images N` prints and what
`trapalert batch submit` shows before it starts. It returns a JSON-ready dict:

=============================  =============================================================================
key                            meaning
=============================  =============================================================================
``images``                     images in the batch
``model``, ``compute``         the model (catalogue name) and ``gpu`` or ``cpu``
``hardware``                   replica kind: ``gpu-t4``, ``gpu-a100`` or ``cpu-4vcpu``
``replicas``                   detector replicas working on the batch
``images_per_s_per_replica``   sustained throughput of one replica (throughput.json)
``throughput_basis``           measured / published / derived, and from what
``startup_s``                  cold start counted before the first image (0 for an empty batch)
``seconds_to_finish``          startup + images / (replicas x images/s)
``finish``                     the same, for people ("2 h 05 min")
``detector_replica_hours``     replica-hours billed: the work plus the scale-to-zero cooldown
``cost_usd``                   ``{"detector", "functions", "storage_transactions", "total"}``, one-off
``usd_per_1000_images``        ``total`` per 1,000 images (None for an empty batch)
``storage_gb``                 GB of photos the batch adds to Blob Storage
``storage_usd_per_month``      what keeping them costs each month (not in ``total``)
``prices_as_of``, ``region``,  the price table's date, region and currency; ``throughput_as_of`` the
``currency``,                  throughput table's date; ``unconfirmed_prices``: the prices used that could
``throughput_as_of``,          not be confirmed (see functions/cost/prices.json)
``unconfirmed_prices``
=============================  =============================================================================
"""

from __future__ import annotations

import math
from dataclasses import asdict, replace

from .. import names
from ..domain.capacity import (
    DURATION_S,
    QUEUE_OPS_PER_MESSAGE,
    Deployment,
    ParkProfile,
    PlanError,
    monthly_cost,
    time_to_finish_s,
    usd_per_1000_images,
)
from . import tables

DEFAULT_DEPLOYMENT = Deployment(
    queues=len(names.ALL_QUEUES),
    # infra/parameters/prod.json: always ready http, process-image, send-alert; PostgreSQL D2ds_v5 with HA,
    # 64 GB; scoring minReplicas 1; host.json maxPollingInterval 2 s.
    always_ready_instances=3,
    postgres_ha=True,
    postgres_storage_gb=64,
    min_replicas=1,
    max_polling_interval_s=2.0,
)
DEFAULT_POSTGRES_SKU = "Standard_D2ds_v5"
BATCH_PHOTO_MB = 2.0


def human_duration(seconds: float) -> str:
    if seconds <= 0:
        return "0 s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    return f"{hours / 24:.1f} days"


def _table_facts(keys: list[str]) -> dict:
    p, t = tables.prices(), tables.throughput()
    unconfirmed = set(p.unconfirmed())
    return {
        "prices_as_of": p.as_of,
        "region": p.region,
        "currency": p.currency,
        "throughput_as_of": t.as_of,
        "unconfirmed_prices": sorted(k for k in keys if k in unconfirmed),
    }


def estimate_batch(images: int, model: str, compute: str, gpu: str = "T4", replicas: int = 1) -> dict:
    """Time to finish and one-off cost of scoring ``images`` photos with ``model`` on ``compute``.

    The keys of the answer are listed in the module's docstring."""
    if images < 0:
        raise PlanError("images must be >= 0")
    if replicas < 1:
        raise PlanError("replicas must be >= 1")
    hw = tables.hardware(model, compute, gpu)
    r = tables.rates()
    p = tables.prices()
    startup = hw.startup_s if images else 0.0
    seconds = time_to_finish_s(images, hw.images_per_s, replicas, startup)
    cooldown = DEFAULT_DEPLOYMENT.cooldown_s if images else 0.0
    replica_h = replicas * (seconds + cooldown) / 3600
    detector = replica_h * hw.usd_per_hour_active
    # The batch lane: one execution per image, waiting on the detector; billed at the on-demand rate with no
    # free grant (the live pipeline uses it up).
    gb_s = (
        images * (DURATION_S["process_image"] + hw.seconds_per_image) * DEFAULT_DEPLOYMENT.function_memory_gb
    )
    functions = gb_s * r.fn_on_demand_gb_s + images / 1e6 * r.fn_on_demand_per_million
    transactions = (
        images
        / 1e4
        * (
            r.queue_class1_per_10k
            + (QUEUE_OPS_PER_MESSAGE - 1) * r.queue_class2_per_10k
            + r.blob_write_per_10k
            + r.blob_read_per_10k  # the upload, and the read to score it
        )
    )
    total = detector + functions + transactions
    storage_gb = images * BATCH_PHOTO_MB / 1024
    price_keys = [
        "functions.flex.on_demand_gb_s",
        "functions.flex.on_demand_per_million",
        "storage.queue.class1_per_10k",
        "storage.queue.class2_per_10k",
        "storage.blob.hot_lrs_write_per_10k",
        "storage.blob.hot_lrs_read_per_10k",
        "storage.blob.hot_lrs_gb_month",
    ]
    price_keys += (
        [f"containerapps.gpu.{gpu}.replica_hour"]
        if compute == "gpu"
        else ["containerapps.consumption.vcpu_s_active", "containerapps.consumption.gib_s_active"]
    )
    return {
        "images": images,
        "model": hw.model,
        "compute": compute,
        "hardware": hw.kind,
        "replicas": replicas,
        "images_per_s_per_replica": hw.images_per_s,
        "throughput_basis": hw.basis,
        "startup_s": startup,
        "seconds_to_finish": round(seconds, 1),
        "finish": human_duration(seconds),
        "detector_replica_hours": round(replica_h, 3),
        "cost_usd": {
            "detector": round(detector, 4),
            "functions": round(functions, 4),
            "storage_transactions": round(transactions, 4),
            "total": round(total, 4),
        },
        "usd_per_1000_images": None if not images else round(usd_per_1000_images(total, images), 4),
        "storage_gb": round(storage_gb, 3),
        "storage_usd_per_month": round(storage_gb * p.value("storage.blob.hot_lrs_gb_month"), 4),
        **_table_facts(price_keys),
    }


def estimate_park(
    profile: ParkProfile,
    model: str,
    compute: str,
    gpu: str = "T4",
    deployment: Deployment = DEFAULT_DEPLOYMENT,
    postgres_sku: str = DEFAULT_POSTGRES_SKU,
) -> dict:
    """A park's month: cost by component, the lines behind it, detector sizing and $ per 1,000 images."""
    if postgres_sku not in tables.postgres_skus():
        raise PlanError(
            f"no price for PostgreSQL {postgres_sku!r}; known: {', '.join(tables.postgres_skus())}"
        )
    hw = tables.hardware(model, compute, gpu)
    plan = monthly_cost(profile, deployment, hw, tables.rates(postgres_sku=postgres_sku))
    images = plan.facts["images_per_month"]
    components = {k: round(v, 2) for k, v in plan.by_component().items()}
    total = round(sum(line.usd for line in plan.lines), 2)
    facts = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in plan.facts.items()}
    price_keys = _park_price_keys(deployment, compute, gpu, postgres_sku)
    return {
        "profile": asdict(profile),
        "model": hw.model,
        "compute": compute,
        "hardware": hw.kind,
        "images_per_s_per_replica": hw.images_per_s,
        "throughput_basis": hw.basis,
        "deployment": dict(asdict(deployment), postgres_sku=postgres_sku),
        "detector": {
            "replicas_at_peak": facts["replicas_at_peak"],
            "peak_photos_per_s": facts["peak_photos_per_s"],
            "burst_scored_s": facts["burst_scored_s"],
            "cold_start_s": facts["cold_start_s"],
            "replica_hours": facts["replica_hours"],
        },
        "monthly_usd": {"components": components, "total": total},
        "usd_per_1000_images": None if not images else round(usd_per_1000_images(total, images), 3),
        "lines": [dict(asdict(line), usd=round(line.usd, 4)) for line in plan.lines],
        "facts": facts,
        "not_included": list(tables.prices().not_included),
        **_table_facts(price_keys),
    }


def _park_price_keys(deployment: Deployment, compute: str, gpu: str, postgres_sku: str) -> list[str]:
    """The prices a park's estimate used (to list the unconfirmed ones among them)."""
    fn = "functions.flex."
    keys = (
        [fn + "always_ready_baseline_gb_s", fn + "always_ready_gb_s", fn + "always_ready_per_million"]
        if deployment.always_ready_instances
        else [fn + "on_demand_gb_s", fn + "on_demand_per_million", fn + "free_gb_s", fn + "free_executions"]
    )
    keys += [f"storage.queue.class{n}_per_10k" for n in (1, 2)]
    keys += [f"storage.blob.hot_lrs_{k}" for k in ("gb_month", "write_per_10k", "read_per_10k")]
    keys += [f"postgres.{postgres_sku}.hour", "postgres.storage_gb_month"]
    keys += ["containerapps.requests_per_million", "containerapps.free_requests"]
    if compute == "gpu":
        keys.append(f"containerapps.gpu.{gpu}.replica_hour")
    else:
        consumption = "containerapps.consumption."
        keys += [consumption + k for k in ("vcpu_s_active", "gib_s_active", "vcpu_s_idle", "gib_s_idle")]
        keys += ["containerapps.free_vcpu_s", "containerapps.free_gib_s"]
    return keys


def deployment_with(**changes) -> Deployment:
    """The default (prod) deployment with some fields changed; None values keep the default."""
    return replace(DEFAULT_DEPLOYMENT, **{k: v for k, v in changes.items() if v is not None})

"""Capacity and cost planning (pure, no I/O): how many detector replicas, how long, and how much.

Everything here is arithmetic over numbers handed in: the price table and the throughput table are read by
``functions/cost/tables.py`` (dated JSON files kept in the repo) and passed as :class:`Rates` and
:class:`Hardware`. The CLI (``trapalert plan``) and ``functions/cost/estimate.py`` put them together.

The sizing formula is the rhino pipeline's (Azure ML autoscale): ::

    containers = ceil(target requests/s x seconds per request / target utilization / requests per container)
    nodes      = ceil(containers x cores per container / cores per node)

20 req/s x 10 s / 0.7 / 1 = 285.7 -> 286 containers; 286 / 16 = 17.9 -> 18 nodes. The arithmetic is exact
(decimal fractions of the inputs as typed, not binary floats), so a boundary such as 2.1 req/s x 1 s / 0.7 = 3
gives 3 containers, not 4.

A month is 730 hours (Azure's pricing convention: 8,760 h / 12).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction

HOURS_PER_MONTH = 730
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
DAYS_PER_MONTH = HOURS_PER_MONTH / 24  # 30.4167


class PlanError(ValueError):
    """An input outside its domain (negative counts, utilization not in (0, 1], ...)."""


def _exact(value: float | int | str | Fraction, name: str) -> Fraction:
    if isinstance(value, bool):
        raise PlanError(f"{name} must be a number")
    try:
        # str() first: 0.7 is then 7/10, not the binary float just below it.
        return value if isinstance(value, Fraction) else Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        raise PlanError(f"{name} must be a number, not {value!r}") from None


def _ceil(x: Fraction) -> int:
    return -((-x.numerator) // x.denominator)


# ---------------------------------------------------------------------------------------------------------
# The rhino pipeline's formula.


@dataclass(frozen=True)
class Sizing:
    target_rps: float
    seconds_per_request: float
    utilization: float
    per_container: int
    cores_per_container: float
    cores_per_node: int
    busy: float  # requests in flight at the target rate (Little's law: rps x seconds per request)
    containers: int
    nodes: int

    def as_dict(self) -> dict:
        return asdict(self)


def size_containers(
    target_rps: float,
    seconds_per_request: float,
    utilization: float,
    per_container: int = 1,
    cores_per_node: int = 16,
    cores_per_container: float = 1,
) -> Sizing:
    """Containers and nodes for a target request rate (the rhino pipeline's formula, module docstring).

    Refused (PlanError): a negative rate, a non-positive time per request, a utilization outside (0, 1],
    fewer than 1 request per container, fewer than 1 core per node, a non-positive core count per container.
    """
    rps = _exact(target_rps, "target_rps")
    spr = _exact(seconds_per_request, "seconds_per_request")
    util = _exact(utilization, "utilization")
    per = _exact(per_container, "per_container")
    cpc = _exact(cores_per_container, "cores_per_container")
    cpn = _exact(cores_per_node, "cores_per_node")
    if rps < 0:
        raise PlanError("target_rps must be >= 0")
    if spr <= 0:
        raise PlanError("seconds_per_request must be > 0")
    if not 0 < util <= 1:
        raise PlanError("utilization must be in (0, 1] (a target share of busy time, e.g. 0.7)")
    if per < 1 or per.denominator != 1:
        raise PlanError("per_container must be a whole number >= 1")
    if cpn < 1 or cpn.denominator != 1:
        raise PlanError("cores_per_node must be a whole number >= 1")
    if cpc <= 0 or cpc > cpn:
        raise PlanError("cores_per_container must be > 0 and fit on one node")
    containers = _ceil(rps * spr / util / per)
    nodes = _ceil(containers * cpc / cpn)
    return Sizing(
        target_rps=float(rps),
        seconds_per_request=float(spr),
        utilization=float(util),
        per_container=int(per),
        cores_per_container=float(cpc),
        cores_per_node=int(cpn),
        busy=float(rps * spr),
        containers=containers,
        nodes=nodes,
    )


# ---------------------------------------------------------------------------------------------------------
# Inputs handed in by the loader.


@dataclass(frozen=True)
class Hardware:
    """One model on one kind of replica: its measured or published throughput and what a replica costs."""

    model: str
    compute: str  # gpu | cpu
    kind: str  # gpu-t4, gpu-a100, cpu-4vcpu, ...
    images_per_s: float  # one replica, sustained (batched where the backend batches)
    usd_per_hour_active: float  # one replica while it scores
    usd_per_hour_idle: float  # one replica kept warm without work (min replicas)
    startup_s: float  # cold start: schedule, pull, load and warm the model
    vcpu: float = 0.0  # per replica, for the Container Apps free grant (Consumption profile only)
    memory_gib: float = 0.0
    basis: str = ""  # measured | published | derived: where images_per_s comes from

    @property
    def seconds_per_image(self) -> float:
        return 1.0 / self.images_per_s


@dataclass(frozen=True)
class Rates:
    """Unit prices (USD) the cost model needs; built from functions/cost/prices.json."""

    fn_on_demand_gb_s: float
    fn_on_demand_per_million: float
    fn_free_gb_s: float
    fn_free_executions: float
    fn_always_ready_baseline_gb_s: float
    fn_always_ready_gb_s: float
    fn_always_ready_per_million: float
    queue_class1_per_10k: float
    queue_class2_per_10k: float
    blob_gb_month: float
    blob_write_per_10k: float
    blob_read_per_10k: float
    postgres_compute_per_hour: float
    postgres_storage_gb_month: float
    aca_requests_per_million: float
    aca_free_requests: float
    aca_free_vcpu_s: float
    aca_free_gib_s: float
    aca_vcpu_s_active: float
    aca_gib_s_active: float


@dataclass(frozen=True)
class Deployment:
    """How TrapAlert is deployed (infra/parameters/prod.json and host.json by default)."""

    function_memory_gb: float = 2.0  # functionInstanceMemoryMB 2048
    always_ready_instances: int = 0  # prod: 3 (http, process-image, send-alert)
    queues: int = 6  # functions/names.py ALL_QUEUES
    polling_instances: int = 1  # instances polling each queue all month (see queue_polls)
    max_polling_interval_s: float = 2.0  # host.json extensions.queues.maxPollingInterval
    postgres_ha: bool = False
    postgres_storage_gb: float = 32
    utilization: float = 0.7  # target busy share of a detector replica
    cooldown_s: float = 300  # Container Apps scale rule cooldown before scaling to zero
    min_replicas: int = 1
    timer_runs_per_month: int = 61_320  # sweeper every minute + camera-health and ops digest every 5 min


@dataclass(frozen=True)
class ParkProfile:
    cameras: int
    photos_per_day: float  # per camera
    burst: int = 5  # photos per trigger
    night_share: float = 0.5  # share of the photos taken in the 12 night hours
    photos_per_email: int = 1
    alert_share: float = 0.05  # share of bursts that open or update an alert
    photo_mb: float = 2.0
    retention_days: int = 90  # photoRetentionDays (prod)
    channels: int = 3  # channels per alert (each reads the photo once)


# Seconds one execution of each function takes (billed as GB-s on Flex Consumption), from
# docs/benchmarks.md: process-email 83 ms (12.1 emails/s at concurrency 1), process-image 62 ms + the
# detector's time (the function waits on the scoring call), send-alert ~400 ms (three channels in
# parallel), timers (assumed) 50 ms.
DURATION_S = {"process_email": 0.083, "process_image": 0.062, "send_alert": 0.4, "timer": 0.05}
QUEUE_OPS_PER_MESSAGE = 3  # put (class 1) + get + delete (class 2)


@dataclass(frozen=True)
class Line:
    component: str
    quantity: float
    unit: str
    usd: float
    note: str = ""


@dataclass
class CostPlan:
    lines: list[Line] = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(line.usd for line in self.lines)

    def by_component(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.lines:
            out[line.component] = out.get(line.component, 0.0) + line.usd
        return out


# ---------------------------------------------------------------------------------------------------------
# Time.


def time_to_finish_s(images: int, images_per_s: float, replicas: int = 1, startup_s: float = 0.0) -> float:
    """Seconds to score ``images`` on ``replicas`` replicas of ``images_per_s`` each, after ``startup_s``.

    Zero images take no time at all (nothing starts)."""
    if images < 0:
        raise PlanError("images must be >= 0")
    if replicas < 1:
        raise PlanError("replicas must be >= 1")
    if images_per_s <= 0:
        raise PlanError("images_per_s must be > 0")
    if startup_s < 0:
        raise PlanError("startup_s must be >= 0")
    if images == 0:
        return 0.0
    return startup_s + images / (replicas * images_per_s)


# ---------------------------------------------------------------------------------------------------------
# Monthly cost of a park.


def queue_polls(deployment: Deployment) -> float:
    """Empty GetMessages calls a month from the Functions host's idle polling.

    The queue trigger backs off exponentially while a queue is empty (100 ms after a message, about 200 ms
    after an empty poll, growing to ``maxPollingInterval``; Microsoft Learn, "Azure Queue storage trigger for
    Azure Functions", section Polling algorithm). Over a month of mostly idle queues each polling instance
    therefore calls GetMessages about once per ``maxPollingInterval`` on every queue it listens to.
    """
    if deployment.max_polling_interval_s <= 0:
        raise PlanError("max_polling_interval_s must be > 0")
    return (
        deployment.queues
        * deployment.polling_instances
        * SECONDS_PER_MONTH
        / deployment.max_polling_interval_s
    )


def _validate(profile: ParkProfile, deployment: Deployment) -> None:
    if profile.cameras < 0 or profile.photos_per_day < 0:
        raise PlanError("cameras and photos_per_day must be >= 0")
    if profile.burst < 1 or profile.photos_per_email < 1:
        raise PlanError("burst and photos_per_email must be >= 1")
    if not 0 <= profile.night_share <= 1:
        raise PlanError("night_share must be in [0, 1]")
    if not 0 <= profile.alert_share <= 1:
        raise PlanError("alert_share must be in [0, 1]")
    if not 0 < deployment.utilization <= 1:
        raise PlanError("utilization must be in (0, 1]")
    if deployment.min_replicas < 0 or deployment.always_ready_instances < 0:
        raise PlanError("min_replicas and always_ready_instances must be >= 0")


def _up_fraction(triggers_per_s: float, hold_s: float) -> float:
    """Share of time at least one replica is up when triggers arrive at random (Poisson) and each keeps a
    replica for ``hold_s`` (the scale-to-zero cooldown): P(a trigger in the last hold_s) =
    1 - exp(-rate x hold)."""
    return 1.0 - math.exp(-triggers_per_s * hold_s)


def detector_plan(profile: ParkProfile, deployment: Deployment, hw: Hardware) -> dict:
    """Replica-hours a month, peak demand and the replicas the formula asks for at the busiest half day."""
    _validate(profile, deployment)
    images = profile.cameras * profile.photos_per_day * DAYS_PER_MONTH
    spi = hw.seconds_per_image
    work_h = images * spi / deployment.utilization / 3600
    half_day_s = 12 * 3600
    night_rps = profile.cameras * profile.photos_per_day * profile.night_share / half_day_s
    day_rps = profile.cameras * profile.photos_per_day * (1 - profile.night_share) / half_day_s
    peak_rps = max(night_rps, day_rps)
    peak = size_containers(round(peak_rps, 9), round(spi, 9), deployment.utilization)
    if deployment.min_replicas >= 1:
        warm_h = deployment.min_replicas * HOURS_PER_MONTH
        replica_h = warm_h + max(0.0, work_h - warm_h)
        up_h = float(HOURS_PER_MONTH)
    else:
        hold = deployment.cooldown_s + hw.startup_s
        up_h = (
            HOURS_PER_MONTH
            / 2
            * (_up_fraction(night_rps / profile.burst, hold) + _up_fraction(day_rps / profile.burst, hold))
        )
        replica_h = max(work_h, up_h)
    # Billed at the active rate while scoring (utilization sizes replicas, it is not billed); the rest of the
    # replica-hours are warm and idle (min replicas, cooldown).
    active_h = min(replica_h, images * spi / 3600)
    return {
        "images_per_month": images,
        "seconds_per_image": spi,
        "work_replica_hours": work_h,
        "replica_hours": replica_h,
        "active_replica_hours": active_h,
        "idle_replica_hours": max(0.0, replica_h - active_h),
        "hours_with_a_replica_up": up_h,
        "peak_photos_per_s": peak_rps,
        "replicas_at_peak": max(peak.containers, deployment.min_replicas),
        "burst_scored_s": profile.burst * spi,
        "cold_start_s": hw.startup_s if deployment.min_replicas == 0 else 0.0,
    }


def monthly_cost(profile: ParkProfile, deployment: Deployment, hw: Hardware, rates: Rates) -> CostPlan:
    """The month's cost by component (Function executions and GB-s, storage transactions including queue
    polling, blob GB, PostgreSQL, detector hours) and the facts they come from."""
    _validate(profile, deployment)
    det = detector_plan(profile, deployment, hw)
    images = det["images_per_month"]
    emails = images / profile.photos_per_email
    bursts = images / profile.burst
    alerts = bursts * profile.alert_share
    plan = CostPlan(facts=dict(det, emails_per_month=emails, alerts_per_month=alerts))
    add = plan.lines.append

    # Azure Functions (Flex Consumption).
    executions = emails + images + alerts + deployment.timer_runs_per_month
    seconds = (
        emails * DURATION_S["process_email"]
        + images * (DURATION_S["process_image"] + hw.seconds_per_image)
        + alerts * DURATION_S["send_alert"]
        + deployment.timer_runs_per_month * DURATION_S["timer"]
    )
    gb_s = seconds * deployment.function_memory_gb
    plan.facts.update(function_executions=executions, function_gb_s=gb_s)
    if deployment.always_ready_instances:
        baseline = deployment.always_ready_instances * deployment.function_memory_gb * SECONDS_PER_MONTH
        add(
            Line(
                "functions",
                baseline,
                "GB-s baseline",
                baseline * rates.fn_always_ready_baseline_gb_s,
                f"{deployment.always_ready_instances} always-ready instance(s), no free grant",
            )
        )
        add(Line("functions", gb_s, "GB-s executing", gb_s * rates.fn_always_ready_gb_s, "always-ready rate"))
        add(Line("functions", executions, "executions", executions / 1e6 * rates.fn_always_ready_per_million))
    else:
        billable_gb_s = max(0.0, gb_s - rates.fn_free_gb_s)
        billable_ex = max(0.0, executions - rates.fn_free_executions)
        add(
            Line(
                "functions",
                gb_s,
                "GB-s executing",
                billable_gb_s * rates.fn_on_demand_gb_s,
                f"on demand, first {rates.fn_free_gb_s:,.0f} GB-s free",
            )
        )
        add(
            Line(
                "functions",
                executions,
                "executions",
                billable_ex / 1e6 * rates.fn_on_demand_per_million,
                f"first {rates.fn_free_executions:,.0f} free",
            )
        )

    # Storage transactions: messages (put + get + delete), idle polling, blobs.
    messages = images + alerts
    polls = queue_polls(deployment)
    add(
        Line(
            "storage transactions",
            messages,
            "queue messages",
            messages / 1e4 * (rates.queue_class1_per_10k + 2 * rates.queue_class2_per_10k),
            "process-image + send-alert: put, get, delete",
        )
    )
    add(
        Line(
            "storage transactions",
            polls,
            "empty queue polls",
            polls / 1e4 * rates.queue_class2_per_10k,
            f"{deployment.queues} queues x {deployment.polling_instances} instance(s), one GetMessages per "
            f"{deployment.max_polling_interval_s:g} s (maxPollingInterval) while idle",
        )
    )
    writes = emails + images + alerts  # raw email, photo, annotated photo
    reads = images + alerts * (1 + profile.channels)  # process-image; send-alert annotates, channels fetch
    add(
        Line(
            "storage transactions",
            writes + reads,
            "blob operations",
            writes / 1e4 * rates.blob_write_per_10k + reads / 1e4 * rates.blob_read_per_10k,
            f"{writes:,.0f} writes, {reads:,.0f} reads",
        )
    )

    # Blob GB held at steady state: photo + raw email (about the photo's size) for the retention period.
    per_day_mb = profile.cameras * profile.photos_per_day * profile.photo_mb * 2
    per_day_mb += (
        profile.cameras * profile.photos_per_day / profile.burst * profile.alert_share * profile.photo_mb
    )
    blob_gb = per_day_mb * profile.retention_days / 1024
    plan.facts["blob_gb"] = blob_gb
    add(
        Line(
            "blob storage",
            blob_gb,
            "GB-month",
            blob_gb * rates.blob_gb_month,
            f"{profile.retention_days} days of photos and raw emails",
        )
    )

    # PostgreSQL Flexible Server.
    servers = 2 if deployment.postgres_ha else 1
    add(
        Line(
            "postgresql",
            servers * HOURS_PER_MONTH,
            "server-hours",
            servers * HOURS_PER_MONTH * rates.postgres_compute_per_hour,
            "zone-redundant HA doubles the compute" if servers == 2 else "",
        )
    )
    add(
        Line(
            "postgresql",
            deployment.postgres_storage_gb,
            "GB-month",
            deployment.postgres_storage_gb * rates.postgres_storage_gb_month,
            "backup up to this size included",
        )
    )

    # Detector (Container Apps): replica-hours, and HTTP requests.
    active_h, idle_h = det["active_replica_hours"], det["idle_replica_hours"]
    usd = active_h * hw.usd_per_hour_active + idle_h * hw.usd_per_hour_idle
    if hw.vcpu:  # Consumption profile: the monthly free grant of vCPU-s and GiB-s
        usd -= min(rates.aca_free_vcpu_s, (active_h + idle_h) * 3600 * hw.vcpu) * rates.aca_vcpu_s_active
        usd -= min(rates.aca_free_gib_s, (active_h + idle_h) * 3600 * hw.memory_gib) * rates.aca_gib_s_active
        usd = max(0.0, usd)
    add(
        Line(
            "detector",
            det["replica_hours"],
            f"replica-hours ({hw.kind})",
            usd,
            f"{active_h:,.0f} h scoring, {idle_h:,.0f} h warm and idle",
        )
    )
    add(
        Line(
            "detector",
            images,
            "requests",
            max(0.0, images - rates.aca_free_requests) / 1e6 * rates.aca_requests_per_million,
            f"first {rates.aca_free_requests:,.0f} free",
        )
    )
    return plan


def usd_per_1000_images(total_usd: float, images: float) -> float | None:
    """Cost of 1,000 images; None when there are none (the fixed cost is then all there is)."""
    return None if images <= 0 else total_usd / images * 1000

"""The demo park of `make run`: one park, one camera, and an email channel delivered to a local outbox
(.trapalert/outbox) so that a new user sees an alert without any account.

Everything goes through the repositories' validated paths (the same as `trapalert parks|cameras|channels
add`); running it again on the same database changes nothing."""

from __future__ import annotations

from pathlib import Path

from ..adapters.channels import ChannelError, ChannelRepository
from ..adapters.parks import CameraIn, ParkIn, ParkRepository
from ..db import Database

DEMO_PARK = "demo"
DEMO_CAMERA = "DEMO-CAM-01"
DEMO_SENDER = "camera01@demo.trapalert.local"
DEMO_CHANNEL = "demo-email"


def create_demo(db: Database, state_dir: Path) -> dict:
    repo = ParkRepository(db)
    repo.add_park(ParkIn(slug=DEMO_PARK, name="Demo Game Reserve", timezone="Africa/Johannesburg",
                         inbound_address="demo@alerts.trapalert.local"))
    repo.add_camera(DEMO_PARK, CameraIn(
        name=DEMO_CAMERA, brand="generic", sender_addresses=[DEMO_SENDER], aliases=["CAM01"],
        latitude=-24.9911, longitude=31.5922, zone="north"))
    outbox = state_dir / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    channels = ChannelRepository(db)
    try:
        channels.get(DEMO_PARK, DEMO_CHANNEL)  # there already (an earlier `stack up --demo`): keep it
    except ChannelError:
        channels.add(DEMO_PARK, DEMO_CHANNEL, "email",
                     {"mode": "outbox", "outbox_dir": str(outbox), "to": ["rangers@demo.trapalert.local"],
                      "from_address": "alerts@demo.trapalert.local"},
                     purpose="alerts")
    return {"park": DEMO_PARK, "camera": DEMO_CAMERA, "sender": DEMO_SENDER, "outbox": str(outbox)}

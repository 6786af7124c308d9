"""The demo park of `make run`: one park, one camera, and an email channel delivered to a local outbox
(.trapalert/outbox) so that a new user sees an alert without any account."""

from __future__ import annotations

import json
from pathlib import Path

from ..adapters.parks import CameraIn, ParkIn, ParkRepository
from ..db import Database

DEMO_PARK = "demo"
DEMO_CAMERA = "DEMO-CAM-01"
DEMO_SENDER = "camera01@demo.trapalert.local"


def create_demo(db: Database, state_dir: Path) -> dict:
    repo = ParkRepository(db)
    park = repo.add_park(ParkIn(slug=DEMO_PARK, name="Demo Game Reserve", timezone="Africa/Johannesburg",
                                inbound_address="demo@alerts.trapalert.local"))
    repo.add_camera(DEMO_PARK, CameraIn(
        name=DEMO_CAMERA, brand="generic", sender_addresses=[DEMO_SENDER], aliases=["CAM01"],
        latitude=-24.9911, longitude=31.5922, zone="north"))
    outbox = state_dir / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    db.execute(
        """INSERT INTO channels (park_id, name, kind, purpose, config)
           VALUES (%s, 'demo-email', 'email', 'alerts', %s::jsonb)
           ON CONFLICT (park_id, name) DO NOTHING""",
        (park["id"], json.dumps({"mode": "outbox", "outbox_dir": str(outbox),
                                 "to": ["rangers@demo.trapalert.local"],
                                 "from_address": "alerts@demo.trapalert.local"})))
    return {"park": DEMO_PARK, "camera": DEMO_CAMERA, "sender": DEMO_SENDER, "outbox": str(outbox)}

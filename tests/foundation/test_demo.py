"""The demo park of `trapalert stack up --demo`: created through the repositories' validated paths, and
creating it again changes nothing."""

from __future__ import annotations

import pytest

from functions.adapters.channels import ChannelError, ChannelRepository
from functions.localhost import demo


def test_demo_park_camera_and_channel_are_created_once(clean_db, tmp_path):
    first = demo.create_demo(clean_db, tmp_path)
    second = demo.create_demo(clean_db, tmp_path)
    assert (
        first
        == second
        == {
            "park": "demo",
            "camera": "DEMO-CAM-01",
            "sender": "camera01@demo.trapalert.local",
            "outbox": str(tmp_path / "outbox"),
        }
    )
    assert (tmp_path / "outbox").is_dir()
    [channel] = ChannelRepository(clean_db).list("demo")
    assert (channel["name"], channel["kind"], channel["purpose"]) == ("demo-email", "email", "alerts")
    assert channel["config"]["mode"] == "outbox" and channel["config"]["outbox_dir"] == str(
        tmp_path / "outbox"
    )
    cams = clean_db.fetchall("SELECT name, sender_addresses, aliases, zone FROM cameras")
    assert cams == [
        {
            "name": "DEMO-CAM-01",
            "sender_addresses": ["camera01@demo.trapalert.local"],
            "aliases": ["CAM01"],
            "zone": "north",
        }
    ]


def test_the_demo_channel_goes_through_the_channel_validation(clean_db, tmp_path, monkeypatch):
    """A config the email adapter refuses is refused for the demo too (no raw INSERT around the checks)."""
    import functions.adapters.channels as channels

    def refuse(channel, **_):
        raise ChannelError(f"refused {channel.name}")

    monkeypatch.setattr(channels, "check_channel", refuse)
    with pytest.raises(ChannelError, match="refused demo-email"):
        demo.create_demo(clean_db, tmp_path)

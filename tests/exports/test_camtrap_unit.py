"""The Camtrap DP shapes that need no services (functions/exports/camtrap_dp.py): a camera's deployment over
the period, the package's spatial coverage, timestamps with the camera's offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from functions.exports import camtrap_dp as dp

ADDED = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, tzinfo=UTC)


def cam(**kw) -> dict:
    return {
        "id": 1,
        "name": "c1",
        "latitude": -2.0,
        "longitude": 34.0,
        "tz": "Africa/Nairobi",
        "created_at": ADDED,
        "active": True,
        "last_seen_at": None,
    } | kw


def photo(at: datetime, **kw) -> dict:
    return {"taken_at": at, "taken_at_source": "exif"} | kw


def test_a_deployment_runs_from_the_cameras_start_to_the_periods_end():
    d = dp.deployment(cam(), [], since=None, until=None, now=NOW)
    assert (d.start, d.end) == (ADDED, NOW)
    assert d.row["deploymentStart"] == "2026-01-01T03:00:00+03:00"
    # a period clips it; a camera no longer active ends at its last contact
    since, until = datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    d = dp.deployment(cam(), [], since=since, until=until, now=NOW)
    assert (d.start, d.end) == (since, until)
    gone = ADDED + timedelta(days=40)
    d = dp.deployment(cam(active=False, last_seen_at=gone), [], since=None, until=None, now=NOW)
    assert d.end == gone and "camera:inactive" in d.row["deploymentTags"]
    # its photos always lie inside it (photos sent before it was registered, or after its last contact)
    early, late = ADDED - timedelta(days=3), gone + timedelta(days=1)
    d = dp.deployment(
        cam(active=False, last_seen_at=gone), [photo(early), photo(late)], since=None, until=None, now=NOW
    )
    assert (d.start, d.end) == (early, late)
    # not deployed in the period at all: no deployment
    assert "not deployed" in dp.deployment(cam(created_at=NOW), [], since=None, until=ADDED, now=NOW)


def test_location_from_the_camera_else_its_photos_else_none():
    gps = [
        photo(ADDED, gps_latitude=-1.0, gps_longitude=30.0),
        photo(ADDED, gps_latitude=-3.0, gps_longitude=31.0),
        photo(ADDED, gps_latitude=-2.5, gps_longitude=35.0),
    ]
    d = dp.deployment(cam(latitude=None, longitude=None), gps, since=None, until=None, now=NOW)
    assert (d.row["latitude"], d.row["longitude"]) == (-2.5, 31.0)
    d = dp.deployment(
        cam(latitude=-2.123456, longitude=34.98765), [], since=None, until=None, now=NOW, decimals=2
    )
    assert (d.row["latitude"], d.row["longitude"]) == (-2.12, 34.99)
    assert "no location" in dp.deployment(cam(latitude=None), [photo(ADDED)], since=None, until=None, now=NOW)


def test_timestamp_issues_when_a_time_is_not_the_cameras_own():
    ok = dp.deployment(
        cam(), [photo(ADDED), photo(ADDED, taken_at_source="vendor")], since=None, until=None, now=NOW
    )
    assert ok.row["timestampIssues"] is False
    bad = dp.deployment(cam(), [photo(ADDED, taken_at_source="email_date")], since=None, until=None, now=NOW)
    assert bad.row["timestampIssues"] is True


def test_spatial_coverage():
    assert dp.spatial([]) == {"type": "FeatureCollection", "features": []}
    assert dp.spatial([(-2.0, 34.0), (-2.0, 34.0)]) == {"type": "Point", "coordinates": [34.0, -2.0]}
    assert dp.spatial([(-2.0, 34.0), (-2.0, 35.0)])["type"] == "MultiPoint"
    poly = dp.spatial([(-2.0, 34.0), (-1.0, 35.0)])
    assert poly == {
        "type": "Polygon",
        "coordinates": [[[34.0, -2.0], [35.0, -2.0], [35.0, -1.0], [34.0, -1.0], [34.0, -2.0]]],
    }


def test_timestamps_carry_the_cameras_offset():
    at = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert dp.timestamp(at, "Africa/Johannesburg") == "2026-07-01T14:00:00+02:00"
    assert dp.timestamp(at, "Not/AZone") == "2026-07-01T12:00:00+00:00"
    assert dp.timestamp(at.replace(tzinfo=None), "UTC") == "2026-07-01T12:00:00+00:00"

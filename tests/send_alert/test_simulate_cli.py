"""`trapalert simulate camera`: the POST is SendGrid's real format, and the command follows the email to its
deliveries. The webhook here is a recording stand-in that does what process-email/process-image would
(store email, image, detections, alert) and then runs the real send-alert handler."""

from __future__ import annotations

import json
import threading
import uuid

from click.testing import CliRunner

from functions.cli import cli
from functions.handlers import send_alert
from functions.messages import SendAlert
from tests.fakes import FakeServer, Reply

from . import helpers as h


class PipelineStandIn(FakeServer):
    name = "pipeline-stand-in"

    def __init__(self, env, park, process: bool = True):
        super().__init__()
        self.env, self.park, self.process = env, park, process
        self.route("POST", r"/api/inbound/sendgrid", self._inbound)

    def _inbound(self, req):
        if self.process:
            threading.Thread(target=self._pipeline, args=(req,), daemon=True).start()
        return Reply(200, {"status": "accepted"})

    def _pipeline(self, req):
        db, storage, park = self.env.db, self.env.storage, self.park
        if "email" in req.form:  # raw mode: the Message-ID is inside the MIME
            import email

            mid = email.message_from_string(req.form["email"])["Message-ID"]
        else:
            mid = next(
                line.split(":", 1)[1].strip()
                for line in req.form["headers"].splitlines()
                if line.lower().startswith("message-id:")
            )
        image_id = h.add_image(db, storage, park["park_id"], park["camera_id"])
        db.execute(
            "UPDATE inbound_emails SET message_id = %s WHERE id = (SELECT email_id FROM images "
            "WHERE id = %s)",
            (mid, image_id),
        )
        alert_id = h.add_alert(db, park["park_id"], park["camera_id"], image_id)
        db.execute("UPDATE images SET alert_id = %s WHERE id = %s", (alert_id, image_id))
        send_alert.handle(SendAlert(alert_id=alert_id, correlation_id=uuid.uuid4()), self.env)


def _camera_with_sender(park):
    park["db"].execute(
        "UPDATE cameras SET sender_addresses = '{cam07@traps.example.org}', aliases = '{CT07}' WHERE id = %s",
        (park["camera_id"],),
    )
    park["db"].execute(
        "UPDATE parks SET inbound_address = 'kruger@alerts.example.org' WHERE id = %s", (park["park_id"],)
    )


def test_simulate_posts_sendgrid_format_and_prints_deliveries(env, park, fakes, tmp_path):
    er, cm, sg = fakes
    _camera_with_sender(park)
    h.add_channel(park["db"], park["park_id"], "rangers-email", "email", h.email_config(sg))
    photo = tmp_path / "IMG_0001.JPG"
    photo.write_bytes(h.make_jpeg(seed=9))
    with PipelineStandIn(env, park) as hook:
        url = f"{hook.root_url}/api/inbound/sendgrid?code=secret-function-key"
        res = CliRunner().invoke(
            cli,
            [
                "simulate",
                "camera",
                "--camera",
                "CT-07 Sabie drift",
                "--image",
                str(photo),
                "--url",
                url,
                "--timeout",
                "20",
            ],
            catch_exceptions=False,
        )
        (req,) = hook.requests
    assert res.exit_code == 0, res.output
    assert req.query["code"] == ["secret-function-key"] and "secret-function-key" not in res.output
    assert req.header("Content-Type") == "multipart/form-data; boundary=xYzZY"
    assert req.form["from"] == "cam07@traps.example.org" and req.form["to"] == "kruger@alerts.example.org"
    assert req.form["subject"] == "CT07 motion detected" and req.form["attachments"] == "1"
    assert json.loads(req.form["envelope"]) == {
        "to": ["kruger@alerts.example.org"],
        "from": "cam07@traps.example.org",
    }
    assert json.loads(req.form["attachment-info"])["attachment1"]["filename"] == "IMG_0001.JPG"
    assert req.files["attachment1"].data == photo.read_bytes()
    assert "person 93% at [0.40, 0.30, 0.20, 0.50]" in res.output
    assert "rangers-email (email): delivered after 1 attempt(s)" in res.output
    assert "done in" in res.output and len(sg.messages) == 1


def test_simulate_raw_mode_and_timeout(env, park, fakes, tmp_path):
    _camera_with_sender(park)
    photo = tmp_path / "IMG_0002.JPG"
    photo.write_bytes(h.make_jpeg(seed=10))
    with PipelineStandIn(env, park, process=False) as hook:
        res = CliRunner().invoke(
            cli,
            [
                "simulate",
                "camera",
                "--camera",
                "CT07",
                "--park",
                "kruger-south",
                "--image",
                str(photo),
                "--raw",
                "--url",
                f"{hook.root_url}/api/inbound/sendgrid",
                "--timeout",
                "1",
            ],
        )
        (req,) = hook.requests
    assert res.exit_code == 1
    assert "the email was not recorded" in res.output and "not finished after 1 s" in res.output
    assert "email" in req.form and "attachment1" not in req.files
    assert 'Content-Disposition: attachment; filename="IMG_0002.JPG"' in req.form["email"]


def test_simulate_unknown_camera(env, park):
    res = CliRunner().invoke(
        cli, ["simulate", "camera", "--camera", "nope", "--image", __file__, "--url", "http://127.0.0.1:9/x"]
    )
    assert res.exit_code == 1 and "no camera 'nope'" in res.output

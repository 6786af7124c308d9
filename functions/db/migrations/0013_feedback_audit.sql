-- Rangers' feedback and the audit log (issues 14 and 15). Written by functions/adapters/feedback_repo.py and
-- functions/adapters/audit_repo.py; read by the park console, suppression proposals, per-camera precision and
-- the Camtrap DP export (classificationMethod "human" where a ranger confirmed or corrected a detection).

-- One verdict of one person on an alert, or on one photo of it (image_id set). The latest verdict per
-- (alert, image, user) counts; older ones stay for the audit trail.
CREATE TABLE feedback (
    id          bigserial PRIMARY KEY,
    park_id     bigint NOT NULL REFERENCES parks(id) ON DELETE CASCADE,
    camera_id   bigint NOT NULL REFERENCES cameras(id) ON DELETE CASCADE,
    alert_id    bigint NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    image_id    bigint REFERENCES images(id) ON DELETE CASCADE,
    verdict     text NOT NULL CHECK (verdict IN ('confirmed', 'false_positive', 'unsure')),
    -- what it really was, for a false positive (animal, shadow, stump, staff_vehicle, vegetation, other) or
    -- the corrected category for a confirmation (person, vehicle, animal)
    what        text,
    note        text,
    user_name   text NOT NULL,
    user_role   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feedback_alert_idx ON feedback (alert_id, created_at DESC);
CREATE INDEX feedback_camera_idx ON feedback (camera_id, created_at DESC);
CREATE INDEX feedback_image_idx ON feedback (image_id) WHERE image_id IS NOT NULL;

-- Every change and every feedback, by whom, through which door (console, cli, api).
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    actor_role  text,
    via         text NOT NULL CHECK (via IN ('console', 'cli', 'api', 'system')),
    action      text NOT NULL,                 -- e.g. feedback.recorded, suppression.confirmed, camera.updated
    park_id     bigint REFERENCES parks(id) ON DELETE SET NULL,
    target      text,                          -- e.g. alert:42, camera:7, channel:3
    details     jsonb NOT NULL DEFAULT '{}'::jsonb   -- never secrets
);
CREATE INDEX audit_log_at_idx ON audit_log (at DESC);
CREATE INDEX audit_log_park_idx ON audit_log (park_id, at DESC);

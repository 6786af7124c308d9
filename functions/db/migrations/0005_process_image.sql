-- process-image (issue 5): alert rules, events (bursts), static false positives, and the send-alert outbox.

-- Alert rules as operators set them: one row per park (camera_id NULL) and one per camera override. `rules`
-- holds only the keys set at that level (flat keys, e.g. {"threshold.person.night": 0.5}); the effective
-- rules of a camera are the defaults, then the park's keys, then the camera's (functions/domain/rules.py).
CREATE TABLE alert_rules (
    id          bigserial PRIMARY KEY,
    park_id     bigint NOT NULL REFERENCES parks(id) ON DELETE CASCADE,
    camera_id   bigint REFERENCES cameras(id) ON DELETE CASCADE,
    rules       jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text
);
CREATE UNIQUE INDEX alert_rules_scope_idx ON alert_rules (park_id, COALESCE(camera_id, 0));

-- Events: the photos of one camera that follow each other within the burst gap. An event opens at most one
-- alert; events within the cooldown of a camera's alert attach to that alert.
CREATE TABLE events (
    id              bigserial PRIMARY KEY,
    park_id         bigint NOT NULL REFERENCES parks(id) ON DELETE CASCADE,
    camera_id       bigint NOT NULL REFERENCES cameras(id) ON DELETE CASCADE,
    started_at      timestamptz NOT NULL,
    last_image_at   timestamptz NOT NULL,
    image_count     integer NOT NULL DEFAULT 0,
    alert_id        bigint REFERENCES alerts(id) ON DELETE SET NULL,
    summary         jsonb NOT NULL DEFAULT '{}'::jsonb,   -- the last EventSummary (why it alerted or not)
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_camera_time_idx ON events (camera_id, last_image_at DESC);
CREATE INDEX events_alert_idx ON events (alert_id) WHERE alert_id IS NOT NULL;

-- Static false positives: a box that comes back at the same place of one camera in many events. `watching`
-- boxes count distinct events; at the park's `suppress_after` they become `suppressed` (detections inside
-- them no longer alert); an operator may lift one (`lifted`: never suppressed again at that place).
CREATE TABLE suppressions (
    id              bigserial PRIMARY KEY,
    park_id         bigint NOT NULL REFERENCES parks(id) ON DELETE CASCADE,
    camera_id       bigint NOT NULL REFERENCES cameras(id) ON DELETE CASCADE,
    category        text NOT NULL,                     -- MegaDetector category of the first sighting
    bbox_x          real NOT NULL,
    bbox_y          real NOT NULL,
    bbox_w          real NOT NULL,
    bbox_h          real NOT NULL,
    event_count     integer NOT NULL DEFAULT 1,        -- distinct events in which the box was seen
    last_event_id   bigint,
    max_conf        real NOT NULL DEFAULT 0,
    first_seen_at   timestamptz NOT NULL,
    last_seen_at    timestamptz NOT NULL,
    status          text NOT NULL DEFAULT 'watching' CHECK (status IN ('watching', 'suppressed', 'lifted')),
    reason          text,
    suppressed_at   timestamptz,
    lifted_at       timestamptz,
    lifted_by       text,
    lift_note       text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX suppressions_camera_idx ON suppressions (camera_id, status);

ALTER TABLE images ADD COLUMN event_id bigint REFERENCES events(id) ON DELETE SET NULL;
ALTER TABLE images ADD COLUMN alert_id bigint REFERENCES alerts(id) ON DELETE SET NULL;
-- what the rules made of this photo (per category best confidence, passes/weak, why not): for ops
ALTER TABLE images ADD COLUMN assessment jsonb;
ALTER TABLE images ADD COLUMN decided_at timestamptz;      -- the event/alert decision was applied
CREATE INDEX images_event_idx ON images (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX images_alert_idx ON images (alert_id) WHERE alert_id IS NOT NULL;

-- a detection inside a suppressed static box (kept for the record, never alerts)
ALTER TABLE detections ADD COLUMN suppression_id bigint REFERENCES suppressions(id) ON DELETE SET NULL;

-- Outbox of send-alert: `version` is what rangers should see, `enqueued_version` what was put on the queue.
-- A SendAlert is enqueued after the decision's commit while enqueued_version < version; a failed enqueue
-- fails the message, whose retry enqueues it then.
ALTER TABLE alerts ADD COLUMN enqueued_version integer NOT NULL DEFAULT 0;
CREATE INDEX alerts_outbox_idx ON alerts (camera_id) WHERE enqueued_version < version;

-- Each SendAlert message put on the queue by process-image (audit for ops and tests).
CREATE TABLE alert_notifications (
    id              bigserial PRIMARY KEY,
    alert_id        bigint NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    version         integer NOT NULL,
    reason          text NOT NULL,
    message_id      text,
    correlation_id  uuid,
    enqueued_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_notifications_alert_idx ON alert_notifications (alert_id, version);

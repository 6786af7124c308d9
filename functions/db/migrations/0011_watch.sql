-- Theft and tamper watch (issue 19): three more camera-health conditions, the per-photo facts they are
-- decided from, and the reference view of each camera (functions/domain/watch.py decides; the rows are
-- written by functions/adapters/health_repo.py).

-- Per scored photo: its view signature (functions/inbound/view_signature.py: a 16x16 grayscale thumbnail
-- without the burned-in data strips, and whether the frame is infrared/greyscale) and what the watch made
-- of it: {"close_person": bool, "person": {...}, "regime": "day"|"ir", "view": "baseline"|"match"|"off"|
-- "skipped"|"unknown", "view_distance": number|null}. NULL: not watched yet.
ALTER TABLE images ADD COLUMN view_sig text;
ALTER TABLE images ADD COLUMN watch jsonb;
CREATE INDEX images_watch_idx ON images (camera_id, id) WHERE watch IS NOT NULL;
CREATE INDEX images_close_person_idx ON images (camera_id, created_at)
    WHERE (watch ->> 'close_person') = 'true';

-- The camera's reference view starts at photo `since_image_id` (0: its first photo). It moves when a new
-- view was stable long enough to be adopted (the camera was moved on purpose, or stays moved).
CREATE TABLE camera_views (
    camera_id       bigint PRIMARY KEY REFERENCES cameras(id) ON DELETE CASCADE,
    since_image_id  bigint NOT NULL DEFAULT 0,
    adopted_at      timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE camera_health DROP CONSTRAINT IF EXISTS camera_health_condition_check;
ALTER TABLE camera_health ADD CONSTRAINT camera_health_condition_check CHECK (condition IN ('silent', 'low_battery', 'temperature', 'clock_skew', 'someone_at_camera', 'view_changed', 'neighbours_silent'));

-- Suppression proposals and rangers' feedback at a place (issue 14), and photos uploaded through the console
-- or `trapalert upload`.
--
-- A static box of a person or a vehicle is no longer suppressed by itself: at `suppress_after` events (or
-- after rangers marked it a false positive in FEEDBACK_EVENTS_TO_PROPOSE events) it becomes `proposed`, and
-- detections inside it still alert until an operator confirms it (`suppressed`) or rejects it (`rejected`:
-- never proposed again at that place). Animal boxes are still suppressed automatically unless a ranger
-- confirmed a real sighting there (then proposed too). functions/domain/suppression.py decides all of it.
ALTER TABLE suppressions DROP CONSTRAINT suppressions_status_check;
ALTER TABLE suppressions ADD CONSTRAINT suppressions_status_check CHECK (status IN ('watching', 'proposed', 'suppressed', 'lifted', 'rejected'));
-- the photos a box is based on, per event: [{"event_id", "image_id", "at", "source": "seen" |
-- "false_positive" | "confirmed"}], newest last, at most 50 (functions/domain/suppression.py MAX_EVIDENCE)
ALTER TABLE suppressions ADD COLUMN evidence jsonb NOT NULL DEFAULT '[]'::jsonb;
-- distinct events at this place that rangers marked false positive / confirmed (latest verdict per event)
ALTER TABLE suppressions ADD COLUMN fp_count integer NOT NULL DEFAULT 0;
ALTER TABLE suppressions ADD COLUMN confirmed_count integer NOT NULL DEFAULT 0;
ALTER TABLE suppressions ADD COLUMN proposed_at timestamptz;
-- the operator who confirmed or rejected a proposal
ALTER TABLE suppressions ADD COLUMN reviewed_at timestamptz;
ALTER TABLE suppressions ADD COLUMN reviewed_by text;
ALTER TABLE suppressions ADD COLUMN review_note text;
CREATE INDEX suppressions_proposed_idx ON suppressions (park_id) WHERE status = 'proposed';

-- Uploaded photos take the emailed photos' path: one inbound_emails row per uploaded photo (mode 'upload',
-- sender = the uploader, dedupe key `upload|cam:<camera id>|photo:<sha256>`), its image row, and its
-- message in the outbox (the bulk lane: a large upload never delays a live camera's alert).
ALTER TABLE inbound_emails DROP CONSTRAINT inbound_emails_mode_check;
ALTER TABLE inbound_emails ADD CONSTRAINT inbound_emails_mode_check CHECK (mode IN ('parsed', 'raw', 'unknown', 'upload'));
-- an upload of a photo the camera already emailed (or that was uploaded before) is a duplicate
CREATE INDEX images_camera_sha_idx ON images (camera_id, sha256) WHERE sha256 IS NOT NULL;

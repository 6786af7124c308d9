-- Inbound email (issue 3): per-image record of the process-image message, so that a SendGrid retry of an
-- email whose rows were stored but whose messages were not (crash, storage outage) enqueues exactly what is
-- missing, and a plain duplicate enqueues nothing.
ALTER TABLE images ADD COLUMN enqueued_at timestamptz;
ALTER TABLE images ADD COLUMN queue_message_id text;
CREATE INDEX images_pending_enqueue_idx ON images (email_id) WHERE status = 'stored' AND enqueued_at IS NULL;

-- A POST that is not a SendGrid form at all is still recorded (mode 'unknown', status rejected).
ALTER TABLE inbound_emails DROP CONSTRAINT inbound_emails_mode_check;
ALTER TABLE inbound_emails ADD CONSTRAINT inbound_emails_mode_check CHECK (mode IN ('parsed', 'raw', 'unknown'));

-- Release of a quarantined email: when and as which camera (camera_id/park_id are set to the chosen one).
ALTER TABLE inbound_emails ADD COLUMN released_at timestamptz;
ALTER TABLE inbound_emails ADD COLUMN sender_ip text;

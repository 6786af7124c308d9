-- Retries sized for real outages (issue 13).
-- outbox.delay_s: the message becomes visible on its queue this long after it is put there (a retry's
-- backoff); outbox.subject: what the message is about ('image:<id>', 'alert:<id>'), so the sweeper can tell
-- work that waits for a retry from work that was lost.
ALTER TABLE outbox ADD COLUMN delay_s integer NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN subject text;
UPDATE outbox SET subject = CASE
    WHEN body ? 'image_id' THEN 'image:' || (body->>'image_id')
    WHEN body ? 'alert_id' THEN 'alert:' || (body->>'alert_id') END;
CREATE INDEX outbox_subject_idx ON outbox (subject, created_at DESC) WHERE subject IS NOT NULL;

-- A channel that failed permanently for an alert (credentials refused, event type unknown, a bad config):
-- recorded loudly, with what to fix, until an operator redelivers (`trapalert deliveries redeliver`).
ALTER TABLE deliveries ADD COLUMN permanent boolean NOT NULL DEFAULT false;
ALTER TABLE deliveries ADD COLUMN fix text;
ALTER TABLE deliveries ADD COLUMN failed_at timestamptz;
CREATE INDEX deliveries_permanent_idx ON deliveries (channel_id, failed_at DESC) WHERE permanent;

-- One row per channel that is failing permanently: raised by the first permanent failure (which notifies
-- ops, once), cleared by a redelivery or the channel's next successful delivery.
CREATE TABLE channel_failures (
    channel_id    bigint PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    status        text NOT NULL CHECK (status IN ('raised', 'cleared')),
    error         text NOT NULL,
    fix           text NOT NULL,
    raised_at     timestamptz NOT NULL DEFAULT now(),
    cleared_at    timestamptz,
    notified_at   timestamptz
);

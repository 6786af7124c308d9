-- One transactional outbox (issue 12). Every queue message the pipeline produces is first written here, in
-- the same transaction as the state change it announces (an image stored, an alert opened or updated, a
-- health condition raised or cleared, a poisoned message replayed). One flusher
-- (functions/adapters/outbox.py) puts each pending row on its queue and marks it sent; a row whose flush
-- failed stays pending and is sent by the next flush of its scope (a SendGrid retry, a queue retry, the next
-- timer run) or by a sweep.
--
-- key:   what the message is about, unique: one message per image, per alert version, per replay.
-- scope: who flushes it on the producer's path ('email:<id>', 'camera:<id>', 'camera-health',
--        'poison:<record id>').
CREATE TABLE outbox (
    id             bigserial PRIMARY KEY,
    queue          text NOT NULL,
    body           jsonb NOT NULL,
    key            text NOT NULL UNIQUE,
    scope          text NOT NULL,
    correlation_id uuid,
    created_at     timestamptz NOT NULL DEFAULT now(),
    sent_at        timestamptz,
    message_id     text,
    attempts       integer NOT NULL DEFAULT 0,
    last_error     text
);
CREATE INDEX outbox_pending_scope_idx ON outbox (scope, id) WHERE sent_at IS NULL;
CREATE INDEX outbox_pending_created_idx ON outbox (created_at) WHERE sent_at IS NULL;

-- What the three earlier bookkeeping columns held as pending moves here, then the columns go.
-- 1. process-image messages of stored images not yet enqueued
INSERT INTO outbox (queue, body, key, scope, correlation_id)
SELECT 'process-image',
       jsonb_build_object('schema_version', 1, 'correlation_id', coalesce(i.correlation_id, gen_random_uuid()),
                          'image_id', i.id, 'blob_name', i.blob_name, 'park_id', i.park_id,
                          'camera_id', i.camera_id),
       'process-image:' || i.id, 'email:' || i.email_id, i.correlation_id
FROM images i
WHERE i.status = 'stored' AND i.enqueued_at IS NULL AND i.blob_name IS NOT NULL
  AND i.park_id IS NOT NULL AND i.camera_id IS NOT NULL;

-- 1b. process-image messages already enqueued (so that a SendGrid retry never enqueues them again)
INSERT INTO outbox (queue, body, key, scope, correlation_id, created_at, sent_at, message_id)
SELECT 'process-image',
       jsonb_build_object('schema_version', 1, 'correlation_id', coalesce(i.correlation_id, gen_random_uuid()),
                          'image_id', i.id, 'blob_name', i.blob_name, 'park_id', i.park_id,
                          'camera_id', i.camera_id),
       'process-image:' || i.id, 'email:' || i.email_id, i.correlation_id, i.enqueued_at, i.enqueued_at,
       i.queue_message_id
FROM images i
WHERE i.enqueued_at IS NOT NULL AND i.blob_name IS NOT NULL AND i.park_id IS NOT NULL
  AND i.camera_id IS NOT NULL;

-- 2. SendAlert messages already enqueued (history, from alert_notifications)
INSERT INTO outbox (queue, body, key, scope, correlation_id, created_at, sent_at, message_id)
SELECT DISTINCT ON (n.alert_id, n.version) 'send-alert',
       jsonb_build_object('schema_version', 1, 'correlation_id', coalesce(n.correlation_id, gen_random_uuid()),
                          'alert_id', n.alert_id, 'version', n.version, 'reason', n.reason),
       'send-alert:' || n.alert_id || ':v' || n.version, 'camera:' || a.camera_id, n.correlation_id,
       n.enqueued_at, n.enqueued_at, n.message_id
FROM alert_notifications n JOIN alerts a ON a.id = n.alert_id
ORDER BY n.alert_id, n.version, n.id;

-- 3. detection alerts whose current version was not enqueued
INSERT INTO outbox (queue, body, key, scope, correlation_id)
SELECT 'send-alert',
       jsonb_build_object('schema_version', 1, 'correlation_id', coalesce(a.correlation_id, gen_random_uuid()),
                          'alert_id', a.id, 'version', a.version,
                          'reason', CASE WHEN a.enqueued_version = 0 THEN 'new' ELSE 'update' END),
       'send-alert:' || a.id || ':v' || a.version, 'camera:' || a.camera_id, a.correlation_id
FROM alerts a
WHERE a.kind = 'detection' AND a.enqueued_version < a.version
ON CONFLICT (key) DO NOTHING;

-- 4. health transitions whose SendAlert was not enqueued
INSERT INTO outbox (queue, body, key, scope, correlation_id)
SELECT 'send-alert',
       jsonb_build_object('schema_version', 1, 'correlation_id', coalesce(a.correlation_id, gen_random_uuid()),
                          'alert_id', a.id, 'version', a.version, 'reason', h.pending_send),
       'send-alert:' || a.id || ':v' || a.version, 'camera-health', a.correlation_id
FROM camera_health h JOIN alerts a ON a.id = h.alert_id
WHERE h.pending_send IS NOT NULL
ON CONFLICT (key) DO NOTHING;

DROP INDEX IF EXISTS images_pending_enqueue_idx;
ALTER TABLE images DROP COLUMN enqueued_at, DROP COLUMN queue_message_id;
DROP INDEX IF EXISTS alerts_outbox_idx;
ALTER TABLE alerts DROP COLUMN enqueued_version;
DROP INDEX IF EXISTS camera_health_pending_idx;
ALTER TABLE camera_health DROP COLUMN pending_send;
DROP TABLE alert_notifications;

-- Re-scoring alerts (issue 15: `trapalert rescore --alert`). Written by functions/adapters/batch_repo.py
-- (`open_past_alerts`), read by send-alert like any alert (functions/adapters/deliveries.py).
--
-- alerts.kind 'rescore': an alert about the PAST, opened when a re-scoring run with --alert is done, one per
--              event that the current model would have alerted on and that had no alert. It is delivered to
--              the park's channels like any alert (SendAlert reason 'rescore', through the outbox), but it is
--              never part of the live decision (a new photo never joins or updates it) and the event's photos
--              keep their alert_id (NULL) and original detections. The new model's detections of its best
--              photo are kept in details->'rescore'->'detections' (what the notice draws).
-- alerts.rescore_batch_id / rescore_event: the run that opened it and the event it is about
--              ('event:<id>' or 'image:<id>' for a photo that joined no event). An event gets at most one
--              re-scoring alert, whatever the run (unique index): running a finish twice, or re-scoring the
--              same days again, never tells rangers twice.
-- batches.alerted_at: when the run's re-scoring alerts were opened (the run is settled; a second finish
--              opens nothing).

ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check CHECK (kind IN ('detection', 'health', 'rescore'));
ALTER TABLE alerts ADD COLUMN rescore_batch_id bigint REFERENCES batches(id) ON DELETE SET NULL;
ALTER TABLE alerts ADD COLUMN rescore_event text;
CREATE UNIQUE INDEX alerts_rescore_event_idx ON alerts (rescore_event) WHERE rescore_event IS NOT NULL;
CREATE INDEX alerts_rescore_batch_idx ON alerts (rescore_batch_id) WHERE rescore_batch_id IS NOT NULL;

ALTER TABLE batches ADD COLUMN alerted_at timestamptz;

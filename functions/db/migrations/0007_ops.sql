-- Operations (issue 7): camera health state and the rate limit of ops notifications.

-- One row per camera and health condition: raised once when the condition starts, cleared once when the
-- camera comes back. `pending_send` is an outbox: the SendAlert message still to enqueue for the last
-- transition ('health' or 'health_cleared'); the timer re-enqueues it until the enqueue succeeded.
CREATE TABLE camera_health (
    camera_id     bigint NOT NULL REFERENCES cameras(id) ON DELETE CASCADE,
    condition     text NOT NULL CHECK (condition IN ('silent', 'low_battery', 'temperature', 'clock_skew')),
    status        text NOT NULL CHECK (status IN ('raised', 'cleared')),
    raised_at     timestamptz NOT NULL,
    cleared_at    timestamptz,
    alert_id      bigint REFERENCES alerts(id) ON DELETE SET NULL,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb,
    pending_send  text CHECK (pending_send IN ('health', 'health_cleared')),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (camera_id, condition)
);
CREATE INDEX camera_health_raised_idx ON camera_health (status) WHERE status = 'raised';
CREATE INDEX camera_health_pending_idx ON camera_health (camera_id) WHERE pending_send IS NOT NULL;

-- Rate limit of ops notifications, per ops channel, shared by every process (poison monitors scale out):
-- at most one notification per OPS_NOTIFY_INTERVAL_S; what happened meanwhile is counted in `suppressed`
-- and sent as one summary by the next notification or by the ops-digest timer.
CREATE TABLE ops_notify_state (
    channel_id        bigint PRIMARY KEY REFERENCES channels(id) ON DELETE CASCADE,
    last_sent_at      timestamptz,
    suppressed        integer NOT NULL DEFAULT 0,
    suppressed_since  timestamptz,
    suppressed_queues text[] NOT NULL DEFAULT '{}',
    last_error        text
);

CREATE INDEX poison_records_queue_idx ON poison_records (queue, status, recorded_at DESC);
CREATE INDEX poison_records_correlation_idx ON poison_records (correlation_id);
CREATE INDEX message_failures_correlation_idx ON message_failures (correlation_id, failed_at DESC);

-- send-alert: a short claim on each (alert, channel) delivery, so that two messages of one alert handled at
-- the same time (a burst's version 1 and version 2) never both create the remote event. The claim is a
-- lease (claimed_until): a worker that dies mid-delivery frees it when the lease ends.
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS claim_token uuid;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS claimed_until timestamptz;
-- the delivery status shown per channel by `trapalert channels list`
CREATE INDEX IF NOT EXISTS deliveries_channel_idx ON deliveries (channel_id, updated_at DESC);

-- Batch scoring and re-scoring (issue 15). Written and read by functions/adapters/batch_repo.py; the work
-- travels on the bulk lane (queue process-image-bulk, message BulkImage), which never delays live photos.
--
-- batches:     one request (`POST /api/batch`, `trapalert batch submit`) or one re-scoring run
--              (`trapalert rescore`); its request id is what the API and the CLI show.
-- batch_items: one photo of a batch. A photo is scored exactly once: its result is written only while the
--              item is still `pending` (a redelivered message changes nothing; `score_count` says how many
--              answers were recorded, 1 for every scored item), and its BulkImage has the outbox key
--              `bulk:<purpose>:<item id>`. Items are put on the queue a window at a time (`queued_at`): each
--              finished item queues the next one in its own transaction, so the queue stays short and a
--              cancelled batch stops within seconds.
--              Re-scoring items name the stored photo (`image_id`): their detections are kept here, with
--              the model version, beside the photo's original detections (table `detections`, model in
--              `images.model_name`/`model_version`), which the alert decision keeps using.

CREATE TABLE batches (
    id              bigserial PRIMARY KEY,
    request_id      uuid NOT NULL UNIQUE,
    park_id         bigint NOT NULL REFERENCES parks(id) ON DELETE CASCADE,
    camera_id       bigint REFERENCES cameras(id) ON DELETE SET NULL,
    purpose         text NOT NULL CHECK (purpose IN ('batch', 'rescore')),
    -- running: items left; done: every item scored or failed; cancelled: stopped, what was done is kept
    state           text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'done', 'cancelled')),
    alert           boolean NOT NULL DEFAULT false,          -- rescore --alert
    source          jsonb NOT NULL DEFAULT '{}'::jsonb,      -- {"blobs": n} | {"prefix": ...} | {"since", ...}
    total           integer NOT NULL DEFAULT 0,
    created_by      text,
    correlation_id  uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    results_blob    text                                     -- images/batch-results/<request id>.json
);
CREATE INDEX batches_park_idx ON batches (park_id, created_at DESC);

CREATE TABLE batch_items (
    id              bigserial PRIMARY KEY,
    batch_id        bigint NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    file            text NOT NULL,                           -- the path in the results (relative)
    blob_name       text NOT NULL,                           -- in the images container
    image_id        bigint REFERENCES images(id) ON DELETE SET NULL,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'scored', 'failed', 'cancelled')),
    queued_at       timestamptz,
    sha256          text,
    failure         text,                                    -- missing_blob, not_an_image, duplicate, ...
    detections      jsonb,                                   -- MegaDetector detections [{category, conf, bbox}]
    night           boolean,
    model_name      text,
    model_version   text,
    scored_at       timestamptz,
    score_count     integer NOT NULL DEFAULT 0,
    requeued        integer NOT NULL DEFAULT 0,              -- queued again after its message was lost
    UNIQUE (batch_id, file)
);
-- the same photo twice in one batch: the second ends with failure 'duplicate: ...'
CREATE UNIQUE INDEX batch_items_hash_idx ON batch_items (batch_id, sha256);
CREATE INDEX batch_items_unqueued_idx ON batch_items (batch_id, id) WHERE queued_at IS NULL;
CREATE INDEX batch_items_pending_idx ON batch_items (batch_id) WHERE state = 'pending';
CREATE INDEX batch_items_image_idx ON batch_items (image_id) WHERE image_id IS NOT NULL;

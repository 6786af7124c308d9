-- TrapAlert initial schema. State lives here; images live in Blob Storage; secrets live in app settings.

CREATE TABLE parks (
    id              bigserial PRIMARY KEY,
    slug            text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name            text NOT NULL,
    timezone        text NOT NULL DEFAULT 'UTC',
    -- the address cameras of this park email (e.g. park-x@alerts.example.org); matched on `to`/envelope
    inbound_address text UNIQUE,
    require_spf_pass  boolean NOT NULL DEFAULT false,
    require_dkim_pass boolean NOT NULL DEFAULT false,
    settings        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cameras (
    id                  bigserial PRIMARY KEY,
    park_id             bigint NOT NULL REFERENCES parks(id) ON DELETE CASCADE,
    name                text NOT NULL,
    brand               text,
    -- addresses this camera sends from (lower case); several cameras may share one
    sender_addresses    text[] NOT NULL DEFAULT '{}',
    -- names/ids the camera writes into the subject or body (its own idea of its name)
    aliases             text[] NOT NULL DEFAULT '{}',
    latitude            double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude           double precision CHECK (longitude BETWEEN -180 AND 180),
    timezone            text,            -- NULL: the park's
    zone                text,            -- channel routing (e.g. a ranger sector)
    expected_interval_s integer NOT NULL DEFAULT 86400 CHECK (expected_interval_s > 0),
    overrides           jsonb NOT NULL DEFAULT '{}'::jsonb,
    active              boolean NOT NULL DEFAULT true,
    last_seen_at        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (park_id, name)
);
CREATE INDEX cameras_sender_idx ON cameras USING gin (sender_addresses);
CREATE INDEX cameras_alias_idx ON cameras USING gin (aliases);

CREATE TABLE inbound_emails (
    id              bigserial PRIMARY KEY,
    dedupe_key      text NOT NULL UNIQUE,      -- Message-ID, or sha256 of the raw body
    message_id      text,
    received_at     timestamptz NOT NULL DEFAULT now(),
    mode            text NOT NULL CHECK (mode IN ('parsed', 'raw')),
    sender          text,
    envelope_from   text,
    to_address      text,
    subject         text,
    email_date      timestamptz,
    spf             text,
    dkim            text,
    park_id         bigint REFERENCES parks(id),
    camera_id       bigint REFERENCES cameras(id),
    -- accepted: images stored and queued; quarantined: unknown sender, kept for release;
    -- rejected: permanently bad (recorded, answered 200); released: a quarantined email processed later
    status          text NOT NULL CHECK (status IN ('accepted', 'quarantined', 'rejected', 'released')),
    reason          text,
    raw_blob        text,                       -- raw-emails/<...>: everything as received
    size_bytes      integer,
    attachment_count integer NOT NULL DEFAULT 0,
    correlation_id  uuid NOT NULL,
    meta            jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX inbound_emails_status_idx ON inbound_emails (status, received_at DESC);

CREATE TABLE images (
    id              bigserial PRIMARY KEY,
    email_id        bigint NOT NULL REFERENCES inbound_emails(id) ON DELETE CASCADE,
    attachment_index integer NOT NULL,
    park_id         bigint REFERENCES parks(id),
    camera_id       bigint REFERENCES cameras(id),
    filename        text,
    content_type    text,
    sha256          text,
    blob_name       text,
    size_bytes      integer,
    width           integer,
    height          integer,
    taken_at        timestamptz,
    taken_at_source text CHECK (taken_at_source IN ('exif', 'email_date', 'received')),
    gps_latitude    double precision,
    gps_longitude   double precision,
    orientation     integer,
    -- stored: queued for scoring; unsupported/rejected: never scored (reason says why);
    -- scored: detections stored; failed: the detector could not read it (reason says why)
    status          text NOT NULL CHECK (status IN ('stored', 'unsupported', 'rejected', 'scored', 'failed')),
    reason          text,
    night           boolean,
    model_name      text,
    model_version   text,
    scored_at       timestamptz,
    correlation_id  uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (email_id, attachment_index)
);
CREATE INDEX images_camera_time_idx ON images (camera_id, taken_at);

CREATE TABLE detections (
    id          bigserial PRIMARY KEY,
    image_id    bigint NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    category    text NOT NULL,                  -- MegaDetector: 1 animal, 2 person, 3 vehicle
    conf        real NOT NULL CHECK (conf BETWEEN 0 AND 1),
    bbox_x      real NOT NULL,                  -- normalized, origin top-left
    bbox_y      real NOT NULL,
    bbox_w      real NOT NULL,
    bbox_h      real NOT NULL
);
CREATE INDEX detections_image_idx ON detections (image_id);

CREATE TABLE alerts (
    id              bigserial PRIMARY KEY,
    park_id         bigint NOT NULL REFERENCES parks(id),
    camera_id       bigint NOT NULL REFERENCES cameras(id),
    kind            text NOT NULL DEFAULT 'detection' CHECK (kind IN ('detection', 'health')),
    categories      text[] NOT NULL DEFAULT '{}',
    max_conf        real,
    mean_conf       real,
    image_count     integer NOT NULL DEFAULT 0,
    best_image_id   bigint REFERENCES images(id),
    started_at      timestamptz NOT NULL,
    last_image_at   timestamptz NOT NULL,
    version         integer NOT NULL DEFAULT 1,     -- bumped by each update worth telling rangers
    title           text,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    correlation_id  uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_camera_idx ON alerts (camera_id, last_image_at DESC);

CREATE TABLE channels (
    id          bigserial PRIMARY KEY,
    park_id     bigint NOT NULL REFERENCES parks(id) ON DELETE CASCADE,
    name        text NOT NULL,
    kind        text NOT NULL,              -- earthranger, cmore, email, webhook, or a third-party kind
    purpose     text NOT NULL DEFAULT 'alerts' CHECK (purpose IN ('alerts', 'ops')),
    zone        text,                        -- NULL: every camera of the park
    -- non-secret configuration; secrets are referenced by app-setting name (e.g. "token_setting")
    config      jsonb NOT NULL DEFAULT '{}'::jsonb,
    enabled     boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (park_id, name)
);

CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    alert_id        bigint NOT NULL REFERENCES alerts(id) ON DELETE CASCADE,
    channel_id      bigint NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    status          text NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    external_id     text,                    -- e.g. the EarthRanger event id
    state           jsonb NOT NULL DEFAULT '{}'::jsonb,
    delivered_version integer NOT NULL DEFAULT 0,  -- the alert version last delivered on this channel
    delivered_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (alert_id, channel_id)
);

-- Failures of queue handlers, one row per attempt that raised: the poison monitor reads the last error.
CREATE TABLE message_failures (
    id              bigserial PRIMARY KEY,
    queue           text NOT NULL,
    message_id      text NOT NULL,
    dequeue_count   integer,
    error           text NOT NULL,
    correlation_id  uuid,
    failed_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX message_failures_msg_idx ON message_failures (queue, message_id, failed_at DESC);

CREATE TABLE poison_records (
    id              bigserial PRIMARY KEY,
    queue           text NOT NULL,          -- the source queue (process-image, send-alert, ...)
    message_id      text NOT NULL,
    body            text NOT NULL,          -- the original message text, as the handler received it
    dequeue_count   integer,
    inserted_at     timestamptz,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    correlation_id  uuid,
    -- poisoned: waiting for ops; invalid: the message itself is bad (never retried); replayed; purged
    status          text NOT NULL DEFAULT 'poisoned' CHECK (status IN ('poisoned', 'invalid', 'replayed', 'purged')),
    replayed_at     timestamptz,
    replay_message_id text,
    UNIQUE (queue, message_id)
);
CREATE INDEX poison_records_status_idx ON poison_records (status, recorded_at DESC);

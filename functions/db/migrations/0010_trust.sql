-- Trust at the door (issue 19): a camera is who it proves to be.
--
-- cameras.token_hash: sha256 (hex) of the camera's secret token, which the camera puts in the recipient
-- address (park-x+<token>@...). Only the hash is stored: the token is shown once, by `trapalert cameras add`
-- or `trapalert cameras rotate-token`. cameras.serials: serial numbers / IMEIs the camera writes in its email
-- or its photos' EXIF, normalized (upper case, letters and digits only).
ALTER TABLE cameras ADD COLUMN token_hash text UNIQUE;
ALTER TABLE cameras ADD COLUMN token_rotated_at timestamptz;
ALTER TABLE cameras ADD COLUMN serials text[] NOT NULL DEFAULT '{}';
CREATE INDEX cameras_serials_idx ON cameras USING gin (serials);

-- parks.require_token: every email of this park must carry a camera token of the park.
-- parks.shared_senders: addresses (or @domains) that several owners' cameras send from (a vendor's cloud),
-- besides the ones the brand plugins know: such a sender names no camera on its own.
ALTER TABLE parks ADD COLUMN require_token boolean NOT NULL DEFAULT false;
ALTER TABLE parks ADD COLUMN shared_senders text[] NOT NULL DEFAULT '{}';

-- How an email was authenticated (dkim/spf: aligned with its From domain; token: the camera's secret) and
-- which proofs named its camera(s); per photo too, since one email may carry photos of several cameras.
ALTER TABLE inbound_emails ADD COLUMN authenticated_by text[] NOT NULL DEFAULT '{}';
ALTER TABLE inbound_emails ADD COLUMN proofs text[] NOT NULL DEFAULT '{}';
ALTER TABLE inbound_emails ADD CONSTRAINT inbound_emails_authenticated_by_check
    CHECK (authenticated_by <@ ARRAY['dkim', 'spf', 'token']::text[]);
ALTER TABLE inbound_emails ADD CONSTRAINT inbound_emails_proofs_check
    CHECK (proofs <@ ARRAY['sender', 'sender_name', 'token', 'serial', 'exif_serial', 'token_name']::text[]);
ALTER TABLE images ADD COLUMN proofs text[] NOT NULL DEFAULT '{}';
ALTER TABLE images ADD CONSTRAINT images_proofs_check
    CHECK (proofs <@ ARRAY['sender', 'sender_name', 'token', 'serial', 'exif_serial', 'token_name']::text[]);

-- The dedupe key is now Message-ID (else the body's sha256) + the authenticated camera(s) + the photos'
-- hashes (functions/inbound/ingest.py): a repeated Message-ID with other photos, or from a sender that is not
-- the camera, is another email. Old keys stay as they are (they are never produced again).

-- Photos given as links (RidgeTec: an <img src> in the HTML body, not an attachment).
-- process-email records the photo as an image row with its link and no blob yet (status 'linked');
-- process-image fetches it from the brand's https hosts (functions/inbound/links.py), stores the blob and its
-- sha256 and goes on as for any photo; a link that cannot be fetched for good is 'failed' with the reason.
ALTER TABLE images ADD COLUMN source_url text;            -- the link the photo was given as
ALTER TABLE images ADD COLUMN source_brand text;          -- the brand whose allow-list the link must match
ALTER TABLE images ADD COLUMN fetched_at timestamptz;     -- when the link was fetched (or given up)
CREATE UNIQUE INDEX images_source_url_idx ON images (email_id, source_url) WHERE source_url IS NOT NULL;

ALTER TABLE images DROP CONSTRAINT images_status_check;
ALTER TABLE images ADD CONSTRAINT images_status_check CHECK (status IN ('stored', 'unsupported', 'rejected', 'scored', 'failed', 'linked'));
-- 'vendor': the time the camera's email states for the photo (RidgeTec's data-date-time-created)
ALTER TABLE images DROP CONSTRAINT images_taken_at_source_check;
ALTER TABLE images ADD CONSTRAINT images_taken_at_source_check CHECK (taken_at_source IN ('exif', 'email_date', 'received', 'vendor'));

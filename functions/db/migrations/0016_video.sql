-- Video clips (issue 16; functions/inbound/video.py, functions/handlers/process_video.py, scoring/video.py).
--
-- A clip is one `images` row like a photo (content_type video/*, blob = the original clip). When scored, each
-- sampled frame that matters (the first frame, every frame with a detection) becomes an `images` row of its
-- own (status scored, blob = the frame's JPEG, clip_image_id = the clip) so that the rules, the burst, the
-- alert photo (annotated) and the exports see frames exactly as they see photos. The clip row keeps what the
-- scoring service said about the whole clip in `video`.

-- the clip a frame was taken from (NULL for photos and clips)
ALTER TABLE images ADD COLUMN clip_image_id bigint REFERENCES images(id) ON DELETE CASCADE;
-- MegaDetector's video fields: the frame's number in the clip, and its time from the clip's start
ALTER TABLE images ADD COLUMN frame_number integer CHECK (frame_number >= 0);
ALTER TABLE images ADD COLUMN frame_time_s real CHECK (frame_time_s >= 0);
-- on a clip: frame_rate, frames_processed, frame_count, duration_s, codec, truncated, notes (scoring/video.py)
ALTER TABLE images ADD COLUMN video jsonb;
CREATE UNIQUE INDEX images_clip_frame_idx ON images (clip_image_id, frame_number) WHERE clip_image_id IS NOT NULL;
ALTER TABLE images ADD CONSTRAINT images_frame_of_clip_check
    CHECK ((clip_image_id IS NULL) = (frame_number IS NULL));

-- each detection of a frame carries its frame number and time (as MegaDetector's video output does)
ALTER TABLE detections ADD COLUMN frame_number integer CHECK (frame_number >= 0);
ALTER TABLE detections ADD COLUMN frame_time_s real CHECK (frame_time_s >= 0);

-- Video clips in batch scoring (issues 15 and 16; functions/handlers/batch.py). A batch item whose blob is a
-- clip is scored through the scoring service's /v1/detect-video on the bulk lane; its detections (column
-- `detections`) each carry `frame_number` and `frame_time_s`, and the clip's own fields are kept here so that
-- the batch results write it as MegaDetector's process_video writes a video.

-- on a clip: frame_rate, frames_processed (sorted frame numbers), and what the service said of the clip
-- (frame_count, frames_read, duration_s, width, height, codec, truncated, notes; scoring/video.py); NULL for
-- photos
ALTER TABLE batch_items ADD COLUMN video jsonb;

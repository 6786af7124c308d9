"""Video clips: sample frames with OpenCV, score them through the same batcher as photos, answer in the
MegaDetector video output format.

Sampling (``sample``): the first frame, then one frame every ``every_s`` seconds of the clip's own time
(``frame_number % round(every_s * fps) == 0``), then the last frame, at most ``max_frames`` in all (the
first and the last are always kept; the others are thinned evenly when there are too many). Frames are read
in order with ``grab()`` (demux + decode, no colour conversion) and converted with ``retrieve()`` only
for the frames kept: seeking (``CAP_PROP_POS_FRAMES``) is unreliable for codecs without an index (AVI
without idx1, MJPEG streams), and reading in order is what MegaDetector's own video tools do
(megadetector/detection/video_utils.py).

Answer (one entry in ``images``, as megadetector/detection/process_video.py writes a video): ``file`` (the
clip), ``frame_rate``, ``frames_processed`` (sorted frame numbers), ``detections`` with a ``frame_number``
each, ``failure``. Our additions, which MegaDetector's readers ignore: ``frame_time_s`` on each detection,
``frames`` (one per sampled frame: ``frame_number``, ``time_s``, ``night``, ``jpeg`` base64 of the frame
for the first frame and every frame with a detection, else null), and ``video`` (``frame_count``,
``duration_s``, ``width``, ``height``, ``codec``, ``truncated``).

Failures (permanent for the bytes; ``"<code>: <detail>"``): ``empty_video``, ``unreadable_video`` (OpenCV
cannot open or decode it: an unknown codec, a corrupt or cut-off file), ``video_too_long`` (over
SCORING_VIDEO_MAX_DURATION_S), ``too_many_pixels`` (a frame over SCORING_MAX_PIXELS). A clip whose
container promises more frames than can be read (cut off in transfer) is scored on the frames read and says
``video.truncated``: the animal in its first seconds still alerts.
"""

from __future__ import annotations

import base64
import math
import os
import tempfile
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from scoring.errors import TOO_MANY_PIXELS, Failure
from scoring.preprocess import PreparedImage, apply_clahe, is_night, resize_for_model
from scoring.settings import ScoringSettings

EMPTY_VIDEO = "empty_video"
UNREADABLE_VIDEO = "unreadable_video"
VIDEO_TOO_LONG = "video_too_long"
VIDEO_FAILURE_CODES = (EMPTY_VIDEO, UNREADABLE_VIDEO, VIDEO_TOO_LONG, TOO_MANY_PIXELS)

# Frame rates a camera can write; anything else in a header (0, NaN, 1000 from a broken AVI) means "unknown".
_FPS_RANGE = (0.5, 240.0)
_DEFAULT_FPS = 30.0
_JPEG_QUALITY = 88


class VideoFailure(Failure):
    """A permanent problem with the clip (one of VIDEO_FAILURE_CODES)."""

    codes = VIDEO_FAILURE_CODES


@dataclass(slots=True)
class Frame:
    number: int
    time_s: float
    image: np.ndarray  # BGR uint8, as decoded


@dataclass
class Sampled:
    frames: list[Frame]
    frame_rate: float
    frame_count: int  # as the container declares it (0: unknown)
    frames_read: int
    width: int
    height: int
    codec: str
    truncated: bool
    decode_ms: float
    notes: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        count = max(self.frame_count, self.frames_read)
        return round(count / self.frame_rate, 3) if self.frame_rate else 0.0


def plan(frame_count: int, fps: float, every_s: float, max_frames: int) -> list[int]:
    """The frame numbers to keep: 0, every ``every_s`` seconds, the last; thinned evenly to ``max_frames``
    (first and last kept)."""
    if frame_count <= 0:
        return []
    step = max(1, round(every_s * fps))
    wanted = sorted(set(range(0, frame_count, step)) | {frame_count - 1})
    if len(wanted) <= max_frames:
        return wanted
    if max_frames <= 1:
        return [0]
    inner = wanted[1:-1]
    keep = max_frames - 2
    picked = [inner[math.floor(i * len(inner) / keep)] for i in range(keep)] if keep > 0 else []
    return [wanted[0], *picked, wanted[-1]]


def _codec(cap: cv2.VideoCapture) -> str:
    code = int(cap.get(cv2.CAP_PROP_FOURCC) or 0)
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text.strip("\x00 ") if text.isprintable() else f"0x{code:08x}"


def sample(data: bytes, settings: ScoringSettings, *, every_s: float, max_frames: int) -> Sampled:
    """Decode ``data`` (a clip) and keep the planned frames; raise VideoFailure with the reason."""
    if not data:
        raise VideoFailure(EMPTY_VIDEO, "the clip has 0 bytes")
    started = time.perf_counter()
    # OpenCV reads videos from a path (its FFmpeg backend has no memory source); the file lives only for
    # this call, in the container's tmpfs or disk.
    fd, path = tempfile.mkstemp(prefix="clip-", suffix=".bin")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        try:
            return _read(cap, settings, every_s=every_s, max_frames=max_frames, started=started)
        finally:
            cap.release()
    finally:
        os.unlink(path)


def _read(cap, settings: ScoringSettings, *, every_s: float, max_frames: int, started: float) -> Sampled:
    if not cap.isOpened():
        raise VideoFailure(UNREADABLE_VIDEO, "OpenCV cannot open the clip (unknown container, or corrupt)")
    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    notes = []
    if not (_FPS_RANGE[0] <= fps <= _FPS_RANGE[1]) or math.isnan(fps):
        notes.append(f"frame rate {fps!r} in the header is not plausible; {_DEFAULT_FPS:g} assumed")
        fps = _DEFAULT_FPS
    declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    declared = declared if declared > 0 else 0
    width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
    height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    if width * height > settings.max_pixels:
        raise VideoFailure(
            TOO_MANY_PIXELS, f"{width}x{height} frames, limit {settings.max_pixels} (SCORING_MAX_PIXELS)"
        )
    if declared and declared / fps > settings.video_max_duration_s:
        raise VideoFailure(
            VIDEO_TOO_LONG,
            f"{declared / fps:.1f} s, limit {settings.video_max_duration_s:g} s "
            "(SCORING_VIDEO_MAX_DURATION_S)",
        )
    codec = _codec(cap)
    # Without a frame count (a stream), sample as if the clip were as long as the limit; the last frame
    # read is added at the end.
    count = declared or int(settings.video_max_duration_s * fps)
    wanted = plan(count, fps, every_s, max_frames)
    wanted_set = set(wanted)
    frames: list[Frame] = []
    last: Frame | None = None
    number = -1
    limit = int(settings.video_max_duration_s * fps) + 1
    while True:
        if not cap.grab():
            break
        number += 1
        if number >= limit:
            raise VideoFailure(
                VIDEO_TOO_LONG,
                f"more than {settings.video_max_duration_s:g} s of frames (SCORING_VIDEO_MAX_DURATION_S)",
            )
        keep = number in wanted_set
        if keep or (not declared or number >= count - 2):
            ok, img = cap.retrieve()
            if not ok or img is None:
                continue
            frame = Frame(number, round(number / fps, 3), img)
            if keep and len(frames) < max_frames:
                frames.append(frame)
            last = frame
    frames_read = number + 1
    if frames_read == 0 or last is None:
        raise VideoFailure(
            UNREADABLE_VIDEO, f"no frame can be decoded (codec {codec or 'unknown'}; corrupt or cut off)"
        )
    if not frames or frames[-1].number != last.number:
        if len(frames) >= max_frames:
            frames[-1] = last
        else:
            frames.append(last)
    truncated = bool(declared) and frames_read < declared - 1
    if truncated:
        notes.append(f"read {frames_read} of {declared} frames the container declares (cut off)")
    h, w = frames[0].image.shape[:2]
    return Sampled(
        frames=frames,
        frame_rate=round(fps, 3),
        frame_count=declared,
        frames_read=frames_read,
        width=w or width,
        height=h or height,
        codec=codec,
        truncated=truncated,
        decode_ms=(time.perf_counter() - started) * 1000.0,
        notes=notes,
    )


def prepare_frame(frame: Frame, name: str, settings: ScoringSettings) -> PreparedImage:
    """A decoded frame -> what the backend sees (the same steps as a photo after decoding)."""
    t0 = time.perf_counter()
    img = frame.image
    height, width = img.shape[:2]
    night = is_night(img, settings)
    img = resize_for_model(img, settings)
    if settings.clahe == "always" or (settings.clahe == "night" and night):
        img = apply_clahe(img, settings.clahe_clip_limit, settings.clahe_tile)
    return PreparedImage(
        file=name,
        image=img,
        width=width,
        height=height,
        night=night,
        decode_ms=0.0,
        preprocess_ms=(time.perf_counter() - t0) * 1000.0,
    )


def frame_filename(clip: str, number: int) -> str:
    """``<clip>/frame000123.jpg``: the frame file name MegaDetector's video tools use (video_utils.py)."""
    return f"{clip}/frame{number:06d}.jpg"


def jpeg_b64(img: np.ndarray) -> str:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
    if not ok:  # pragma: no cover - OpenCV encodes any BGR uint8 array
        raise RuntimeError("JPEG encoding failed")
    return base64.b64encode(buf.tobytes()).decode("ascii")

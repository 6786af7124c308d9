"""Inbound email: from a SendGrid Inbound Parse POST to stored images and queued process-image work.

Where each decision lives:
- ``signature.py``       is this POST really from SendGrid (ECDSA P-256 signed webhook)?
- ``parse_sendgrid.py``  what the POST says (both SendGrid modes) -> ``InboundEmail``
- ``identify.py``        which park and camera sent it (addresses, per-brand subject/body patterns)
- ``images.py``          is an attachment a usable photo; its dimensions, EXIF time, GPS, blob name
- ``ingest.py``          the orchestration: record, store, enqueue, idempotently (also used by release)
- ``reasons.py``         the recorded reasons (a permanently bad email is recorded and answered 200)
- ``sendgrid_payload.py`` builds real-format SendGrid POSTs (tests, benchmarks, `trapalert simulate`)
"""

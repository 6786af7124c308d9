"""Inbound email: from a SendGrid Inbound Parse POST to stored images and queued process-image work.

Where each decision lives:
- ``signature.py``       is this POST really from SendGrid (ECDSA P-256 signed webhook)?
- ``parse_sendgrid.py``  what the POST says (both SendGrid modes) -> ``InboundEmail``
- ``patterns.py``        every operator or brand pattern runs here: the ``regex`` module with a timeout
- ``brands/``            one plugin per camera brand: camera id, serial, time, battery, SD, photos
- ``identify.py``        is it authentic (DKIM/SPF alignment or the camera's token), and which camera is
                         each photo (the proofs: own sender, token, serial); else the quarantine reason
- ``links.py``           photos given as links: fetched by process-image from the brand's hosts only
- ``view_signature.py``  a small signature of each photo's view (theft and tamper watch)
- ``images.py``          is an attachment a usable photo; its dimensions, EXIF time, GPS, blob name
- ``ingest.py``          the orchestration: record, store, enqueue, idempotently (also used by release)
- ``reasons.py``         the recorded reasons (a permanently bad email is recorded and answered 200)
- ``sendgrid_payload.py`` builds real-format SendGrid POSTs (tests, benchmarks, `trapalert simulate`)
"""

"""TrapAlert scoring service: a camera-trap detector behind HTTP, answering in the MegaDetector format.

Run it with ``python -m scoring --host 127.0.0.1 --port 8080``; configure it with ``SCORING_*`` variables
(scoring.settings). See docs/scoring.md.
"""

__version__ = "0.1.0"

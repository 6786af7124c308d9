"""Pure decisions, no I/O: alert rules (rules.py), bursts and alerts (events.py), static false positives
(suppression.py). Unit-tested without services; the handlers feed them rows and apply what they decide."""

"""Operations: poison records (list, replay, purge), ops notifications, status, metrics and the ops page.

The CLI (functions/cli/poison.py) and the admin HTTP API (functions/ops/api.py) share this logic.
"""

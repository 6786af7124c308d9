"""Operations: poison records (list, replay, purge), ops notifications, status, metrics and the ops sections
of the park console's admin page (functions/ops/page.py).

The CLI (functions/cli/poison.py), the console (functions/console/, people) and the JSON admin API
(functions/ops/api.py, master key, automation) share this logic.
"""

"""Failed attempts and poisoned messages in PostgreSQL: every query about ``message_failures`` and
``poison_records`` lives here. The middleware records failures and invalid messages, the poison monitors
record poisoned messages, ops (functions/ops/poison.py: the CLI and the admin API) list, show, replay and
purge them.

Statuses of a record: ``poisoned`` (waiting for ops), ``invalid`` (the message itself is bad), ``replayed``
(its original body went back on its source queue through the outbox, key ``replay:<id>``), ``purged``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal, get_args

from ..db import Database
from .outbox import Outbox, OutboxMessage

PoisonStatus = Literal["poisoned", "invalid", "replayed", "purged"]
STATUSES: tuple[str, ...] = get_args(PoisonStatus)
REPLAYABLE: tuple[str, ...] = ("poisoned", "invalid")

SUMMARY_COLUMNS = (
    "id",
    "queue",
    "message_id",
    "status",
    "dequeue_count",
    "inserted_at",
    "recorded_at",
    "last_error",
    "correlation_id",
    "replayed_at",
    "replay_message_id",
)


def replay_key(record_id: int) -> str:
    return f"replay:{record_id}"


def replay_scope(record_id: int) -> str:
    return f"poison:{record_id}"


def _text(value: str) -> str:
    return value.replace("\x00", "")  # PostgreSQL text cannot hold NUL


class PoisonRepository:
    def __init__(self, db: Database):
        self.db = db

    # -- the middleware -----------------------------------------------------------------------------
    def record_failure(
        self, queue: str, message_id: str, dequeue_count: int | None, error: str, correlation_id: str | None
    ) -> None:
        """One failed attempt of a queue handler (found again by the monitor through its correlation id)."""
        self.db.execute(
            "INSERT INTO message_failures (queue, message_id, dequeue_count, error, correlation_id) "
            "VALUES (%s, %s, %s, %s, %s)",
            (queue, message_id, dequeue_count, _text(error)[:4000], correlation_id),
        )

    def record_invalid(
        self, queue: str, message_id: str, body: str, dequeue_count: int | None, inserted_at: Any, reason: str
    ) -> bool:
        """A message that can never be processed, recorded at once as ``invalid``; False if known already."""
        row = self.db.fetchone(
            "INSERT INTO poison_records (queue, message_id, body, dequeue_count, inserted_at, last_error, "
            "status) VALUES (%s, %s, %s, %s, %s, %s, 'invalid') ON CONFLICT (queue, message_id) DO NOTHING "
            "RETURNING id",
            (queue, message_id, _text(body), dequeue_count, inserted_at, f"invalid message: {_text(reason)}"),
        )
        return row is not None

    # -- the poison monitors ------------------------------------------------------------------------
    def record_poisoned(
        self,
        source: str,
        message_id: str,
        body: str,
        dequeue_count: int | None,
        inserted_at: Any,
        correlation_id: str | None,
    ) -> dict[str, Any] | None:
        """One record per poisoned message (None when this message id is recorded already). The attempts
        and the last error come from the failures recorded for its correlation id in the last 7 days."""
        return self.db.fetchone(
            """
            WITH failures AS (
                SELECT f.error, f.dequeue_count, f.failed_at FROM message_failures f
                WHERE %(cid)s::uuid IS NOT NULL AND f.correlation_id = %(cid)s::uuid AND f.queue = %(source)s
                  AND f.failed_at > now() - interval '7 days'),
            last_error AS (SELECT error FROM failures ORDER BY failed_at DESC LIMIT 1)
            INSERT INTO poison_records (queue, message_id, body, dequeue_count, inserted_at, last_error,
                                        correlation_id)
            VALUES (%(source)s, %(mid)s, %(body)s,
                    -- attempts: the host's redeliveries, or the retries the middleware scheduled
                    coalesce((SELECT greatest(max(dequeue_count), count(*)) FROM failures), %(dc)s), %(ins)s,
                    coalesce((SELECT error FROM last_error),
                             CASE WHEN %(cid)s::uuid IS NULL
                                  THEN 'no failure recorded: the message did not parse; see the host logs'
                                  ELSE 'no failure recorded for this correlation id; see the host logs' END),
                    %(cid)s::uuid)
            ON CONFLICT (queue, message_id) DO NOTHING
            RETURNING *""",
            {
                "source": source,
                "mid": message_id,
                "body": _text(body),
                "dc": dequeue_count,
                "ins": inserted_at,
                "cid": correlation_id,
            },
        )

    # -- ops: reading -------------------------------------------------------------------------------
    def list(self, *, queue: str | None, status: str | None, limit: int) -> list[dict[str, Any]]:
        """Newest first, without bodies."""
        return self.db.fetchall(
            f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM poison_records "
            "WHERE (%(q)s::text IS NULL OR queue = %(q)s) AND (%(s)s::text IS NULL OR status = %(s)s) "
            "ORDER BY recorded_at DESC, id DESC LIMIT %(n)s",
            {"q": queue, "s": status, "n": limit},
        )

    def get(self, record_id: int) -> dict[str, Any] | None:
        return self.db.fetchone("SELECT * FROM poison_records WHERE id = %s", (record_id,))

    def failures_of(self, correlation_id: Any, limit: int = 50) -> list[dict[str, Any]]:
        """The recorded failed attempts of one message, newest first."""
        return self.db.fetchall(
            "SELECT queue, message_id, dequeue_count, error, failed_at FROM message_failures "
            "WHERE correlation_id = %s ORDER BY failed_at DESC LIMIT %s",
            (correlation_id, limit),
        )

    def counts(self) -> dict[str, dict[str, int]]:
        """{queue: {status: count}} over every record."""
        out: dict[str, dict[str, int]] = {}
        for r in self.db.fetchall(
            "SELECT queue, status, count(*) AS n FROM poison_records GROUP BY queue, status"
        ):
            out.setdefault(r["queue"], {})[r["status"]] = int(r["n"])
        return out

    # -- ops: replay (through the one outbox) -------------------------------------------------------
    def mark_replayed(
        self, record_id: int, *, statuses: tuple[str, ...] = REPLAYABLE
    ) -> dict[str, Any] | None:
        """In one transaction: lock the record; when its status is one of ``statuses``, mark it replayed and
        write its original body to the outbox (key ``replay:<id>``, scope ``poison:<id>``). Returns the
        record as it was (``status`` before) and ``marked``; None when there is no such record."""
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT id, queue, body, status, correlation_id FROM poison_records WHERE id = %s FOR UPDATE",
                (record_id,),
            )
            row = cur.fetchone()
            if row is None:
                return None
            row = dict(row)
            row["marked"] = row["status"] in statuses
            if row["marked"]:
                self._mark_locked(cur, row)
        return row

    def mark_next_replayed(self, *, queue: str | None, skip: list[int]) -> dict[str, Any] | None:
        """Like :meth:`mark_replayed` for the oldest ``poisoned`` record (of ``queue``) that no other replayer
        holds (SKIP LOCKED); None when there is none."""
        with self.db.transaction() as cur:
            cur.execute(
                "SELECT id, queue, body, status, correlation_id FROM poison_records "
                "WHERE status = 'poisoned' AND (%(q)s::text IS NULL OR queue = %(q)s) "
                "AND NOT (id = ANY(%(skip)s)) ORDER BY recorded_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
                {"q": queue, "skip": skip or [0]},
            )
            row = cur.fetchone()
            if row is None:
                return None
            row = dict(row)
            row["marked"] = True
            self._mark_locked(cur, row)
        return row

    @staticmethod
    def _mark_locked(cur, row: dict[str, Any]) -> None:
        cur.execute(
            "UPDATE poison_records SET status = 'replayed', replayed_at = now(), replay_message_id = NULL "
            "WHERE id = %s",
            (row["id"],),
        )
        message = OutboxMessage(
            queue=row["queue"], message=row["body"], key=replay_key(row["id"]), scope=replay_scope(row["id"])
        )
        Outbox.add(cur, message)  # the original body, verbatim; its key makes a second replay a no-op

    def note_replay_sent(self, record_id: int) -> str | None:
        """Copy the queue message id of the record's sent replay onto the record; None while it is unsent."""
        row = self.db.fetchone(
            "UPDATE poison_records p SET replay_message_id = o.message_id FROM outbox o "
            "WHERE p.id = %s AND o.key = %s AND o.sent_at IS NOT NULL RETURNING p.replay_message_id",
            (record_id, replay_key(record_id)),
        )
        return row["replay_message_id"] if row else None

    def unsent_replays(self, queue: str | None = None) -> list[dict[str, Any]]:
        """Records marked replayed whose message is still waiting in the outbox (its flush failed)."""
        return self.db.fetchall(
            "SELECT p.id, p.queue, p.correlation_id FROM poison_records p JOIN outbox o "
            "ON o.key = 'replay:' || p.id WHERE p.status = 'replayed' AND o.sent_at IS NULL "
            "AND (%(q)s::text IS NULL OR p.queue = %(q)s) ORDER BY p.id",
            {"q": queue},
        )

    # -- ops: purge ---------------------------------------------------------------------------------
    def purge(self, older_than: timedelta, queue: str | None) -> list[dict[str, Any]]:
        """Mark poisoned/invalid records recorded before now - ``older_than`` as purged; return them."""
        return self.db.fetchall(
            "UPDATE poison_records SET status = 'purged' "
            "WHERE status IN ('poisoned', 'invalid') AND recorded_at < now() - %(age)s "
            "AND (%(q)s::text IS NULL OR queue = %(q)s) RETURNING id, queue, message_id",
            {"age": older_than, "q": queue},
        )

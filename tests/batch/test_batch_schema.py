"""functions/statuses.py's batch Literals say the same as migration 0014's CHECK constraints; the bulk lane's
queue and message."""

from __future__ import annotations

import json
import typing

import pytest

from functions import names, statuses
from functions.messages import BulkImage, InvalidMessage, parse_message
from tests.foundation.test_statuses import check_values


@pytest.mark.parametrize(
    "literal, table, column",
    [
        (statuses.BatchPurpose, "batches", "purpose"),
        (statuses.BatchState, "batches", "state"),
        (statuses.BatchItemState, "batch_items", "state"),
    ],
)
def test_literal_matches_the_check_constraint(literal, table, column):
    assert set(typing.get_args(literal)) == check_values(table, column)


def test_the_bulk_queue_is_a_work_queue_with_its_poison_queues():
    assert names.BULK_IMAGE_QUEUE in names.WORK_QUEUES
    assert "process-image-bulk-poison" in names.POISON_QUEUES
    assert "process-image-bulk-poison-poison" in names.POISON_POISON_QUEUES


def test_bulk_image_messages_parse_and_refuse_unknown_purposes():
    fields = {"image_id": 0, "blob_name": "b", "park_id": 2, "purpose": "batch", "batch_id": 9, "item_id": 4}
    body = json.dumps({"schema_version": 1, **fields})
    msg = parse_message(BulkImage, body)
    assert (msg.purpose, msg.batch_id, msg.item_id, msg.camera_id) == ("batch", 9, 4, None)
    with pytest.raises(InvalidMessage):
        parse_message(BulkImage, body.replace('"batch"', '"live"'))

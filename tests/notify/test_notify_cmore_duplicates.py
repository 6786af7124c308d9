"""CMORE and issue 13's duplicate window: the reference is written, but cannot be looked up.

CMORE, as the open-source integration talks to it (PADAS gundi-integration-cmore,
``app/datasource/client.py``), has no endpoint to find a message by its content, so a create whose answer
was lost is made again. These tests pin down what the adapter does about it: the reference is in every
event's description, and the second create is logged with it.
"""

from __future__ import annotations

import logging

import pytest

from functions.notify import TransientDeliveryError, build_notifier, deliver
from tests.notify.test_notify_cmore import cmore_channel

EVENTS = "/za/WebAPI/api/v2/messages/events"


def test_an_ambiguous_create_is_made_again_and_logged_with_its_reference(fake_cmore, secrets, notice, caplog):
    notifier = build_notifier(cmore_channel(fake_cmore, timeout_s=0.5), secrets)
    fake_cmore.delay_next(1, seconds=1.2, path=EVENTS)  # carried out after the client gave up
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(notice)
    assert "timed out" in str(info.value)
    partial = info.value.partial
    assert partial is not None and partial.state == {"ambiguous_creates": 1}

    fake_cmore.wait_for(lambda reqs: any(r.path == EVENTS for r in reqs), timeout=5)
    caplog.set_level(logging.WARNING, logger="functions.notify.cmore")
    result = deliver(notifier, notice, partial=partial)

    # the window stays open: two CMORE events, both naming the same delivery reference
    assert len(fake_cmore.events) == 2
    assert all(e["description"].endswith("TrapAlert ref TA42C21") for e in fake_cmore.events.values())
    assert result.external_id and "TA42C21" in caplog.text and "duplicate" in caplog.text


def test_a_refused_or_answered_failure_is_not_ambiguous(fake_cmore, secrets, notice):
    notifier = build_notifier(cmore_channel(fake_cmore), secrets)
    fake_cmore.fail_next(1, status=503, path=EVENTS)
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(notice)
    assert info.value.partial is None
    fake_cmore.fail_next(1, status=504, path=EVENTS)  # a gateway: CMORE may have committed
    with pytest.raises(TransientDeliveryError) as info:
        notifier.send_new(notice)
    assert info.value.partial.state == {"ambiguous_creates": 1}

"""Webhook signatures: only the secret's holder, recently, with these exact bytes."""

import uuid
from decimal import Decimal

import pytest

from engine.domain.errors import InvalidSignature, ValidationError
from engine.payments.webhook import PaymentEvent, encode_event, parse_event, sign, verify_signature

SECRET = "s3cret"
BODY = b'{"id":"evt_1"}'


def test_a_fresh_signature_verifies():
    verify_signature(SECRET, sign(SECRET, BODY, 1000), BODY, now=1010, tolerance=300)


@pytest.mark.parametrize("header", [
    None, "", "garbage", "t=abc,v1=00", "v1=" + "0" * 64,
    sign("wrong-secret", BODY, 1000),
    sign(SECRET, BODY + b" ", 1000),
    sign(SECRET, BODY, 1000).replace("t=1000", "t=1001"),   # timestamp not the one signed
])
def test_forged_or_malformed_signatures_are_refused(header):
    with pytest.raises(InvalidSignature):
        verify_signature(SECRET, header, BODY, now=1000, tolerance=300)


def test_stale_and_future_timestamps_are_refused():
    with pytest.raises(InvalidSignature):
        verify_signature(SECRET, sign(SECRET, BODY, 1000), BODY, now=1301, tolerance=300)
    with pytest.raises(InvalidSignature):
        verify_signature(SECRET, sign(SECRET, BODY, 1400), BODY, now=1000, tolerance=300)


def test_any_of_several_v1_values_may_match_during_secret_rotation():
    good = sign(SECRET, BODY, 1000).split("v1=")[1]
    verify_signature(SECRET, f"t=1000,v1={'0' * 64},v1={good}", BODY, now=1000, tolerance=300)


def test_no_secret_configured_refuses_everything():
    with pytest.raises(InvalidSignature):
        verify_signature(None, sign(SECRET, BODY, 1000), BODY, now=1000, tolerance=300)


def test_events_round_trip_exactly():
    ev = PaymentEvent("evt_x", "payment.succeeded", uuid.uuid4(), "sbx_1", Decimal("8100.10"), "RUB")
    assert parse_event(encode_event(ev, created=1)) == ev


@pytest.mark.parametrize("body", [b"", b"[]", b'{"id":"e","type":"payment.stolen","data":{}}',
                                  b'{"id":"e","type":"payment.succeeded","data":{"orderId":"x","amount":"1","currency":"RUB"}}',
                                  b'{"id":"e","type":"payment.succeeded","data":{"orderId":"' + str(uuid.uuid4()).encode()
                                  + b'","amount":"-1","currency":"RUB"}}'])
def test_malformed_events_are_validation_errors(body):
    with pytest.raises(ValidationError):
        parse_event(body)

"""FastSchema loads a request body exactly as marshmallow's own Schema._deserialize does:
the same result for a valid body, the same errors and valid_data for an invalid one. The
bodies are the benchmark's real orders and thousands of seeded mutations of them."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from marshmallow import Schema, ValidationError, fields

from bench import corpus
from schemas import initials, me_order, oneclick
from schemas.fast_schema import FastSchema

MUTATIONS_PER_BODY = 1500
UUID = "9b2f6c1e-4a57-4f0e-9d0c-2f7a1f0c3b11"
VALUES: list[Any] = [
    None, 0, 1, -5, 101, 15, 1.5, 2.0**60, True, False, "", "x", "US", "usd", "USD",
    "a\x00b", "x" * 300, "buyer@example.com", "not-an-email", "en-US", "sv-SE", "purchase",
    "renew", "upgrade", "eyezy_app_com", "a.b", UUID, "5cb804811d41c82b5c518ea8",
    "198.51.100.1", "010.1.1.1", "https://x.example/r", "ftp://x", [], [{}], {}, {"a": 1},
    {"k": [1]}, "2026-01-01T00:00:00Z", "premium_1m", "mail",
]  # fmt: skip


def mutate(value: Any, rng: random.Random) -> Any:
    value = copy.deepcopy(value)
    for _ in range(rng.randint(1, 3)):
        if isinstance(value, dict):
            keys = list(value)
            roll = rng.random()
            if roll < 0.25 and keys:
                value.pop(rng.choice(keys))
            elif roll < 0.35:
                value[rng.choice(["extra", "Product", "metadata", "x"])] = rng.choice(VALUES)
            elif keys:
                key = rng.choice(keys)
                if isinstance(value[key], dict | list) and rng.random() < 0.6:
                    value[key] = mutate(value[key], rng)
                else:
                    value[key] = rng.choice(VALUES)
        elif isinstance(value, list):
            if value and rng.random() < 0.5:
                index = rng.randrange(len(value))
                item = value[index]
                value[index] = mutate(item, rng) if isinstance(item, dict) else rng.choice(VALUES)
            else:
                value.append(rng.choice([*VALUES, {"action": "renew", "subscriptionId": UUID}]))
    return value


def outcome(schema: Schema, body: Any) -> tuple[Any, ...]:
    try:
        return ("loaded", schema.load(copy.deepcopy(body)))
    except ValidationError as exc:
        return ("refused", exc.messages, exc.valid_data)


def marshmallow_outcome(schema: Schema, body: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patched:
        patched.setattr(FastSchema, "_deserialize", Schema._deserialize)
        return outcome(schema, body)


def bodies() -> Iterator[tuple[str, Schema, dict[str, Any]]]:
    initials_body = orjson.loads(corpus.initials_request(5, "fastschema").body)
    oneclick_body = orjson.loads(corpus.oneclick_request(5, "fastschema").body)
    me_body = orjson.loads(corpus.me_order_request(5, "fastschema", ["token"]).body)
    yield "initials", initials.initials_url_request_schema, initials_body
    yield (
        "initials with coupon and buyer id",
        initials.initials_url_request_schema,
        dict(
            initials_body,
            coupon="SAVE10",
            autoChargeStatus=True,
            buyer=dict(initials_body["buyer"], id="b-1"),
        ),
    )
    yield "oneclick", oneclick.ONECLICK_REQUEST, oneclick_body
    yield (
        "oneclick upgrade",
        oneclick.ONECLICK_REQUEST,
        dict(
            oneclick_body,
            products=[
                {"action": "upgrade", "productCode": "p", "subscriptionId": UUID},
                {"action": "purchase", "productCode": "q"},
            ],
        ),
    )
    yield "me/order", me_order.ME_ORDER_REQUEST, me_body
    yield (
        "me/order with address",
        me_order.ME_ORDER_REQUEST,
        dict(
            me_body,
            address={"first_name": "Ann", "city": "Umea", "country_code": "se", "street": None},
            start_date="2026-01-01T00:00:00Z",
            invoice_delivery_method="mail",
        ),
    )


@pytest.mark.parametrize(("name", "schema", "body"), list(bodies()), ids=lambda v: None)
def test_a_load_is_marshmallow_s_own_for_valid_and_invalid_bodies(
    name: str, schema: Schema, body: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert outcome(schema, body)[0] == "loaded", name  # the real order itself
    rng = random.Random(name)
    refused = 0
    for _ in range(MUTATIONS_PER_BODY):
        mutated = mutate(body, rng)
        fast = outcome(schema, mutated)
        assert fast == marshmallow_outcome(schema, mutated, monkeypatch), mutated
        refused += fast[0] == "refused"
    # Both kinds were compared, many of each.
    assert MUTATIONS_PER_BODY * 0.2 < refused < MUTATIONS_PER_BODY * 0.95


class Hooked(fields.String):
    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kw: Any) -> Any:
        loaded = super().deserialize(value, attr, data, **kw)
        return loaded.upper() if isinstance(loaded, str) else loaded


class Example(FastSchema):
    plain = fields.String(required=True)
    renamed = fields.Integer(data_key="Renamed", load_default=lambda: 7)
    hooked = Hooked(load_default=None, allow_none=True)
    nullable = fields.String(allow_none=True, load_default="absent")


def test_what_the_fast_loop_does_not_cover_goes_through_marshmallow() -> None:
    schema = Example()
    assert schema.load({"plain": "a", "hooked": "b"}) == {
        "plain": "a",
        "renamed": 7,
        "hooked": "B",  # a field overriding deserialize() is called as marshmallow does
        "nullable": "absent",
    }
    assert schema.load({"plain": "a", "Renamed": 3, "nullable": None}) == {
        "plain": "a",
        "renamed": 3,
        "hooked": None,
        "nullable": None,
    }
    with pytest.raises(ValidationError) as refused:
        schema.load({"Renamed": "x", "unknown": 1})
    assert refused.value.messages == {
        "plain": ["Missing data for required field."],
        "Renamed": ["Not a valid integer."],
        "unknown": ["Unknown field."],
    }
    assert schema.load([{"plain": "a"}], many=True) == [
        {"plain": "a", "renamed": 7, "hooked": None, "nullable": "absent"}
    ]
    assert schema.load({}, partial=True) == {}  # partial: marshmallow skips the defaults


# Review of the fast loop: what marshmallow does for a field left out, and partial=False.


class WithDefault(FastSchema):
    plain = fields.String(required=True)
    shouted = Hooked(load_default="quiet")


def test_a_left_out_field_overriding_deserialize_is_loaded_by_its_deserialize(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = {"plain": "a"}
    expected = marshmallow_outcome(WithDefault(), body, monkeypatch)
    assert expected == ("loaded", {"plain": "a", "shouted": "QUIET"})
    assert outcome(WithDefault(), body) == expected


class Inner(FastSchema):
    name = fields.String(required=True)


class Outer(FastSchema):
    inner = fields.Nested(Inner(partial=True), required=True)


def test_partial_false_is_handed_to_nested_schemas_as_marshmallow_hands_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def load(schema: Schema, body: Any) -> tuple[Any, ...]:
        try:
            return ("loaded", schema.load(copy.deepcopy(body), partial=False))
        except ValidationError as exc:
            return ("refused", exc.messages, exc.valid_data)

    body = {"inner": {}}
    with monkeypatch.context() as patched:
        patched.setattr(FastSchema, "_deserialize", Schema._deserialize)
        expected = load(Outer(), body)
    # partial=False overrides the nested schema's own partial=True: name is required.
    assert expected[0] == "refused"
    assert load(Outer(), body) == expected


class Vetted(fields.String):
    """A field composing its validators its own way (marshmallow's _validate_all hook)."""

    @property
    def _validate_all(self) -> Any:
        def vet(value: Any) -> None:
            if value == "bad":
                raise ValidationError("vetoed")

        return vet


class WithVetted(FastSchema):
    name = Vetted(required=True)


def test_a_field_overriding_validate_all_is_validated_by_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = {"name": "bad"}
    expected = marshmallow_outcome(WithVetted(), body, monkeypatch)
    assert expected == ("refused", {"name": ["vetoed"]}, {})
    assert outcome(WithVetted(), body) == expected

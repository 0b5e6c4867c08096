"""The request schema alone (no server): the fields of each action and rule 1."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from marshmallow import ValidationError

from schemas.common import flatten_errors
from schemas.oneclick import ONECLICK_REQUEST, to_oneclick_request
from service.domain.oneclick import OneclickItemRequest
from tests.oneclick.conftest import ANN_BASIC_SUB, ANN_PREMIUM_SUB, body_for


def errors_of(body: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        ONECLICK_REQUEST.load(body)
    return flatten_errors(caught.value.messages)


def test_loads_every_action_into_the_typed_command() -> None:
    loaded = ONECLICK_REQUEST.load(
        body_for(
            {"action": "purchase", "productCode": "report_pdf"},
            {"action": "upgrade", "subscriptionId": ANN_BASIC_SUB, "productCode": "premium_1m"},
            {"action": "renew", "subscriptionId": ANN_PREMIUM_SUB},
            metaData={"campaign": "spring", "n": 1},
        )
    )
    command = to_oneclick_request(loaded)
    assert command.is_mobile is False
    assert command.charge_method_id == "cm_ann_visa"
    assert command.currency is None
    assert command.metadata == {"campaign": "spring", "n": 1}
    assert command.products == (
        OneclickItemRequest("purchase", "report_pdf", None),
        OneclickItemRequest("upgrade", "premium_1m", UUID(ANN_BASIC_SUB)),
        OneclickItemRequest("renew", None, UUID(ANN_PREMIUM_SUB)),
    )


@pytest.mark.parametrize(
    ("item", "field", "text"),
    [
        ({"action": "purchase"}, "productCode", "required for action 'purchase'"),
        (
            {"action": "purchase", "productCode": "report_pdf", "subscriptionId": ANN_BASIC_SUB},
            "subscriptionId",
            "not allowed for action 'purchase'",
        ),
        ({"action": "upgrade", "productCode": "premium_1m"}, "subscriptionId", "required"),
        ({"action": "upgrade", "subscriptionId": ANN_BASIC_SUB}, "productCode", "required"),
        ({"action": "downgrade", "productCode": "basic_1m"}, "subscriptionId", "required"),
        ({"action": "downgrade", "subscriptionId": ANN_BASIC_SUB}, "productCode", "required"),
        ({"action": "renew"}, "subscriptionId", "required for action 'renew'"),
        ({"action": "cancel", "productCode": "basic_1m"}, "action", "must be one of"),
        ({"productCode": "basic_1m"}, "action", "required"),
        ({"action": "renew", "subscriptionId": "not-a-uuid"}, "subscriptionId", "UUID"),
        ({"action": "renew", "subscriptionId": 12345}, "subscriptionId", "UUID string"),
        (
            {"action": "renew", "subscriptionId": f"urn:uuid:{ANN_BASIC_SUB}"},
            "subscriptionId",
            "8-4",
        ),
        (
            {"action": "renew", "subscriptionId": ANN_BASIC_SUB.replace("-", "")},
            "subscriptionId",
            "8-4",
        ),
        ({"action": "renew", "subscriptionId": "{" + ANN_BASIC_SUB + "}"}, "subscriptionId", "8-4"),
        ({"action": "purchase", "productCode": 7}, "productCode", "must be a string"),
        ({"action": "purchase", "productCode": ""}, "productCode", "Length"),
        ({"action": "purchase", "productCode": "basic_1m", "qty": 2}, "qty", "Unknown field"),
        # null is absent: still required where the action needs it.
        ({"action": "purchase", "productCode": None}, "productCode", "required"),
        ({"action": "renew", "subscriptionId": None}, "subscriptionId", "required"),
    ],
)
def test_a_field_that_does_not_fit_the_action_is_named_by_its_item_path(
    item: dict[str, Any], field: str, text: str
) -> None:
    errors = errors_of(body_for({"action": "purchase", "productCode": "report_pdf"}, item))
    path = f"products[1].{field}"
    assert list(errors) == [path]
    assert text.lower() in " ".join(errors[path]).lower()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"isMobile": None}, "isMobile"),
        ({"isMobile": "true"}, "isMobile"),
        ({"isMobile": 1}, "isMobile"),
        ({"chargeMethodId": 42}, "chargeMethodId"),
        ({"chargeMethodId": ""}, "chargeMethodId"),
        ({"currency": "usd"}, "currency"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": 840}, "currency"),
        ({"metaData": {"nested": {"a": 1}}}, "metaData.nested"),
        # Names marshmallow uses inside its own errors are still the caller's names here.
        ({"metaData": {"key": {"a": 1}}}, "metaData.key"),
        ({"metaData": {"value": [1]}}, "metaData.value"),
        ({"metaData": {"": 1}}, 'metaData[""]'),
        ({"products": [{"action": "purchase", "productCode": "x", "key": 1}]}, "products[0].key"),
        ({"metaData": ["a"]}, "metaData"),
        ({"products": []}, "products"),
        ({"products": {"action": "purchase"}}, "products"),
        ({"products": ["report_pdf"]}, "products[0]"),
        ({"coupon": "WELCOME10"}, "coupon"),
    ],
)
def test_top_level_fields_are_strict(change: dict[str, Any], field: str) -> None:
    body = body_for({"action": "purchase", "productCode": "report_pdf"}) | change
    assert field in errors_of(body)


@pytest.mark.parametrize("missing", ["isMobile", "chargeMethodId", "products"])
def test_mandatory_fields(missing: str) -> None:
    body = body_for({"action": "purchase", "productCode": "report_pdf"})
    del body[missing]
    assert errors_of(body) == {missing: ["Missing data for required field."]}


def test_one_to_twenty_products() -> None:
    item = {"action": "purchase", "productCode": "report_pdf"}
    ONECLICK_REQUEST.load(body_for(*[item] * 20))
    assert errors_of(body_for(*[item] * 21)) == {"products": ["1 to 20 entries"]}


def test_too_many_products_is_one_error_whatever_the_entries_hold() -> None:
    # Entries past the limit are not looked at: thousands of bad or clashing entries would
    # each be loaded, checked against every other and named in the answer.
    renew = {"action": "renew", "subscriptionId": ANN_PREMIUM_SUB}
    assert errors_of(body_for(*[renew] * 850, {})) == {"products": ["1 to 20 entries"]}
    assert errors_of(body_for(*[0] * 30_000)) == {"products": ["1 to 20 entries"]}
    # Within the limit every bad entry is still named.
    errors = errors_of(body_for(*[renew] * 3, {}))
    assert set(errors) == {f"products[{n}].subscriptionId" for n in range(3)} | {
        "products[3].action"
    }


def test_null_metadata_is_no_metadata() -> None:
    loaded = ONECLICK_REQUEST.load(
        body_for({"action": "purchase", "productCode": "report_pdf"}, metaData=None)
    )
    assert loaded["metadata"] is None


def test_a_null_item_field_is_an_absent_one() -> None:
    # Clients generated from the OpenAPI document send their unset fields as null.
    loaded = ONECLICK_REQUEST.load(
        body_for(
            {"action": "purchase", "productCode": "report_pdf", "subscriptionId": None},
            {"action": "renew", "subscriptionId": ANN_PREMIUM_SUB, "productCode": None},
        )
    )
    assert to_oneclick_request(loaded).products == (
        OneclickItemRequest("purchase", "report_pdf", None),
        OneclickItemRequest("renew", None, UUID(ANN_PREMIUM_SUB)),
    )


def test_rule_1_names_every_item_acting_on_the_same_subscription() -> None:
    errors = errors_of(
        body_for(
            {"action": "upgrade", "subscriptionId": ANN_BASIC_SUB, "productCode": "premium_1m"},
            {"action": "purchase", "productCode": "report_pdf"},
            # the same UUID in upper case is the same subscription
            {"action": "renew", "subscriptionId": ANN_BASIC_SUB.upper()},
        )
    )
    assert set(errors) == {"products[0].subscriptionId", "products[2].subscriptionId"}
    assert "products[2]" in errors["products[0].subscriptionId"][0]
    assert "products[0]" in errors["products[2].subscriptionId"][0]


def test_rule_1_does_not_limit_purchases_of_one_product() -> None:
    item = {"action": "purchase", "productCode": "report_pdf"}
    ONECLICK_REQUEST.load(body_for(item, item))


def test_a_renewal_may_name_its_product() -> None:
    # Rule 2 groups renew with upgrade and downgrade: productCode is accepted, not required.
    loaded = ONECLICK_REQUEST.load(
        body_for({"action": "renew", "subscriptionId": ANN_PREMIUM_SUB, "productCode": "x"})
    )
    assert to_oneclick_request(loaded).products == (
        OneclickItemRequest("renew", "x", UUID(ANN_PREMIUM_SUB)),
    )


def test_rule_1_is_reported_with_the_other_bad_fields() -> None:
    errors = errors_of(
        body_for(
            {"action": "upgrade", "subscriptionId": ANN_BASIC_SUB, "productCode": "premium_1m"},
            {"action": "renew", "subscriptionId": ANN_BASIC_SUB},
            {"action": "purchase", "productCode": 7},
            isMobile="no",
        )
    )
    assert set(errors) == {
        "isMobile",
        "products[0].subscriptionId",
        "products[1].subscriptionId",
        "products[2].productCode",
    }


def test_rule_1_names_no_wrong_entry_when_an_entry_is_null() -> None:
    # marshmallow leaves the null entry out of what loaded, so positions would shift.
    errors = errors_of(
        body_for(
            {"action": "upgrade", "subscriptionId": ANN_BASIC_SUB, "productCode": "premium_1m"},
            None,
            {"action": "renew", "subscriptionId": ANN_BASIC_SUB},
        )
    )
    assert errors == {"products[1]": ["Field may not be null."]}

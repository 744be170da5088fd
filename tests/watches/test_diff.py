"""Which watched fields a result changes, compared in the form the API shows them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from gateway.watches.diff import changed_fields, json_value
from gateway.watches.models import WATCHABLE_FIELDS


def test_values_compare_as_the_api_shows_them() -> None:
    assert json_value(Decimal("1200.5")) == "1200.50"
    assert json_value(1200.5) == "1200.50"
    assert json_value(date(2027, 3, 1)) == "2027-03-01"
    assert json_value(datetime(2027, 3, 1, tzinfo=UTC)) == "2027-03-01T00:00:00+00:00"
    assert json_value(None) is None
    assert json_value("active") == "active"


def test_an_unchanged_rescrape_changes_nothing_however_it_is_typed() -> None:
    old = {"tax_amount_due": Decimal("1234.50"), "auction_date": date(2027, 3, 1)}
    new = {"tax_amount_due": Decimal("1234.5"), "auction_date": date(2027, 3, 1)}
    assert changed_fields(old, new, WATCHABLE_FIELDS) == {}


def test_only_watched_fields_that_differ_are_reported_with_old_and_new() -> None:
    old = {"lien_status": "active", "owner_name": "Jane Doe", "tax_amount_due": Decimal("10")}
    new = {"lien_status": "redeemed", "owner_name": "John Roe", "tax_amount_due": Decimal("10")}
    assert changed_fields(old, new, ["lien_status", "tax_amount_due"]) == {
        "lien_status": {"old": "active", "new": "redeemed"}
    }


def test_a_first_result_reports_every_watched_field_it_has_from_null() -> None:
    new = {"lien_status": "active", "owner_name": None, "auction_date": date(2027, 1, 2)}
    assert changed_fields(None, new, WATCHABLE_FIELDS) == {
        "lien_status": {"old": None, "new": "active"},
        "auction_date": {"old": None, "new": "2027-01-02"},
    }


def test_a_value_that_disappears_is_a_change_to_null() -> None:
    assert changed_fields({"owner_name": "Jane"}, {}, ["owner_name"]) == {
        "owner_name": {"old": "Jane", "new": None}
    }

from decimal import Decimal

import pytest

from operations.quantity import parse_quantity, same_quantity


@pytest.mark.parametrize("text, value", [
    ("4", Decimal(4)),
    ("0", Decimal(0)),
    ("1.5", Decimal("1.5")),
    (".5", Decimal("0.5")),
    ("5.", Decimal(5)),
    ("+3", Decimal(3)),
    ("-3", Decimal(-3)),
    ("2000m", Decimal(2)),
    ("250m", Decimal("0.25")),
    ("412123n", Decimal("0.000412123")),
    ("10u", Decimal("0.00001")),
    ("1k", Decimal(1000)),
    ("6M", Decimal(6_000_000)),
    ("1G", Decimal(10**9)),
    ("2T", Decimal(2 * 10**12)),
    ("1P", Decimal(10**15)),
    ("1E", Decimal(10**18)),
    ("512Ki", Decimal(512 * 1024)),
    ("512Mi", Decimal(512 * 2**20)),
    ("6Gi", Decimal(6 * 2**30)),
    ("1.5Gi", Decimal(3 * 2**29)),
    ("1Ti", Decimal(2**40)),
    ("1Pi", Decimal(2**50)),
    ("1Ei", Decimal(2**60)),
    ("1e3", Decimal(1000)),
    ("1E3", Decimal(1000)),
    ("12e-3", Decimal("0.012")),
    ("1.5e+2", Decimal(150)),
])
def test_parses_every_form_the_api_accepts(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", [
    "", " ", "6 Gi", " 6Gi", "6Gi ", "6gi", "6GB", "6g", "Gi", "m", "1.2.3", "1e", "1e3Gi", "1Kb",
    "1K", "--1", "1,5", "0x10", "6Gi\n", "infinity", "NaN", "1e1000",
])
def test_anything_else_is_a_one_line_value_error(text):
    with pytest.raises(ValueError) as refused:
        parse_quantity(text)

    message = str(refused.value)
    assert "\n" not in message and repr(text) in message
    assert "quantity" in message


def test_a_non_string_is_refused_the_same_way():
    with pytest.raises(ValueError):
        parse_quantity(6)  # type: ignore[arg-type]


def test_quantities_compare_by_value_as_the_api_server_writes_them_back():
    assert same_quantity("2000m", "2")
    assert same_quantity("6144Mi", "6Gi")
    assert same_quantity("1e3", "1k")
    assert not same_quantity("6Gi", "6G")
    assert same_quantity(None, None) and not same_quantity(None, "1") and not same_quantity("1", None)
    assert same_quantity("junk", "junk") and not same_quantity("junk", "1")

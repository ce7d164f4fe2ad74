import pytest

from kondge_billing.rating.numbers import NumberFormat, normalise

UK = NumberFormat(country_code="44", international_prefix="00", national_prefix="0")
US = NumberFormat(country_code="1", international_prefix="011", national_prefix="")
AS_SENT = NumberFormat()


@pytest.mark.parametrize("fmt, raw, number", [
    (UK, "+447911123456", "447911123456"),
    (UK, "00447911123456", "447911123456"),
    (UK, "07911123456", "447911123456"),
    (UK, "0 7911 123-456", "447911123456"),
    (US, "+15551234567", "15551234567"),
    (US, "01115551234567", "15551234567"),
    (US, "5551234567", "15551234567"),
    (US, "15551234567", "15551234567"),
    (AS_SENT, "447911123456", "447911123456"),
    (AS_SENT, "+447911123456", "447911123456"),
    (UK, "anonymous", None),
    (UK, "", None),
    (UK, None, None),
    (UK, "+", None),
])
def test_one_number_however_it_is_sent(fmt, raw, number):
    assert normalise(raw, fmt) == number

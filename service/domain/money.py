"""Money in integer minor units. The one rounding rule of the service lives here."""

from __future__ import annotations

from fractions import Fraction

# ISO 4217 minor-unit exponents that differ from 2; every other valid code uses 2.
_EXPONENTS = {
    "BHD": 3, "BIF": 0, "CLF": 4, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0,
    "JOD": 3, "JPY": 0, "KMF": 0, "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0,
    "RWF": 0, "TND": 3, "UGX": 0, "UYI": 0, "UYW": 4, "VND": 0, "VUV": 0, "XAF": 0,
    "XOF": 0, "XPF": 0,
}  # fmt: skip

# Active ISO 4217 alphabetic codes, so a typo such as "USS" is refused as a currency.
ISO_4217 = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES
    KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR
    MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB
    RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD
    TWD TZS UAH UGX USD UYI UYU UYW UZS VES VED VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """.split()  # noqa: SIM905 - a table reads better as text
)


def minor_unit_exponent(currency: str) -> int:
    return _EXPONENTS.get(currency, 2)


def is_currency(code: str) -> bool:
    return code in ISO_4217


def round_half_up(value: Fraction) -> int:
    """Rounds a non-negative amount of minor units to a whole one, halves going up.

    Amounts are already in the currency's minor unit (cents, yen), so rounding to an
    integer is rounding to the currency's precision whatever its exponent.
    """
    if value < 0:
        raise ValueError("amounts are never negative")
    return int(value + Fraction(1, 2))


def percent_of(amount: int, percent: int) -> int:
    """`percent` % of `amount` minor units, rounded half-up: round_half_up(amount * percent
    / 100) in integers, floor((2 * amount * percent + 100) / 200), without building two
    Fractions (a tenth of the cost; tests/initials/test_pricing.py holds the two equal)."""
    product = amount * percent
    if product < 0:
        raise ValueError("amounts are never negative")
    return (2 * product + 100) // 200

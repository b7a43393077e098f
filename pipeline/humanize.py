"""Numbers for people: compact counts, durations, money. Pure functions, no UI library.

One place so the terminal, the flow logs and the dashboard say the same thing the same way.

>>> count(2_786_444), count(59_924), count(950)
('2.79M', '59.9k', '950')
>>> duration(14_180_814.0), duration(7_260), duration(95), duration(3.25)
('164 d', '2 h 01 min', '1 min 35 s', '3.2 s')
>>> money(21_475.4), money(7.99), money(-1_250_000, "EUR")
('$21,475', '$7.99', '-EUR 1.25M')
"""

from __future__ import annotations

import math

_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))
_SYMBOLS = {"USD": "$", "EUR": "EUR ", "GBP": "GBP "}


def count(n: float | None, digits: int = 3) -> str:
    """``2,786,444`` -> ``2.79M`` (``digits`` significant digits); ``None``/NaN -> ``-``."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "-"
    sign, a = ("-" if n < 0 else ""), abs(float(n))
    for factor, suffix in _SUFFIXES:
        if a >= factor * 0.9995:
            v = a / factor
            decimals = max(0, digits - len(str(int(v))))
            return f"{sign}{v:.{decimals}f}{suffix}"
    if a >= 100:
        return f"{sign}{a:,.0f}"
    if a >= 10:  # one decimal keeps it within 1 % ("10.5", not "10")
        return f"{sign}{f'{a:.1f}'.rstrip('0').rstrip('.')}"
    text = f"{a:.{max(0, digits - 1)}f}".rstrip("0").rstrip(".")
    return f"{sign}{text}" if text != "0" else "0"


def duration(seconds: float | None) -> str:
    """Seconds as the two largest sensible units: ``3.2 s``, ``1 min 35 s``, ``2 h 01 min``, ``164 d``."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    s = abs(float(seconds))
    sign = "-" if seconds < 0 else ""
    if s < 60:
        return f"{sign}{s:.1f} s" if s < 10 else f"{sign}{s:.0f} s"
    if s < 3600:
        m, r = divmod(int(round(s)), 60)
        return f"{sign}{m} min {r} s" if r else f"{sign}{m} min"
    if s < 86_400 * 2:
        h, r = divmod(int(round(s)) // 60, 60)
        return f"{sign}{h} h {r:02d} min"
    return f"{sign}{s / 86_400:.0f} d"


def money(x: float | None, currency: str = "USD") -> str:
    """``21475.4`` -> ``$21,475``; cents below 100; millions compact (``$1.25M``)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    symbol = _SYMBOLS.get(currency.upper(), f"{currency.upper()} ")
    sign, a = ("-" if x < 0 else ""), abs(float(x))
    if a >= 1e6:
        return f"{sign}{symbol}{count(a)}"
    return f"{sign}{symbol}{a:,.2f}" if a < 100 else f"{sign}{symbol}{a:,.0f}"

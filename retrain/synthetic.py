"""A seeded synthetic transaction stream whose fraud keeps changing, week by week.

Each simulated week is generated from its own seed (``seed`` and the week number), so a week
looks the same in every window that contains it, and two runs over the same window see the
same rows.  Everything is vectorised with numpy: 200k rows take well under a second.

What drifts (all functions of the absolute week number since :data:`EPOCH`):

* the fraud rate (0.28%-0.52%) and the mix of fraud modes (card testing, high-value theft,
  account takeover, fraud from newly opened geographies, a fraud ring on one marketplace);
* the "hot" merchant category of high-value fraud rotates every three weeks;
* a new issuing/merchant country opens every two weeks, and fraud follows the newest ones;
  once every country trades (week 39), fraud keeps moving through the emerging countries in
  the order they opened (a 40-week cycle), so the stream drifts whatever today's date is;
* from week 6 on, one marketplace merchant's customers shift towards the new countries and a
  fraud ring works it.

Labels arrive late: a fraud report (chargeback) comes 1-90 days after the payment (median 10).
A little dirt is mixed in (duplicate rows, invalid amounts) for the ``filter`` step to remove.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

EPOCH = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday; week 0 starts here
WEEK = timedelta(days=7)
MARKETPLACE = "m_GB_digital_goods_0"
MARKETPLACE_SHIFT_WEEK = 6

CATEGORIES = np.array(
    ["grocery", "fuel", "restaurants", "retail", "electronics", "travel", "digital_goods",
     "gaming", "gift_cards", "luxury", "pharmacy", "utilities", "entertainment", "telecom"]
)  # fmt: skip
CATEGORY_WEIGHTS = np.array([18, 10, 14, 16, 5, 4, 7, 4, 2, 1, 6, 5, 5, 3], dtype=float)
CATEGORY_LOG_AMOUNT = np.array(
    [3.5, 3.8, 3.3, 4.0, 5.3, 5.8, 3.0, 3.2, 4.2, 6.2, 3.2, 4.5, 3.6, 4.0]
)  # fmt: skip
HOT_CATEGORIES = ("electronics", "luxury", "gift_cards", "travel")

ESTABLISHED = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "CA", "AU", "IE", "SE", "PL")
ESTABLISHED_WEIGHTS = np.array([30, 14, 12, 10, 6, 6, 5, 6, 4, 2, 3, 2], dtype=float)
EMERGING = ("BR", "MX", "NG", "IN", "VN", "PH", "ID", "TR", "ZA", "AR", "EG", "KE", "PK",
            "CO", "TH", "MY", "CL", "PE", "UA", "RO")  # fmt: skip
COUNTRIES = np.array(ESTABLISHED + EMERGING)
CURRENCY = {
    "US": "USD", "GB": "GBP", "CA": "CAD", "AU": "AUD", "SE": "SEK", "PL": "PLN", "BR": "BRL",
    "MX": "MXN", "NG": "NGN", "IN": "INR", "VN": "VND", "PH": "PHP", "ID": "IDR", "TR": "TRY",
    "ZA": "ZAR", "AR": "ARS", "EG": "EGP", "KE": "KES", "PK": "PKR", "CO": "COP", "TH": "THB",
    "MY": "MYR", "CL": "CLP", "PE": "PEN", "UA": "UAH", "RO": "RON",
}  # fmt: skip
CURRENCIES = np.array([CURRENCY.get(c, "EUR") for c in COUNTRIES])
FRAUD_MODES = ("card_testing", "high_value", "account_takeover", "new_geography", "marketplace")

Array = npt.NDArray[np.float64]


def week_of(moment: datetime) -> int:
    """The simulated week number (0 = the week starting at :data:`EPOCH`) containing moment."""
    return (moment - EPOCH) // WEEK


def opening_week(country_index: int) -> int:
    """The week a country starts to trade: established ones always; an emerging one every
    two weeks, the first in week 1."""
    emerging = country_index - len(ESTABLISHED)
    return -(10**6) if emerging < 0 else 1 + 2 * emerging


def frontier(week: int, within: int) -> list[int]:
    """The emerging countries fraud works in ``week``: those that opened at most ``within``
    weeks ago, counted on the cycle of openings (every :data:`EMERGING` country opens once,
    then the frontier comes round to the first again), so the drift never runs out.  Before the
    cycle first completes these are simply the countries opened in the last ``within`` weeks."""
    cycle = 2 * len(EMERGING)
    return [
        i
        for i in range(len(ESTABLISHED), len(COUNTRIES))
        if week >= opening_week(i) and (week - opening_week(i)) % cycle <= within
    ]


def fraud_rate(week: int) -> float:
    """The share of fraudulent payments in a week (between 0.28% and 0.52%)."""
    return 0.004 * (1.0 + 0.3 * float(np.sin(2 * np.pi * week / 13.0)))


def mode_weights(week: int) -> npt.NDArray[np.float64]:
    """The mix of fraud modes in a week: each mode waxes and wanes on its own phase."""
    phases = np.array([0.0, 1.3, 2.6, 3.9, 5.2])
    weights: npt.NDArray[np.float64] = 1.0 + 0.8 * np.sin(2 * np.pi * week / 8.0 + phases)
    if week < MARKETPLACE_SHIFT_WEEK:
        weights[4] = 0.0
    return weights / float(weights.sum())


@dataclass(frozen=True)
class SyntheticSource:
    """Reproducible synthetic transactions: ``rows_per_week`` payments a week on average."""

    seed: int = 7
    rows_per_week: int = 25_000

    @property
    def description(self) -> str:
        return f"synthetic(seed={self.seed}, rows_per_week={self.rows_per_week})"

    def load(self, start: datetime, end: datetime) -> pd.DataFrame:
        """Every payment with ``start <= event_time < end`` (labels as they will ever arrive;
        the pipeline hides those that arrive after its as-of time)."""
        weeks = range(week_of(start), week_of(end - timedelta(microseconds=1)) + 1)
        frames = [self.week(w) for w in weeks]
        frame = pd.concat(frames, ignore_index=True)
        keep = (frame["event_time"] >= start) & (frame["event_time"] < end)
        return frame.loc[keep].sort_values("event_time", kind="stable").reset_index(drop=True)

    def week(self, week: int) -> pd.DataFrame:
        """All payments of one simulated week, legitimate and fraudulent."""
        rng = np.random.default_rng([self.seed, week + 10_000])
        cards = _Cards(self.seed, self.rows_per_week)
        n_fraud = rng.binomial(self.rows_per_week, fraud_rate(week))
        legit = _legit(rng, cards, week, self.rows_per_week - n_fraud)
        fraud = _fraud(rng, cards, week, n_fraud)
        frame = pd.concat([legit, fraud], ignore_index=True)
        frame = _labels_and_ids(rng, frame, week)
        return _dirt(rng, frame)


class _Cards:
    """The card population: a fixed issuing country and issue day per card."""

    def __init__(self, seed: int, rows_per_week: int) -> None:
        rng = np.random.default_rng([seed, 1])
        self.n = max(rows_per_week // 2, 100)
        weights = np.concatenate([ESTABLISHED_WEIGHTS, np.full(len(EMERGING), 1.5)])
        self.country = rng.choice(len(COUNTRIES), size=self.n, p=weights / weights.sum())
        self.issue_day = rng.integers(-2000, 400, size=self.n)
        self.activity = rng.pareto(2.0, size=self.n) + 0.2  # a few cards pay a lot

    def pick(self, rng: np.random.Generator, week: int, size: int) -> npt.NDArray[np.int64]:
        """Cards active in ``week``: issued already, in a country that trades already."""
        opened = np.array([opening_week(i) <= week for i in range(len(COUNTRIES))])
        active = opened[self.country] & (self.issue_day <= week * 7)
        weights = np.where(active, self.activity, 0.0)
        return rng.choice(self.n, size=size, p=weights / weights.sum())


def _times(rng: np.random.Generator, week: int, size: int, night: float = 0.0) -> Array:
    """Seconds since EPOCH: a day in the week, an hour from a daytime curve (or the night)."""
    hours = np.arange(24)
    curve = 0.2 + np.exp(-(((hours - 15.0) / 4.5) ** 2))
    curve = curve / curve.sum()
    hour = rng.choice(24, size=size, p=curve)
    night_hour = rng.integers(0, 6, size=size)
    hour = np.where(rng.random(size) < night, night_hour, hour)
    day = rng.integers(0, 7, size=size)
    return (week * 7 + day) * 86400.0 + hour * 3600.0 + rng.random(size) * 3600.0


def _frame(
    cards: _Cards,
    card: npt.NDArray[np.int64],
    seconds: Array,
    amount: Array,
    category: npt.NDArray[np.int64],
    merchant_country: npt.NDArray[np.int64],
    device_age: Array,
    mode: str,
) -> pd.DataFrame:
    day = seconds // 86400.0
    return pd.DataFrame(
        {
            "card_id": np.char.add("c", card.astype(str)),
            "seconds": seconds,
            "amount": np.round(np.maximum(amount, 0.5), 2),
            "merchant_category": CATEGORIES[category],
            "merchant_country": COUNTRIES[merchant_country],
            "card_country": COUNTRIES[cards.country[card]],
            "card_age_days": np.maximum(day - cards.issue_day[card], 0).astype(np.int64),
            "device_age_days": device_age,
            "mode": mode,
        }
    )


def _legit(rng: np.random.Generator, cards: _Cards, week: int, size: int) -> pd.DataFrame:
    card = cards.pick(rng, week, size)
    seconds = _times(rng, week, size, night=0.04)
    # A tenth of payments come in quick sessions: a follow-up minutes after an earlier one.
    follow = rng.random(size) < 0.15
    lead = rng.integers(0, size, size=size)
    card = np.where(follow, card[lead], card)
    seconds = np.where(follow, seconds[lead] + rng.exponential(600, size), seconds)
    category = rng.choice(len(CATEGORIES), size=size, p=CATEGORY_WEIGHTS / CATEGORY_WEIGHTS.sum())
    amount = np.exp(rng.normal(CATEGORY_LOG_AMOUNT[category], 0.8))
    home = cards.country[card]
    abroad = rng.choice(
        len(ESTABLISHED), size=size, p=ESTABLISHED_WEIGHTS / ESTABLISHED_WEIGHTS.sum()
    )
    merchant_country = np.where(rng.random(size) < 0.85, home, abroad)
    device_age = np.where(rng.random(size) < 0.3, np.nan, rng.exponential(400, size))
    frame = _frame(cards, card, seconds, amount, category, merchant_country, device_age, "legit")
    if week >= MARKETPLACE_SHIFT_WEEK:
        _shift_marketplace_population(rng, frame, week)
    return frame


def _shift_marketplace_population(rng: np.random.Generator, frame: pd.DataFrame, week: int) -> None:
    """The marketplace's customers move towards the newest countries after its shift week."""
    digital = np.flatnonzero(frame["merchant_category"].to_numpy() == "digital_goods")
    chosen = digital[rng.random(len(digital)) < 0.3]
    newest = frontier(week, 8)
    if not len(chosen) or not newest:
        return
    frame.loc[chosen, "card_country"] = COUNTRIES[rng.choice(newest, size=len(chosen))]
    frame.loc[chosen, "merchant_country"] = "GB"
    frame.loc[chosen, "mode"] = "marketplace_customer"


def _fraud(rng: np.random.Generator, cards: _Cards, week: int, size: int) -> pd.DataFrame:
    """Fraud in bursts on compromised cards; each mode has its own signature."""
    counts = rng.multinomial(size, mode_weights(week))
    frames = []
    hot = int(np.flatnonzero(HOT_CATEGORIES[(week // 3) % 4] == CATEGORIES)[0])
    newest = frontier(week, 5) or [len(ESTABLISHED) - 1]
    for mode, n in zip(FRAUD_MODES, counts, strict=True):
        if n == 0:
            continue
        burst = {"card_testing": 3.0, "high_value": 1.6, "account_takeover": 1.3}.get(mode, 1.3)
        n_bursts = max(1, round(n / burst))
        owner = cards.pick(rng, week, n_bursts)
        start = _times(rng, week, n_bursts, night=0.3)
        which = rng.integers(0, n_bursts, size=n)
        gap = 300.0 if mode == "card_testing" else 1800.0
        card = owner[which]
        seconds = start[which] + rng.exponential(gap, n)
        # Half of the fraudsters use a fresh device; the rest look like anyone else.
        device_age = np.where(rng.random(n) < 0.5, rng.exponential(30, n), rng.exponential(400, n))
        device_age = np.where(rng.random(n) < 0.2, np.nan, device_age)
        merchant_country = np.where(
            rng.random(n) < 0.5, cards.country[card], rng.choice(len(ESTABLISHED), size=n)
        )
        if mode == "card_testing":
            amount = rng.uniform(0.5, 15.0, n)
            category = rng.choice([6, 7], size=n)
        elif mode == "high_value":
            amount = np.exp(rng.normal(6.0, 0.7, n))
            category = np.where(rng.random(n) < 0.7, hot, rng.integers(0, len(CATEGORIES), n))
        elif mode == "account_takeover":
            amount = rng.uniform(120, 700, n)
            category = rng.choice([5, 6, 13], size=n)
            device_age = rng.uniform(0, 2, n)
        elif mode == "new_geography":
            amount = np.exp(rng.normal(5.0, 0.6, n))
            category = rng.integers(0, len(CATEGORIES), n)
            merchant_country = rng.choice(newest, size=n)
        else:
            amount = rng.uniform(200, 400, n)
            category = np.full(n, 6)
            merchant_country = np.full(n, 1)  # the marketplace is in GB
            card = cards.pick(rng, week, n)
        frames.append(
            _frame(cards, card, seconds, amount, category, merchant_country, device_age, mode)
        )
    if not frames:
        empty = np.zeros(0, dtype=np.int64)
        return _frame(cards, empty, np.zeros(0), np.zeros(0), empty, empty, np.zeros(0), "none")
    return pd.concat(frames, ignore_index=True)


def _labels_and_ids(rng: np.random.Generator, frame: pd.DataFrame, week: int) -> pd.DataFrame:
    n = len(frame)
    is_fraud = ~frame["mode"].isin(["legit", "marketplace_customer"]).to_numpy()
    event = EPOCH + pd.to_timedelta(frame["seconds"].to_numpy(), unit="s")
    delay_days = np.clip(np.exp(rng.normal(np.log(10.0), 0.7, n)), 1.0, 90.0)
    label_time = event + pd.to_timedelta(delay_days * 86400.0, unit="s")
    bucket = rng.integers(0, 20, size=n)
    merchant = np.char.add(
        np.char.add(np.char.add("m_", frame["merchant_country"].to_numpy().astype(str)), "_"),
        np.char.add(
            np.char.add(frame["merchant_category"].to_numpy().astype(str), "_"), bucket.astype(str)
        ),
    )
    digital_gb = (frame["merchant_category"] == "digital_goods") & (
        frame["merchant_country"] == "GB"
    )
    marketplace = frame["mode"].isin(["marketplace", "marketplace_customer"]).to_numpy()
    merchant = np.where(marketplace | (digital_gb.to_numpy() & (bucket < 4)), MARKETPLACE, merchant)
    country_index = {c: i for i, c in enumerate(COUNTRIES)}
    merchant_idx = frame["merchant_country"].map(country_index).to_numpy()
    card_idx = frame["card_country"].map(country_index).to_numpy()
    # Payments are mostly in the merchant's currency; some fraud pays in the card's own.
    use_card = rng.random(n) < np.where(is_fraud, 0.3, 0.05)
    currency = CURRENCIES[np.where(use_card, card_idx, merchant_idx)]
    return pd.DataFrame(
        {
            "transaction_id": [f"t{week:03d}-{i:07d}" for i in range(n)],
            "card_id": frame["card_id"].to_numpy(),
            "merchant_id": merchant,
            "event_time": pd.DatetimeIndex(event).as_unit("us"),
            "amount": frame["amount"].to_numpy(),
            "currency": currency,
            "merchant_category": frame["merchant_category"].to_numpy(),
            "merchant_country": frame["merchant_country"].to_numpy(),
            "card_country": frame["card_country"].to_numpy(),
            "card_age_days": frame["card_age_days"].to_numpy(),
            "device_age_days": np.round(frame["device_age_days"].to_numpy(), 2),
            "is_fraud": is_fraud.astype(np.int8),
            "label_time": pd.DatetimeIndex(label_time).as_unit("us").where(is_fraud),
        }
    )


def _dirt(rng: np.random.Generator, frame: pd.DataFrame) -> pd.DataFrame:
    """What real exports contain: re-sent rows (0.2%) and a few impossible amounts (0.05%)."""
    n = len(frame)
    bad = rng.random(n) < 0.0005
    frame.loc[bad, "amount"] = -frame.loc[bad, "amount"]
    duplicates = frame.iloc[np.flatnonzero(rng.random(n) < 0.002)]
    return pd.concat([frame, duplicates], ignore_index=True)

"""``MemoryLedger``: the ad ledger in one process (embedded mode), dicts under one lock written through
to SQLite; the outcomes every backend must give (``contract``), sequentially those of ``RedisLedger``."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from adsite.ads.accounting.contract import (
    BILLED,
    CAPPED_DAY,
    CAPPED_HOUR,
    CLICKS_BILLED,
    DAILY_BUDGET,
    FREE,
    FREQ_TTL_S,
    IMPRESSIONS_BILLED,
    NO_REPEAT,
    OK,
    OUT_OF_BUDGET,
    REPEAT_BUCKETS,
    REPLAYED,
    SERVED,
    SPEND,
    VIEWABLE,
    Charge,
    ClickRowOwed,
    CreativeStats,
    ReservationLost,
    Snapshot,
    day_key,
    hour_key,
    report_ttl_s,
)


class MemoryLedger:
    """Counters in a dict under one lock, written through to SQLite (``path``; ``None``: memory only)."""

    def __init__(self, path: str | Path | None) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}
        self._expiry: dict[str, float] = {}
        self._owed: dict[int, ClickRowOwed] = {}
        # the repeat statistics again, per creative (expected micros of each bucket, then clicks of each), so
        # that a snapshot sums a row per creative instead of formatting and reading 8 keys each
        self._repeats: dict[int, list[int]] = {}
        self._db: sqlite3.Connection | None = None
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at REAL)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS click_rows_owed "
                "(click_id INTEGER PRIMARY KEY, outcome TEXT NOT NULL, price_micros INTEGER NOT NULL)"
            )
            for click_id, outcome, price in self._db.execute("SELECT click_id, outcome, price_micros FROM click_rows_owed"):
                self._owed[int(click_id)] = ClickRowOwed(int(click_id), str(outcome), int(price))
            now = time.time()
            self._db.execute("DELETE FROM counters WHERE expires_at IS NOT NULL AND expires_at < ?", (now,))
            for key, value, expires_at in self._db.execute("SELECT key, value, expires_at FROM counters"):
                self._values[key] = int(value)
                if expires_at is not None:
                    self._expiry[key] = float(expires_at)
                self._repeat_follow(key)

    def _get(self, key: str, now: float) -> int:
        expires = self._expiry.get(key)
        if expires is not None and expires < now:
            self._values.pop(key, None)
            self._expiry.pop(key, None)
        return self._values.get(key, 0)

    def _add(self, changes: list[tuple[str, int, float | None]], now: float) -> None:
        """Apply and persist ``(key, delta, expires_at)`` changes; the caller holds the lock."""
        for key, delta, expires in changes:
            self._values[key] = self._get(key, now) + delta
            if expires is not None:
                self._expiry[key] = expires
            self._repeat_follow(key)
        if self._db is not None:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO counters (key, value, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
                [(key, self._values[key], self._expiry.get(key)) for key, _, _ in changes],
            )
            self._db.execute("COMMIT")

    def snapshot(
        self, *, campaign_ids: Sequence[int], creative_ids: Sequence[int], user_id: str, now: float
    ) -> Snapshot:
        day, hour = day_key(now), hour_key(now)
        with self._lock:
            repeat_expected, repeat_clicks = self._repeat_sums(creative_ids)
            return Snapshot(
                spend_total={c: self._get(f"spend:{c}", now) for c in campaign_ids},
                spend_today={c: self._get(f"spend:{c}:{day}", now) for c in campaign_ids},
                user_hour={c: self._get(f"freq:{user_id}:{c}:h{hour}", now) for c in campaign_ids}
                if user_id
                else {},
                user_day={c: self._get(f"freq:{user_id}:{c}:d{day}", now) for c in campaign_ids} if user_id else {},
                impressions={c: self._get(f"imp:{c}", now) for c in creative_ids},
                clicks={c: self._get(f"clk:{c}", now) for c in creative_ids},
                extra_exposure={c: self._get(f"exp:{c}", now) for c in creative_ids},
                repeat_expected=repeat_expected,
                repeat_clicks=repeat_clicks,
            )

    def _repeat_follow(self, key: str) -> None:
        """Mirror a repeat statistic's counter (``rexp:<bucket>:<creative>``: expected clicks in micros,
        ``rclk:<bucket>:<creative>``: clicks) into ``_repeats``; the caller holds the lock."""
        if not key.startswith(("rexp:", "rclk:")):
            return
        name, bucket, creative = key.split(":")
        row = self._repeats.setdefault(int(creative), [0] * (2 * REPEAT_BUCKETS))
        row[int(bucket) + (REPEAT_BUCKETS if name == "rclk" else 0)] = self._values.get(key, 0)

    def _repeat_sums(self, creative_ids: Sequence[int]) -> tuple[dict[int, int], dict[int, int]]:
        """The snapshot's ``repeat_expected`` and ``repeat_clicks``: per bucket, summed over the creatives."""
        totals = [0] * (2 * REPEAT_BUCKETS)
        for creative in creative_ids:
            row = self._repeats.get(creative)
            if row is not None:
                for i, value in enumerate(row):
                    totals[i] += value
        return dict(enumerate(totals[:REPEAT_BUCKETS])), dict(enumerate(totals[REPEAT_BUCKETS:]))

    def impression_reserve(self, *, charge: Charge, user_id: str, now: float) -> str:
        day, hour = day_key(now), hour_key(now)
        c = charge.campaign_id
        with self._lock:
            if self._get(f"spend:{c}", now) >= charge.total_budget_micros:
                return OUT_OF_BUDGET
            if self._get(f"spend:{c}:{day}", now) >= charge.daily_budget_micros:
                return DAILY_BUDGET
            hour_field, day_field = f"freq:{user_id}:{c}:h{hour}", f"freq:{user_id}:{c}:d{day}"
            if user_id and charge.cap_per_hour and self._get(hour_field, now) >= charge.cap_per_hour:
                return CAPPED_HOUR
            if user_id and charge.cap_per_day and self._get(day_field, now) >= charge.cap_per_day:
                return CAPPED_DAY
            changes: list[tuple[str, int, float | None]] = [(f"imp:{charge.creative_id}", 1, None)]
            if charge.extra_exposure_micros:
                changes.append((f"exp:{charge.creative_id}", charge.extra_exposure_micros, None))
            if charge.repeat != NO_REPEAT and charge.expected_micros:
                changes.append((f"rexp:{charge.repeat}:{charge.creative_id}", charge.expected_micros, None))
            report, report_expiry = f"rep:{hour}:{c}:", now + report_ttl_s()
            changes.append((report + SERVED, 1, report_expiry))
            if charge.impression_price_micros:
                changes += [
                    (f"spend:{c}", charge.impression_price_micros, None),
                    (f"spend:{c}:{day}", charge.impression_price_micros, now + FREQ_TTL_S),
                    (report + IMPRESSIONS_BILLED, 1, report_expiry),
                    (report + SPEND, charge.impression_price_micros, report_expiry),
                ]
            if user_id:
                changes += [(hour_field, 1, now + FREQ_TTL_S), (day_field, 1, now + FREQ_TTL_S)]
            self._add(changes, now)
            return OK

    def impressions_reserve(self, *, charges: Sequence[Charge], user_id: str, now: float) -> list[str]:
        return [self.impression_reserve(charge=charge, user_id=user_id, now=now) for charge in charges]

    def click_charge(
        self,
        *,
        token_id: str,
        campaign_id: int,
        creative_id: int,
        price_micros: int,
        daily_budget_micros: int,
        total_budget_micros: int,
        now: float,
        token_ttl_s: int,
        click_id: int = 0,
        repeat: int = NO_REPEAT,
    ) -> str:
        # in-process: every charge is answered, so none is ever left unknown (``click_id`` is not needed)
        day = day_key(now)
        with self._lock:
            token_key = f"tok:{token_id}"
            if self._get(token_key, now):
                return REPLAYED
            changes: list[tuple[str, int, float | None]] = [
                (token_key, 1, now + token_ttl_s),
                (f"clk:{creative_id}", 1, None),
            ]
            if 0 <= repeat < REPEAT_BUCKETS:
                changes.append((f"rclk:{repeat}:{creative_id}", 1, None))
            outcome = FREE
            if (
                price_micros
                and self._get(f"spend:{campaign_id}", now) < total_budget_micros
                and self._get(f"spend:{campaign_id}:{day}", now) < daily_budget_micros
            ):
                report, report_expiry = f"rep:{hour_key(now)}:{campaign_id}:", now + report_ttl_s()
                changes += [
                    (f"spend:{campaign_id}", price_micros, None),
                    (f"spend:{campaign_id}:{day}", price_micros, now + FREQ_TTL_S),
                    (report + CLICKS_BILLED, 1, report_expiry),
                    (report + SPEND, price_micros, report_expiry),
                ]
                outcome = BILLED
            self._add(changes, now)
            return outcome

    def click_charge_settle(self, *, token_id: str, campaign_id: int, click_id: int, token_ttl_s: int) -> tuple[str, int]:
        """This ledger answers every charge (no click is left unsettled by it): a token it never charged is
        voided and answered ``FREE``; one it charged is another request's (``REPLAYED``)."""
        now = time.time()
        with self._lock:
            token_key = f"tok:{token_id}"
            if self._get(token_key, now):
                return REPLAYED, 0
            self._add([(token_key, 1, now + token_ttl_s)], now)
            return FREE, 0

    def viewable_add(self, *, creative_ids: Iterable[int]) -> None:
        now = time.time()
        with self._lock:
            self._add([(f"view:{c}", 1, None) for c in creative_ids], now)

    def viewable_count(self, *, serve_id: str, creative_id: int, campaign_id: int, ttl_s: int, now: float) -> bool:
        with self._lock:
            seen = f"seen:{serve_id}"
            if self._get(seen, now):
                return False
            self._add(
                [
                    (seen, 1, now + ttl_s),
                    (f"view:{creative_id}", 1, None),
                    (f"rep:{hour_key(now)}:{campaign_id}:{VIEWABLE}", 1, now + report_ttl_s()),
                ],
                now,
            )
            return True

    def report_add(self, *, counts: dict[str, int], now: float) -> None:
        if not counts:
            return
        expiry = now + report_ttl_s()
        hour = hour_key(now)
        with self._lock:
            self._add([(f"rep:{hour}:{name}", n, expiry) for name, n in counts.items()], now)

    def report_read(self, *, since: float | None, now: float) -> dict[str, int]:
        first = int(since // 3600) if since is not None else None
        out: dict[str, int] = {}
        with self._lock:
            for key in list(self._values):
                if not key.startswith("rep:"):
                    continue
                _, hour, name = key.split(":", 2)
                if first is not None and int(hour) < first:
                    continue
                value = self._get(key, now)
                if value:
                    out[name] = out.get(name, 0) + value
        return out

    def creative_stats(self, *, creative_id: int) -> CreativeStats:
        now = time.time()
        with self._lock:
            return CreativeStats(
                self._get(f"imp:{creative_id}", now), self._get(f"clk:{creative_id}", now),
                self._get(f"view:{creative_id}", now),
            )

    def spend(self, *, campaign_id: int, now: float) -> tuple[int, int]:
        with self._lock:
            return self._get(f"spend:{campaign_id}", now), self._get(f"spend:{campaign_id}:{day_key(now)}", now)

    def creatives_counted(self) -> set[int]:
        """The creatives this process holds statistics for (impressions, clicks or viewable
        impressions): what decisions read per creative, so what forged input must not grow."""
        with self._lock:
            return {
                int(key.split(":", 1)[1])
                for key in self._values
                if key.startswith(("imp:", "clk:", "view:")) and key.split(":", 1)[1].isdigit()
            }

    def visitor_forget(self, *, user_id: str) -> None:
        prefix = f"freq:{user_id}:"
        with self._lock:
            keys = [key for key in self._values if key.startswith(prefix)]
            for key in keys:
                self._values.pop(key, None)
                self._expiry.pop(key, None)
            if self._db is not None and keys:
                self._db.executemany("DELETE FROM counters WHERE key = ?", [(key,) for key in keys])

    def statistics_add(
        self, *, creative_id: int, impressions: int, clicks: int, extra_exposure_micros: int,
        repeat_expected: Sequence[int] = (), repeat_clicks: Sequence[int] = (),
    ) -> None:
        """Add earlier traffic's statistics for one creative (the simulation's history); no money moves.
        ``repeat_expected`` / ``repeat_clicks``: its repeat statistics, bucket by bucket."""
        now = time.time()
        changes: list[tuple[str, int, float | None]] = [
            (f"imp:{creative_id}", impressions, None), (f"clk:{creative_id}", clicks, None),
            (f"exp:{creative_id}", extra_exposure_micros, None),
        ]
        changes += [(f"rexp:{b}:{creative_id}", n, None) for b, n in enumerate(repeat_expected) if n]
        changes += [(f"rclk:{b}:{creative_id}", n, None) for b, n in enumerate(repeat_clicks) if n]
        with self._lock:
            self._add(changes, now)

    def repeat_statistics(self, *, creative_id: int) -> tuple[list[int], list[int]]:
        """One creative's repeat statistics: (expected clicks in micros, clicks), bucket by bucket."""
        with self._lock:
            row = self._repeats.get(creative_id, [0] * (2 * REPEAT_BUCKETS))
            return row[:REPEAT_BUCKETS], row[REPEAT_BUCKETS:]

    def click_row_owe(self, *, owed: ClickRowOwed) -> None:
        with self._lock:
            self._owed[owed.click_id] = owed
            if self._db is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO click_rows_owed (click_id, outcome, price_micros) VALUES (?, ?, ?)",
                    (owed.click_id, owed.outcome, owed.price_micros),
                )

    def click_rows_owed(self, *, limit: int) -> list[ClickRowOwed]:
        with self._lock:
            return list(self._owed.values())[:limit]

    def click_rows_settled(self, *, click_ids: Sequence[int]) -> None:
        with self._lock:
            for click_id in click_ids:
                self._owed.pop(click_id, None)
            if self._db is not None:
                self._db.executemany("DELETE FROM click_rows_owed WHERE click_id = ?", [(c,) for c in click_ids])

    def reservation_void(self, *, lost: ReservationLost) -> int:
        """Nothing to give back: a reservation here runs in this process under its lock, so its answer is
        never lost (``RedisLedger`` is the ledger that loses answers)."""
        return 0

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._expiry.clear()
            self._owed.clear()
            self._repeats.clear()
            if self._db is not None:
                self._db.execute("DELETE FROM counters")
                self._db.execute("DELETE FROM click_rows_owed")

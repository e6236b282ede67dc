"""This process's composition root: the backends the mode chose, built once, swapped whole in tests.

``platform()`` is the one object that owns what a web or worker process shares between requests on
the ads side: the ad ledger (``ADS["LEDGER"]``: in-process or Redis), the policy that scores page
decisions, and the caches derived from them (the catalog of active campaigns, the population's
interest shares per catalog build). Tests install a fresh one per test (``tests/conftest.py``'s
``fresh_platform``) instead of resetting each cache: ``platform_use(...)`` installs another one (a
test fixture, the simulation) and returns the previous.

Page decisions read their policy from here: the site runs ``ADSITE_POLICY``; the simulation installs
a platform holding its own policy object and ads settings for its run, so nothing in the decision path
switches on a policy name or reads a module-level setting meant for tests.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from inference.api import PerProcess

if TYPE_CHECKING:
    from adsite.ads.accounting import Ledger
    from adsite.ads.catalog import Catalog
    from adsite.ads.scoring import Quality, SelectionPolicy


@dataclass(eq=False)
class Platform:
    """The backends and caches of one process (see the module docstring). ``ledger`` None: built from
    the settings on first use."""

    ledger_backend: Ledger | None = None
    page_policy: SelectionPolicy | None = None
    # the random source of page decisions (None: ``decision_rng``); the simulation seeds one
    page_rng: random.Random | None = None
    # the random source of decisions that bring none (their Thompson draws): one per process, seeded when
    # the platform is built (after a fork too, so web workers never draw alike), not seeded per decision
    decision_rng: random.Random = field(default_factory=random.Random, repr=False)
    # ads settings this process runs with over ``settings.ADS`` (the simulation: pacing off, a roomy budget)
    ads_settings: Mapping[str, Any] = field(default_factory=dict)
    # the catalog decisions read (adsite.ads.catalog), and whether a background rebuild of it runs
    catalog: Catalog | None = None
    catalog_refreshing: bool = False
    catalog_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # (catalog built_at, population shares, campaign bases): the population's interests per catalog build
    population: tuple[float, dict[str, float], dict[int, float]] | None = None
    # (key, creative -> quality posterior): the latest decision's posteriors, reused while the key (catalog
    # build, the ledger's statistics generation, live campaigns, knobs) is unchanged (adsite.ads.decisions)
    qualities: tuple[tuple[Any, ...], dict[int, Quality]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def ledger(self) -> Ledger:
        current = self.ledger_backend
        if current is None:
            with self._lock:
                if self.ledger_backend is None:
                    from adsite.ads.accounting import ledger_build
                    from adsite.ads.services.reservations import reservation_lost_keep

                    # a reservation whose answer is lost is kept in the database until voided
                    self.ledger_backend = ledger_build(on_lost=reservation_lost_keep)
                current = self.ledger_backend
        return current

    @property
    def policy(self) -> SelectionPolicy:
        if self.page_policy is None:
            from adsite.ads.scoring import ADSITE_POLICY

            return ADSITE_POLICY
        return self.page_policy


_platform: PerProcess[Platform] = PerProcess(Platform)


def platform() -> Platform:
    """This process's platform (a fresh one after a fork: each gunicorn worker builds its own clients)."""
    return _platform.get()


def platform_use(replacement: Platform | None) -> Platform | None:
    """Install ``replacement`` as this process's platform (None: build a fresh one on next use);
    returns the previous one."""
    return _platform.install(replacement)


def platform_with(**changes: Any) -> Platform:
    """A platform like the current one with some parts replaced (its caches start empty)."""
    current = platform()
    return Platform(
        ledger_backend=changes.get("ledger_backend", current.ledger_backend),
        page_policy=changes.get("page_policy", current.page_policy),
        page_rng=changes.get("page_rng", current.page_rng),
        ads_settings=changes.get("ads_settings", current.ads_settings),
    )

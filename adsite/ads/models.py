"""Ads tables: who advertises, what they buy, what is shown where, and the decisions' paper trail.

Money is stored as ``Decimal`` here (what staff type in the admin) and handled as integer micros
(millionths of the currency unit) everywhere on the hot path, so that budgets add up exactly.
Counters that change per impression (spend, frequency, creative statistics) do NOT live in these
tables: they live in the ledger (``adsite.ads.accounting``), Redis or in-process.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models

DEVICES = ("desktop", "mobile", "tablet", "other")


def landing_url_validate(value: str) -> None:
    """A landing URL is an absolute http(s) URL without control characters or backslashes."""
    if any(ord(ch) < 0x21 or ch == "\\" for ch in value):
        raise ValidationError("The landing URL may not contain spaces, control characters or backslashes.")
    URLValidator(schemes=["http", "https"])(value)
    from adsite.ads.landing import landing_url_safe

    if not landing_url_safe(value):
        raise ValidationError("The landing URL must be a plain http(s) URL: no user@host, no encoded line breaks.")


class Advertiser(models.Model):
    name = models.CharField(max_length=200, unique=True)
    website = models.URLField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Placement(models.Model):
    """A named slot on the site's pages (``adsite.content.placements.PLACEMENTS``) and its size."""

    name = models.SlugField(max_length=64, unique=True)
    size = models.CharField(max_length=20, help_text="e.g. 728x90, 300x250")
    description = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.size})"


class Campaign(models.Model):
    class Pricing(models.TextChoices):
        CPM = "cpm", "CPM (per thousand impressions)"
        CPC = "cpc", "CPC (per click)"

    class Tier(models.TextChoices):
        # a higher tier wins whenever it has an eligible ad; value orders the tiers
        SPONSORSHIP = "sponsorship", "Sponsorship"
        STANDARD = "standard", "Standard"
        HOUSE = "house", "House"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused"

    advertiser = models.ForeignKey(Advertiser, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    tier = models.CharField(max_length=12, choices=Tier.choices, default=Tier.STANDARD)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField(null=True, blank=True)
    pricing = models.CharField(max_length=3, choices=Pricing.choices, default=Pricing.CPC)
    bid = models.DecimalField(
        max_digits=12, decimal_places=4, validators=[MinValueValidator(0)],
        help_text="CPM: price per thousand impressions; CPC: price per click",
    )
    daily_budget = models.DecimalField(max_digits=14, decimal_places=4, validators=[MinValueValidator(0)])
    total_budget = models.DecimalField(max_digits=14, decimal_places=4, validators=[MinValueValidator(0)])
    # interest targeting: {"category-slug": weight}; empty means every visitor
    interests = models.JSONField(default=dict, blank=True)
    # 0: interests only weigh the score; above 0: visitors whose predicted interest in the campaign's
    # categories is below this are not shown the campaign at all
    interest_min_score = models.FloatField(default=0.0, validators=[MinValueValidator(0), MaxValueValidator(1)])
    devices = models.JSONField(default=list, blank=True, help_text=f"subset of {list(DEVICES)}; empty: all")
    hours = models.JSONField(default=list, blank=True, help_text="UTC hours 0-23; empty: all day")
    cap_per_hour = models.PositiveIntegerField(default=0, help_text="impressions per visitor per hour; 0: none")
    cap_per_day = models.PositiveIntegerField(default=0, help_text="impressions per visitor per day; 0: none")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["advertiser__name", "name"]
        indexes = [models.Index(fields=["status", "tier"])]

    def __str__(self) -> str:
        return f"{self.advertiser.name}: {self.name}"

    def clean(self) -> None:
        if not isinstance(self.interests, dict) or not all(
            isinstance(k, str) and isinstance(v, int | float) and v > 0 for k, v in self.interests.items()
        ):
            raise ValidationError({"interests": "An object of category slug -> positive weight."})
        if not isinstance(self.devices, list) or not set(self.devices) <= set(DEVICES):
            raise ValidationError({"devices": f"A list drawn from {list(DEVICES)}."})
        if not isinstance(self.hours, list) or not all(isinstance(h, int) and 0 <= h <= 23 for h in self.hours):
            raise ValidationError({"hours": "A list of hours 0-23."})
        if self.ends_at and self.ends_at <= self.starts_at:
            raise ValidationError({"ends_at": "The campaign must end after it starts."})


class Creative(models.Model):
    """What is shown: an image with headline, text and landing URL, or sandboxed HTML."""

    class Kind(models.TextChoices):
        IMAGE = "image", "Image and text"
        HTML = "html", "HTML (sandboxed iframe)"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="creatives")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=5, choices=Kind.choices, default=Kind.IMAGE)
    size = models.CharField(max_length=20, default="fluid", help_text="fits placements of this size; fluid: any")
    image = models.FileField(upload_to="ads/", blank=True, default="")
    headline = models.CharField(max_length=120, blank=True, default="")
    body = models.CharField(max_length=300, blank=True, default="")
    cta = models.CharField(max_length=40, blank=True, default="Learn more")
    # the ONLY place a click on this creative may lead
    landing_url = models.CharField(max_length=2000, validators=[landing_url_validate])
    # rendered only inside <iframe sandbox="" srcdoc="...">: no script, no same origin, no navigation
    html = models.TextField(blank=True, default="")
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["campaign_id", "name"]

    def __str__(self) -> str:
        return self.name


class AdClick(models.Model):
    """Every request to ``/c/<token>`` with a genuine token: billed ones, and those refused with the
    reason (``adsite.ads.integrity``). Deleted after ``ADS["CLICK_RETENTION_DAYS"]``."""

    class Outcome(models.TextChoices):
        BILLED = "billed", "Billed"
        FREE = "free", "Counted, not billed (CPM or out of budget)"
        BOT = "bot", "Invalid: a bot"
        UNKNOWN_SERVE = "unknown_serve", "Invalid: names nothing the server served"
        WRONG_VISITOR = "wrong_visitor", "Invalid: not the visitor it was served to"
        REPLAY = "replay", "Invalid: clicked before"
        EXPIRED = "expired", "Invalid: expired link"
        # the ledger's answer to the charge was lost: billed or not, settled from the ledger's record
        UNSETTLED = "unsettled", "Charge unknown: the ledger's answer was lost (settled within seconds)"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    token_id = models.CharField(max_length=64, blank=True, default="")
    creative_id = models.BigIntegerField(null=True, blank=True)
    campaign_id = models.BigIntegerField(null=True, blank=True)
    placement = models.CharField(max_length=64, blank=True, default="")
    # Indexed: deleting a visitor's data finds their rows without a scan.
    user_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    price_micros = models.BigIntegerField(default=0)

    class Meta:
        # the settling task reads the few unsettled rows every few seconds: never a scan of all clicks
        indexes = [models.Index(fields=["created_at"], condition=models.Q(outcome="unsettled"), name="adclick_unsettled")]

    def __str__(self) -> str:
        return f"{self.outcome} click on creative {self.creative_id}"


class DecisionExplanation(models.Model):
    """A sample of decisions with their reasons (bounded: ``ADS["EXPLAIN_KEEP"]`` rows)."""

    decision_id = models.CharField(max_length=36, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Indexed: the dashboard's visitor page and the privacy deletion look rows up by visitor.
    user_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    explanation = models.JSONField()

    def __str__(self) -> str:
        return f"decision {self.decision_id}"


class LostReservation(models.Model):
    """A page's reservation whose answer the ad ledger (Redis) did not return: it may have run (charged a CPM
    price, held the visitor's caps, counted served impressions) while its decision served house ads. Written
    by the process that lost it, deleted once voided (``services.reservations``): that process voids it at its
    next reservation, the beat's task every few seconds, so one that dies first does not leave it counted."""

    rid = models.CharField(max_length=32, primary_key=True)  # the reservation's id: its receipts in Redis
    user_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    charges = models.JSONField()  # contract.Charge's fields, one object per placement reserved
    decided_at = models.FloatField()  # the decision's time (seconds since the epoch): its day and hour counters
    lost_at = models.FloatField(db_index=True)  # when the answer was lost (seconds since the epoch)

    def __str__(self) -> str:
        return f"lost reservation {self.rid}"

"""Dashboard views: thin. Each validates its input, calls one selector (pages) or one service
(actions: POST only, CSRF-checked, audited by the service), then renders or redirects.

One module per page family: ``overview``, ``models``, ``reports`` (analytics and the ads report),
``visitors``, ``quality``, ``audit``, ``ads``; the URLs reach them all through this package.
"""

from __future__ import annotations

from adsite.dashboard.views.ads import (
    ads,
    ads_campaign,
    campaign_form,
    campaign_status,
    creative_form,
    creative_preview,
    creative_status,
)
from adsite.dashboard.views.audit import (
    audit,
)
from adsite.dashboard.views.models import (
    model_activate,
    model_retire,
    model_rollback,
    model_shadow,
    model_shadow_stop,
    model_train,
    models,
    models_compare,
    training_run_json,
)
from adsite.dashboard.views.overview import (
    overview,
    overview_json,
)
from adsite.dashboard.views.quality import (
    quality,
    quarantine_replay,
)
from adsite.dashboard.views.reports import (
    ads_report,
    analytics,
)
from adsite.dashboard.views.visitors import (
    visitor_delete,
    visitors,
)

__all__ = [
    "ads",
    "ads_campaign",
    "ads_report",
    "analytics",
    "audit",
    "campaign_form",
    "campaign_status",
    "creative_form",
    "creative_preview",
    "creative_status",
    "model_activate",
    "model_retire",
    "model_rollback",
    "model_shadow",
    "model_shadow_stop",
    "model_train",
    "models",
    "models_compare",
    "overview",
    "overview_json",
    "quality",
    "quarantine_replay",
    "training_run_json",
    "visitor_delete",
    "visitors",
]

"""Forms of the dashboard's ads pages: Django ModelForms over the ads models (the same validation
as the admin: ``Model.full_clean``); the views hand ``cleaned_data`` to the ads services, which write."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from adsite.ads.models import Campaign, Creative
from adsite.ads.services.staff import CAMPAIGN_FIELDS, CREATIVE_FIELDS


class StaffAuthenticationForm(AuthenticationForm):
    """The dashboard's sign-in: a valid account that is not staff is refused here, not by a 403 later."""

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if not user.is_staff:
            raise forms.ValidationError("This account is not a staff account.", code="not_staff")


TARGET_ROWS_MIN = 6
MONEY_FIELDS = ("bid", "daily_budget", "total_budget")


def _money_initial(value: Any) -> str:
    """``Decimal("6.0000")`` -> ``"6.00"``; more decimals only where the value has them."""
    text = f"{value:f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


class CampaignForm(forms.ModelForm):
    """A campaign. Interest targeting is picked from the site's categories, one row per category with
    its weight (the model keeps ``{slug: weight}``); a category that is not in the taxonomy is refused.
    Amounts are in the ads currency, shown with two decimals."""

    class Meta:
        model = Campaign
        # what staff may edit (the service's list); the interests are this form's own rows
        fields = [name for name in CAMPAIGN_FIELDS if name != "interests"]
        widgets = {
            "starts_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            "ends_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            "devices": forms.TextInput(),
            "hours": forms.TextInput(),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from adsite.ads.conf import ads_setting
        from adsite.content.selectors import category_sections

        super().__init__(*args, **kwargs)
        code = ads_setting("CURRENCY")
        self.currency = code
        self.categories = dict(category_sections())
        for name in MONEY_FIELDS:
            field = self.fields[name]
            field.label = f"{field.label} ({code})"
            field.widget = forms.NumberInput(attrs={"step": "0.01", "min": "0", "inputmode": "decimal"})
            if self.instance.pk and getattr(self.instance, name) is not None:
                self.initial[name] = _money_initial(getattr(self.instance, name))
        if self.instance.pk and self.instance.tier == Campaign.Tier.HOUSE:
            for name in ("daily_budget", "total_budget"):
                self.fields[name].help_text = (
                    "House campaigns fill slots nothing else wants; their budget only needs to be large "
                    "(the ads pages show it as “no limit”)."
                )
        current = dict(self.instance.interests or {}) if self.instance.pk else {}
        choices = [("", "— none —"), *sorted(self.categories.items(), key=lambda kv: kv[1])]
        # an existing campaign's unknown slugs are shown (to be removed), never silently kept
        choices += [(slug, f"{slug} (not a category)") for slug in current if slug not in self.categories]
        rows = max(TARGET_ROWS_MIN, len(current) + 2)
        self.target_rows = []
        for i, (slug, weight) in enumerate(list(current.items()) + [("", None)] * (rows - len(current))):
            target = forms.ChoiceField(choices=choices, required=False, label=f"Category {i + 1}")
            weight_field = forms.FloatField(
                required=False, min_value=0.01, max_value=100.0, label=f"Weight {i + 1}",
                widget=forms.NumberInput(attrs={"step": "0.1", "min": "0.01"}),
            )
            self.fields[f"target_{i}"] = target
            self.fields[f"weight_{i}"] = weight_field
            self.initial.setdefault(f"target_{i}", slug)
            self.initial.setdefault(f"weight_{i}", weight if slug else None)
            self.target_rows.append((f"target_{i}", f"weight_{i}"))

    def regular_fields(self) -> list[Any]:
        return [self[name] for name in self.fields if not name.startswith(("target_", "weight_"))]

    def targeting_rows(self) -> list[tuple[Any, Any]]:
        return [(self[t], self[w]) for t, w in self.target_rows]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        interests: dict[str, float] = {}
        for target, weight in self.target_rows:
            slug = data.pop(target, "") or ""
            value = data.pop(weight, None)
            if not slug:
                continue
            if slug not in self.categories:
                self.add_error(target, f"“{slug}” is not one of the site's categories.")
                continue
            if slug in interests:
                self.add_error(target, f"{self.categories[slug]} is picked twice.")
                continue
            interests[slug] = float(value) if value is not None else 1.0
        data["interests"] = interests
        return data

    def _post_clean(self) -> None:
        # the model's own validation sees the assembled targeting
        self.instance.interests = self.cleaned_data.get("interests", self.instance.interests)
        super()._post_clean()

    @property
    def changed_data(self) -> list[str]:
        changed = [n for n in super().changed_data if not n.startswith(("target_", "weight_"))]
        if any(n.startswith(("target_", "weight_")) for n in super().changed_data):
            changed.append("interests")
        return changed


class CreativeForm(forms.ModelForm):
    class Meta:
        model = Creative
        fields = list(CREATIVE_FIELDS)  # what staff may edit: the service's list
        widgets = {"html": forms.Textarea(attrs={"rows": 6}), "body": forms.Textarea(attrs={"rows": 2})}
        help_texts = {
            "html": 'Shown only inside <iframe sandbox="" srcdoc>: scripts, forms and navigation are blocked.'
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # a campaign's label names its advertiser: one joined query for the whole list
        self.fields["campaign"].queryset = Campaign.objects.select_related("advertiser")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("kind") == Creative.Kind.HTML and not (data.get("html") or "").strip():
            self.add_error("html", "An HTML creative needs its HTML.")
        return data

"""Forms of the dashboard's ads pages: Django ModelForms over the ads models (the same validation
as the admin: ``Model.full_clean``); the views hand ``cleaned_data`` to the ads services, which write."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm

from adsite.ads.models import Campaign, Creative


class StaffAuthenticationForm(AuthenticationForm):
    """The dashboard's sign-in: a valid account that is not staff is refused here, not by a 403 later."""

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if not user.is_staff:
            raise forms.ValidationError("This account is not a staff account.", code="not_staff")


class CampaignForm(forms.ModelForm):
    class Meta:
        model = Campaign
        fields = [
            "advertiser",
            "name",
            "status",
            "tier",
            "starts_at",
            "ends_at",
            "pricing",
            "bid",
            "daily_budget",
            "total_budget",
            "interests",
            "interest_min_score",
            "devices",
            "hours",
            "cap_per_hour",
            "cap_per_day",
        ]
        widgets = {
            "starts_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            "ends_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            "interests": forms.Textarea(attrs={"rows": 2}),
            "devices": forms.TextInput(),
            "hours": forms.TextInput(),
        }
        help_texts = {
            "interests": 'JSON: category slug → weight, e.g. {"travel": 1.0, "sports": 0.3}; {} targets everyone.',
        }


class CreativeForm(forms.ModelForm):
    class Meta:
        model = Creative
        fields = [
            "campaign",
            "name",
            "kind",
            "size",
            "image",
            "headline",
            "body",
            "cta",
            "landing_url",
            "html",
            "active",
        ]
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

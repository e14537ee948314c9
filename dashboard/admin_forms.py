"""The administration forms: what an organisation's admin may change, validated before anything is saved.

Validation happens here (Django forms), never in the view: an allowed_signers text that OpenSSH would read
differently from what the admin meant is refused with the line that is wrong, rather than stored and then
refusing every report.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.validators import MaxValueValidator, MinValueValidator

from dashboard.models import Organisation, Role
from dashboard.texts import text
from reports.signing.allowed_signers import parse as parse_allowed_signers
from reports.signing.errors import AllowedSignersError

#: Bounds of the per-organisation report size cap: a real report of one machine is ~110 KB; a fleet's
#: inventory report can be some MB. Beyond 64 MiB a single report is not a report.
MIN_REPORT_BYTES = 64 * 1024
MAX_REPORT_BYTES = 64 * 1024 * 1024
MAX_STALE_HOURS = 24 * 90
#: The allowed_signers text is kept in the database; a few hundred keys is already a large office.
MAX_SIGNERS_CHARS = 256 * 1024


def check_allowed_signers(signers: str, lang: str = "ja") -> str:
    """``signers`` if OpenSSH's allowed_signers syntax accepts every line; else a ValidationError naming the line
    (the parser's message: ``allowed_signers:LINE: reason``)."""
    signers = signers.replace("\r\n", "\n")
    try:
        parse_allowed_signers(signers, "allowed_signers")
    except AllowedSignersError as e:
        raise forms.ValidationError(f"{text('admin_signers_invalid', lang)} {e}", code="allowed_signers") from None
    return signers


class LangForm(forms.Form):
    """A form whose own messages are in the page's language (Django's built-in ones follow LocaleMiddleware)."""

    def __init__(self, *args: Any, lang: str = "ja", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lang = lang


# django-stubs makes ModelForm generic for mypy only (at run time it cannot be subscripted).
class OrganisationSettingsForm(forms.ModelForm):  # type: ignore[type-arg]
    allowed_signers = forms.CharField(required=False, max_length=MAX_SIGNERS_CHARS, strip=False,
                                      widget=forms.Textarea(attrs={"rows": 8, "cols": 100, "spellcheck": "false"}))
    stale_after_hours = forms.IntegerField(validators=[MinValueValidator(1), MaxValueValidator(MAX_STALE_HOURS)])
    max_report_bytes = forms.IntegerField(validators=[MinValueValidator(MIN_REPORT_BYTES),
                                                      MaxValueValidator(MAX_REPORT_BYTES)])

    class Meta:
        model = Organisation
        fields = ("allowed_signers", "accept_unsigned", "stale_after_hours", "max_report_bytes")

    def __init__(self, *args: Any, lang: str = "ja", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lang = lang

    def clean_allowed_signers(self) -> str:
        return check_allowed_signers(self.cleaned_data.get("allowed_signers") or "", self.lang)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)


class AddMemberForm(LangForm):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=Role.choices)

    def clean_username(self) -> Any:
        name = self.cleaned_data["username"]
        user = get_user_model().objects.filter(username=name, is_active=True).first()
        if user is None:
            raise forms.ValidationError(text("admin_unknown_user", self.lang), code="unknown_user")
        return user


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class NewOrganisationForm(forms.ModelForm):  # type: ignore[type-arg]
    class Meta:
        model = Organisation
        fields = ("slug", "name")

"""The create-room form of the lobby."""

from django import forms
from django.core.validators import RegexValidator

from chatsite.rooms.models import Room
from chatsite.rooms.validation import is_control

# Slugs become URL segments and channel names: keep them boring.
slug_validator = RegexValidator(
    r"^[a-z0-9]+(?:-[a-z0-9]+)*\Z",
    "Use lowercase letters, digits and single hyphens (e.g. “book-club”).",
)


class RoomForm(forms.ModelForm):
    """Slug, title and optional description, with errors a person can act on."""

    slug = forms.CharField(max_length=50, validators=[slug_validator],
                           help_text="Lowercase letters, digits and hyphens; used in the address.")
    title = forms.CharField(max_length=100)
    description = forms.CharField(max_length=500, required=False, widget=forms.Textarea(
        attrs={"rows": 2}))

    class Meta:
        model = Room
        fields = ["slug", "title", "description"]

    def clean_title(self) -> str:
        title = self.cleaned_data["title"]
        if any(is_control(c) for c in title):
            raise forms.ValidationError("Titles cannot contain control characters.")
        return title

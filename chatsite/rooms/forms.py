"""The create-room form of the lobby."""

from typing import Any

from django import forms
from django.core.validators import RegexValidator

from chatsite.rooms.conf import max_rooms_per_user
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
    private = forms.BooleanField(required=False, label="Private (members only)")

    class Meta:
        model = Room
        fields = ["slug", "title", "description", "private"]

    def __init__(self, *args: Any, owner: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.owner = owner

    def clean_private(self) -> bool:
        private = bool(self.cleaned_data.get("private"))
        if private and self.owner is None:
            raise forms.ValidationError("Log in to create a private room.")
        return private

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.owner is not None:
            cap = max_rooms_per_user()
            if Room.objects.filter(owner=self.owner).count() >= cap:
                raise forms.ValidationError(f"You already own {cap} rooms, the most one "
                                            "account may have.")
        return cleaned

    def save(self, commit: bool = True) -> Room:
        room = super().save(commit=False)
        room.owner = self.owner
        if commit:
            room.save()
        return room

    def clean_title(self) -> str:
        title = self.cleaned_data["title"]
        if any(is_control(c) for c in title):
            raise forms.ValidationError("Titles cannot contain control characters.")
        return title

"""The sign-up form: Django's UserCreationForm, with the chat's rules for names."""

from typing import Any

from django import forms
from django.contrib.auth.forms import UserCreationForm

from chatsite.rooms.conf import MAX_NICK
from chatsite.rooms.names import held_by_guest
from chatsite.rooms.validation import clean_nick


class SignUpForm(UserCreationForm):
    """A username that is a valid chat name (the user posts under it), at most
    ``MAX_NICK`` characters, and not a name another guest holds right now (the
    visitor's own guest name may become their account: ``guest_session``)."""

    def __init__(self, *args: Any, guest_session: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guest_session = guest_session

    def clean_username(self) -> str:
        username = super().clean_username()
        if username is None:  # Django found it taken (in any case) and said so
            return ""
        if len(username) > MAX_NICK:
            raise forms.ValidationError(f"Usernames are at most {MAX_NICK} characters.")
        try:
            clean_nick(username)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        if held_by_guest(username, except_session=self.guest_session):
            raise forms.ValidationError("A guest is chatting under this name right now: "
                                        "pick another.")
        return username

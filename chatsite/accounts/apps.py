"""Accounts: sign-up, login, logout and password change with Django's own auth."""

from typing import Any

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "chatsite.accounts"
    label = "accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_logged_out

        user_logged_in.connect(_release_guest_name, dispatch_uid="chat-release-on-login")
        user_logged_out.connect(_release_guest_name, dispatch_uid="chat-release-on-logout")


def _release_guest_name(sender: Any, request: Any, **kwargs: Any) -> None:
    """A guest who logs in posts as their username from now on; one who logs out
    loses the session: either way the guest name they held is free again."""
    from chatsite.rooms.names import release

    if request is not None and hasattr(request, "session"):
        release(request)

"""Two rooms exist after the first migrate, so a new visitor lands in a live site."""

from django.db import migrations

DEFAULT_ROOMS = [
    ("lobby", "General", "Say hello: everyone lands here first."),
    ("random", "Random", "Anything goes."),
]


def create_rooms(apps, schema_editor):  # type: ignore[no-untyped-def]
    Room = apps.get_model("rooms", "Room")
    for slug, title, description in DEFAULT_ROOMS:
        Room.objects.get_or_create(slug=slug, defaults={"title": title,
                                                        "description": description})


class Migration(migrations.Migration):
    dependencies = [("rooms", "0001_initial")]

    operations = [migrations.RunPython(create_rooms, migrations.RunPython.noop)]

"""AdClick outcomes name the invalid-traffic reasons (forged -> unknown_serve, replayed -> replay)."""

from django.db import migrations, models

RENAMED = {"forged": "unknown_serve", "replayed": "replay"}


def forwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    AdClick = apps.get_model("ads", "AdClick")
    for old, new in RENAMED.items():
        AdClick.objects.filter(outcome=old).update(outcome=new)


def backwards(apps, schema_editor):  # type: ignore[no-untyped-def]
    AdClick = apps.get_model("ads", "AdClick")
    for old, new in RENAMED.items():
        AdClick.objects.filter(outcome=new).update(outcome=old)


class Migration(migrations.Migration):
    dependencies = [("ads", "0002_visitor_indexes")]

    operations = [
        migrations.AlterField(
            model_name="adclick",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("billed", "Billed"),
                    ("free", "Counted, not billed (CPM or out of budget)"),
                    ("bot", "Invalid: a bot"),
                    ("unknown_serve", "Invalid: names nothing the server served"),
                    ("wrong_visitor", "Invalid: not the visitor it was served to"),
                    ("replay", "Invalid: clicked before"),
                    ("expired", "Invalid: expired link"),
                ],
                max_length=16,
            ),
        ),
        migrations.RunPython(forwards, backwards),
    ]

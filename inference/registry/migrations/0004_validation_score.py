import math

from django.db import migrations, models


def scores_from_metrics(apps, schema_editor):
    """Existing versions: the NDCG@5 their own training run stored with them."""
    ModelVersion = apps.get_model("inference_registry", "ModelVersion")
    for row in ModelVersion.objects.all().only("pk", "metrics"):
        value = (((row.metrics or {}).get("results") or {}).get("model") or {}).get("ndcg@5")
        if isinstance(value, int | float) and math.isfinite(value):
            ModelVersion.objects.filter(pk=row.pk).update(validation_score=float(value))


class Migration(migrations.Migration):

    dependencies = [
        ("inference_registry", "0003_baseline_rankers"),
    ]

    operations = [
        migrations.AddField(
            model_name="modelversion",
            name="validation_score",
            field=models.FloatField(blank=True, null=True),
        ),
        migrations.RunPython(scores_from_metrics, migrations.RunPython.noop),
    ]

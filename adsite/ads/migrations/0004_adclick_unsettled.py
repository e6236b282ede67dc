# The unsettled outcome (a click whose charge's answer was lost) and the index its settling reads.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ads', '0003_adclick_reasons'),
    ]

    operations = [
        migrations.AlterField(
            model_name='adclick',
            name='outcome',
            field=models.CharField(choices=[('billed', 'Billed'), ('free', 'Counted, not billed (CPM or out of budget)'), ('bot', 'Invalid: a bot'), ('unknown_serve', 'Invalid: names nothing the server served'), ('wrong_visitor', 'Invalid: not the visitor it was served to'), ('replay', 'Invalid: clicked before'), ('expired', 'Invalid: expired link'), ('unsettled', "Charge unknown: the ledger's answer was lost (settled within seconds)")], max_length=16),
        ),
        migrations.AddIndex(
            model_name='adclick',
            index=models.Index(condition=models.Q(('outcome', 'unsettled')), fields=['created_at'], name='adclick_unsettled'),
        ),
    ]

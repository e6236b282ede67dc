# Reservations whose answer the ledger lost, kept until voided (adsite.ads.services.reservations).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ads', '0004_adclick_unsettled'),
    ]

    operations = [
        migrations.CreateModel(
            name='LostReservation',
            fields=[
                ('rid', models.CharField(max_length=32, primary_key=True, serialize=False)),
                ('user_id', models.CharField(blank=True, db_index=True, default='', max_length=64)),
                ('charges', models.JSONField()),
                ('decided_at', models.FloatField()),
                ('lost_at', models.FloatField(db_index=True)),
            ],
        ),
    ]

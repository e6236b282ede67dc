"""Drop the ``(type, received_at)`` index of ``tracking_event``.

No query filters events on ``type`` together with ``received_at``: the dashboard's per-minute counts
filter on a ``received_at`` window only (served by ``event_received``) and group by type; the purge
uses ``received_at`` alone. The index only cost every insert (import and ``/collect``): see
docs/benchmarks.md, Tracking. ``RemoveIndex`` is a plain ``DROP INDEX`` on SQLite and PostgreSQL alike,
and reversing it recreates the index.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("tracking", "0001_initial"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="event",
            name="event_type_received",
        ),
    ]

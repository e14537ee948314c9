"""Observation.finding_set without an index: no query looks observations up by their set (only deleting an
organisation does, through PROTECT); ~15 B per host-day on PostgreSQL (benchmarks/dashboard.py)."""


import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('dashboard', '0006_report_no_by_status'),
    ]

    operations = [
        migrations.AlterField(
            model_name='observation',
            name='finding_set',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='dashboard.findingset'),
        ),
    ]

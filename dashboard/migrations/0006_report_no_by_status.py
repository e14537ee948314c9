"""Report.by_status dropped: no page read it (the finding sets keep their own counts), and it cost ~100 B of
every daily report row on PostgreSQL (avg pg_column_size 102, benchmarks/dashboard.py). Backwards the column
comes back empty."""


from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('dashboard', '0005_finding_dedup'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='report',
            name='by_status',
        ),
    ]

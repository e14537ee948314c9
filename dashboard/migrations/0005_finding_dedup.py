"""Findings stored once per organisation (by content hash) and shared by the finding sets that contain them.

Until now a finding belonged to one set, so a set that differed from an earlier one in a single evidence value
repeated all of its findings. Existing rows are converted in place: each finding gets its organisation (its
set's) and its hash (computed from the row as dashboard.ingest.finding_sha256 does, so later reports share the
converted rows); one finding per (organisation, hash) survives, every set lists its findings as SetMember rows
pointing at the survivors, and the other copies (with their guideline items, which are the same) are deleted.

Backwards, a finding listed by several sets is copied once per further set (with its items): the old schema
has one set per finding. The (organisation, hash) → survivor map is held in memory: ~100 B per distinct
finding.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import django.db.models.deletion
from django.db import migrations, models

#: A frozen copy of dashboard.ingest.FINDING_FIELDS / finding_sha256 at the time of this migration.
FIELDS = ("check_id", "status", "severity", "guideline", "title", "message", "remediation", "expected",
          "evidence", "waived", "waiver", "attestation")
PAGE = 2000


def _sha256(row: dict[str, Any]) -> str:
    data = json.dumps({k: row[k] for k in FIELDS}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode("utf-8")).hexdigest()


def _checked_now(schema_editor: Any) -> None:
    """PostgreSQL checks foreign keys at commit (Django makes them deferrable), and refuses to ALTER a table
    with checks still pending: run them now, before the operations after this one alter the tables."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        schema_editor.execute("SET CONSTRAINTS ALL DEFERRED")


def share(apps: Any, schema_editor: Any) -> None:
    Finding = apps.get_model("dashboard", "Finding")
    FindingItem = apps.get_model("dashboard", "FindingItem")
    SetMember = apps.get_model("dashboard", "SetMember")
    columns = [f for f in FIELDS if f != "evidence"]
    survivors: dict[tuple[int, str], int] = {}
    last = 0
    while True:  # pages by primary key: no cursor stays open while the same table is written
        rows = list(Finding.objects.filter(pk__gt=last).order_by("pk")
                    .values("pk", "finding_set_id", "finding_set__organisation_id", "evidence__sha256", *columns)
                    [:PAGE])
        if not rows:
            break
        last = rows[-1]["pk"]
        keep, members, duplicates = [], [], []
        for row in rows:
            row["evidence"] = row["evidence__sha256"]
            org, digest = row["finding_set__organisation_id"], _sha256(row)
            survivor = survivors.setdefault((org, digest), row["pk"])
            members.append(SetMember(finding_set_id=row["finding_set_id"], finding_id=survivor))
            if survivor == row["pk"]:
                keep.append(Finding(pk=row["pk"], organisation_id=org, sha256=digest))
            else:
                duplicates.append(row["pk"])
        Finding.objects.bulk_update(keep, ["organisation", "sha256"], batch_size=500)
        SetMember.objects.bulk_create(members, batch_size=500)
        for i in range(0, len(duplicates), 500):
            FindingItem.objects.filter(finding_id__in=duplicates[i:i + 500]).delete()
            Finding.objects.filter(pk__in=duplicates[i:i + 500]).delete()
    _checked_now(schema_editor)


def unshare(apps: Any, schema_editor: Any) -> None:
    Finding = apps.get_model("dashboard", "Finding")
    FindingItem = apps.get_model("dashboard", "FindingItem")
    SetMember = apps.get_model("dashboard", "SetMember")
    placed: set[int] = set()
    last = 0
    while True:
        members = list(SetMember.objects.filter(pk__gt=last).order_by("pk").values_list("pk", "finding_set_id",
                                                                                         "finding_id")[:PAGE])
        if not members:
            break
        last = members[-1][0]
        first, copies = [], []
        for _pk, set_id, finding_id in members:
            if finding_id in placed:
                copies.append((set_id, finding_id))
            else:
                placed.add(finding_id)
                first.append(Finding(pk=finding_id, finding_set_id=set_id))
        Finding.objects.bulk_update(first, ["finding_set"], batch_size=500)
        if copies:
            originals = Finding.objects.in_bulk({f for _, f in copies})
            made = []
            for set_id, finding_id in copies:
                copy = Finding(**{f.attname: getattr(originals[finding_id], f.attname)
                                  for f in Finding._meta.concrete_fields if not f.primary_key})
                copy.finding_set_id = set_id
                made.append((copy, finding_id))
            Finding.objects.bulk_create([c for c, _ in made], batch_size=500)
            items: dict[int, list[tuple[str, str]]] = {}
            for fid, item, status in FindingItem.objects.filter(finding_id__in=[f for _, f in made]) \
                    .values_list("finding_id", "item", "status"):
                items.setdefault(fid, []).append((item, status))
            FindingItem.objects.bulk_create([FindingItem(finding_id=c.pk, item=item, status=status)
                                             for c, fid in made for item, status in items.get(fid, [])],
                                            batch_size=500)
    Finding.objects.filter(finding_set__isnull=True).delete()  # in no set: the old schema cannot hold it
    _checked_now(schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ('dashboard', '0004_lean_indexes'),
    ]

    operations = [
        migrations.CreateModel(
            name='SetMember',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('finding', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='dashboard.finding')),
                ('finding_set', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='members', to='dashboard.findingset')),
            ],
            options={
                'indexes': [models.Index(fields=['finding_set', 'finding'], name='set_member')],
            },
        ),
        migrations.AddField(
            model_name='finding',
            name='organisation',
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='dashboard.organisation'),
        ),
        migrations.AddField(
            model_name='finding',
            name='sha256',
            field=models.CharField(max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name='finding',
            name='finding_set',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='findings', to='dashboard.findingset'),
        ),
        migrations.RunPython(share, unshare),
        migrations.RemoveIndex(
            model_name='finding',
            name='dashboard_f_finding_a0cf80_idx',
        ),
        migrations.RemoveField(
            model_name='finding',
            name='finding_set',
        ),
        migrations.AlterField(
            model_name='finding',
            name='organisation',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='dashboard.organisation'),
        ),
        migrations.AlterField(
            model_name='finding',
            name='sha256',
            field=models.CharField(max_length=64),
        ),
        migrations.AddConstraint(
            model_name='finding',
            constraint=models.UniqueConstraint(fields=('organisation', 'sha256'), name='one_finding_per_hash'),
        ),
        migrations.AddField(
            model_name='findingset',
            name='findings',
            field=models.ManyToManyField(related_name='finding_sets', through='dashboard.SetMember', to='dashboard.finding'),
        ),
    ]

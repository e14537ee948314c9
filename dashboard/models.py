"""What the dashboard stores: each report's bytes as received, and its findings normalised for the views.

Storage is shaped by one fact of daily scans: most days nothing changes, and on the days something does, it is
one or two findings of a host's ~36. So what repeats is stored once per organisation by content hash — the set
of findings a host had (``FindingSet``), each finding (``Finding``, with its guideline items), each finding's
evidence (``Evidence``) — and a set is its list of findings (``SetMember`` rows, one small row per finding).
A day on which a host is unchanged costs one ``Observation`` row plus the compressed difference of its report
bytes (``Blob``: zstd against an earlier report of the same series); a day on which one evidence counter
changed (LG-01's ``processes_seen`` does on a real machine nearly every day) costs a new set, its member rows
and the one changed finding. Before findings were shared (each belonged to one set), such a day wrote the
whole set's ~36 findings again with their ja/en texts: 61,440 B per report, more than keeping the report as
a zstd'd file; shared, 4,582 B (benchmarks/dashboard.py, SQLite, 100 hosts x 60 days; there the new
counter value is the same on every host, so the changed finding is mostly shared too: a value of each host's
own adds its one Finding row, ~1.7 KB).
Everything hangs off an ``Organisation``: every query a page makes starts there (dashboard.access), which is
what keeps one client's data out of another's pages.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Func


class Prefix8(Func):
    """The first 8 characters of a text column, with the bounds written into the SQL: SQLite matches an
    expression index only against the very same expression, and Django's Substr passes its bounds as query
    parameters (then the index served ``series_id`` alone)."""

    function = "SUBSTR"
    template = "%(function)s(%(expressions)s, 1, 8)"
    output_field = models.CharField()


class After8(Func):
    """The rest of a text column after its first 8 characters. A look-up compares the prefix (indexed) and this
    instead of the whole column: SQLite 3.40 drops the expression part of the index when the same query also
    compares the plain column (seen with EXPLAIN QUERY PLAN)."""

    function = "SUBSTR"
    template = "%(function)s(%(expressions)s, 9)"
    output_field = models.CharField()


class Organisation(models.Model):
    """A client office (or a company): the unit of isolation, of API tokens and of trusted signers."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    #: OpenSSH allowed_signers text: whose signatures this organisation's reports must carry.
    allowed_signers = models.TextField(blank=True, default="")
    #: Accept reports with no signature at all (off by default: refused with the reason).
    accept_unsigned = models.BooleanField(default=False)
    max_report_bytes = models.PositiveIntegerField(default=16 * 1024 * 1024)
    #: A host with no report for this long is listed as having stopped reporting.
    stale_after_hours = models.PositiveIntegerField(default=48)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.slug


class Role(models.TextChoices):
    VIEWER = "viewer", "viewer"
    ADMIN = "admin", "admin"


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organisation"], name="one_membership")]


class ApiToken(models.Model):
    """A site's ingest credential. Only the SHA-256 of the token is kept (tokens are 256 random bits, so a
    fast hash is enough); ``prefix`` lets an admin tell tokens apart without the secret."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)


class Blob(models.Model):
    """Report bytes, compressed. ``base`` (if any) is the zstd dictionary: an earlier report's raw bytes.

    A blob with a base is never itself a base, so reading any report decompresses at most two blobs.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    codec = models.CharField(max_length=16)  # "zstd" or "zstd-dict"
    base = models.ForeignKey("self", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    data = models.BinaryField()
    raw_size = models.PositiveIntegerField()


class Series(models.Model):
    """The reports one agent writes into one directory (operator host + scope): one hash chain."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="series")
    key = models.CharField(max_length=512)
    #: The newest report of the chain as received so far.
    head = models.ForeignKey("Report", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organisation", "key"], name="one_series_key")]


class Chain(models.TextChoices):
    FIRST = "first", "first"  # names no previous report
    LINKED = "linked", "linked"  # its previous report is here and was the series' head
    GAP = "gap", "gap"  # names a previous report this dashboard has not received
    FORK = "fork", "fork"  # its previous report already has another successor


class SignatureStatus(models.TextChoices):
    VERIFIED = "verified", "verified"
    UNSIGNED = "unsigned", "unsigned"  # only when the organisation accepts unsigned reports


class Source(models.TextChoices):
    API = "api", "api"
    UPLOAD = "upload", "upload"


class Report(models.Model):
    # No single-column index where a composite one starts with the column (one_report_per_hash,
    # (organisation, started), report_series_successor), none on token/uploaded_by (only deletions look them
    # up): every index costs bytes on each daily report (benchmarks/dashboard.py).
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="reports", db_index=False)
    sha256 = models.CharField(max_length=64)
    series = models.ForeignKey(Series, on_delete=models.PROTECT, related_name="reports", db_index=False)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")
    signature = models.BinaryField(null=True, blank=True)  # the .sig exactly as received
    signature_status = models.CharField(max_length=16, choices=SignatureStatus.choices)
    signer_fingerprint = models.CharField(max_length=100, blank=True, default="")
    signer_principals = models.CharField(max_length=500, blank=True, default="")
    size = models.PositiveIntegerField()
    run_id = models.CharField(max_length=64)
    started = models.DateTimeField()
    finished = models.DateTimeField(null=True, blank=True)
    received = models.DateTimeField(auto_now_add=True)
    tool_version = models.CharField(max_length=64, blank=True, default="")
    policy_name = models.CharField(max_length=200, blank=True, default="")
    policy_sha256 = models.CharField(max_length=64, blank=True, default="")
    operator_user = models.CharField(max_length=200, blank=True, default="")
    operator_host = models.CharField(max_length=255, blank=True, default="")
    partial = models.BooleanField(default=False)
    previous_sha256 = models.CharField(max_length=64, blank=True, default="")
    chain = models.CharField(max_length=16, choices=Chain.choices)
    chain_detail = models.CharField(max_length=500, blank=True, default="")
    source = models.CharField(max_length=16, choices=Source.choices)
    token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                              db_index=False)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+", db_index=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organisation", "sha256"], name="one_report_per_hash")]
        indexes = [models.Index(fields=["organisation", "started"]),
                   # Successors of a report are found by the first 8 hex digits of the hash they name (then
                   # compared in full): 141 -> ~45 B per host-day of index at 1,000 hosts x 365 days, for
                   # a look-up that meets at most a handful of rows per series (dashboard.ingest.successors).
                   models.Index(F("series"), Prefix8("previous_sha256"), name="report_series_successor"),
                   models.Index(fields=["organisation", "started"], condition=models.Q(chain__in=["gap", "fork"]),
                                name="report_broken_chain"),  # the overview's attention list (PostgreSQL)
                   # the same for SQLite, which cannot use a partial index for a query with bound parameters:
                   # queries.broken_series 1.2 s -> 0.3 ms at 1,000 hosts x 365 days (benchmarks/dashboard.py)
                   models.Index(fields=["organisation", "chain"], name="report_org_chain")]


class Host(models.Model):
    """A machine as reports name it: by machine id where the report has one, else by host name."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="hosts")
    key = models.CharField(max_length=300)
    hostname = models.CharField(max_length=255)
    os = models.CharField(max_length=255, blank=True, default="")
    kind = models.CharField(max_length=32, blank=True, default="")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    #: The observation from the report with the latest ``started`` time (not the latest received).
    latest = models.ForeignKey("Observation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organisation", "key"], name="one_host_key")]


class Evidence(models.Model):
    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    sha256 = models.CharField(max_length=64)
    data = models.JSONField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organisation", "sha256"], name="one_evidence_per_hash")]


class FindingSet(models.Model):
    """Everything one host's part of a report found, stored once however many days it repeats."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    sha256 = models.CharField(max_length=64)
    by_status = models.JSONField(default=dict)
    #: dashboard.summary: guideline item → {"bad", "counts" per grid column}; what the overview reads.
    items = models.JSONField(default=dict)
    #: Any finding that makes the host non-compliant (unwaived fail, error, open manual).
    bad = models.BooleanField(default=False)
    findings: models.ManyToManyField[Finding, SetMember] = models.ManyToManyField(
        "Finding", through="SetMember", related_name="finding_sets")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organisation", "sha256"], name="one_finding_set_per_hash")]


class Finding(models.Model):
    """One finding as a host's report states it (without its target and duration), stored once per organisation
    however many sets (hosts, days) contain it: ``sha256`` is dashboard.ingest.finding_sha256 of the row."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+",
                                     db_index=False)  # one_finding_per_hash starts with it
    sha256 = models.CharField(max_length=64)
    check_id = models.CharField(max_length=32)
    status = models.CharField(max_length=16)
    severity = models.CharField(max_length=16, blank=True, default="")
    guideline = models.JSONField(default=list)
    title = models.JSONField(default=dict)  # {"ja": …, "en": …}
    message = models.JSONField(default=dict)
    remediation = models.JSONField(default=dict)
    expected = models.JSONField(null=True, blank=True)
    evidence = models.ForeignKey(Evidence, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    waived = models.BooleanField(default=False)
    waiver = models.JSONField(null=True, blank=True)
    attestation = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organisation", "sha256"], name="one_finding_per_hash")]
        indexes = [models.Index(fields=["check_id", "status"])]


class SetMember(models.Model):
    """One finding of one set. Not unique: a report may list the same finding twice for one target (nothing
    in its schema forbids it), and the set's counts (``by_status``, ``items``) count it twice, so its rows do."""

    finding_set = models.ForeignKey(FindingSet, on_delete=models.CASCADE, related_name="members",
                                    db_index=False)  # (finding_set, finding) below serves every set's look-up
    finding = models.ForeignKey(Finding, on_delete=models.CASCADE, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["finding_set", "finding"], name="set_member")]


class FindingItem(models.Model):
    """One guideline item a finding maps to: the overview's item × status grid is a GROUP BY on this."""

    finding = models.ForeignKey(Finding, on_delete=models.CASCADE, related_name="items")
    item = models.CharField(max_length=64)
    status = models.CharField(max_length=16)

    class Meta:
        indexes = [models.Index(fields=["item", "status"])]


class Observation(models.Model):
    """One host's part of one report: the row a daily unchanged scan adds."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="observations")
    host = models.ForeignKey(Host, on_delete=models.CASCADE, related_name="observations",
                             db_index=False)  # (host, started) below serves every look-up by host
    target_id = models.CharField(max_length=255)
    status = models.CharField(max_length=32)  # the target's status in the report ("ok", "unreachable" …)
    error = models.TextField(blank=True, default="")
    # No index: every query goes from an observation to its set (by the set's primary key), none from a set
    # to its observations but deleting an organisation's sets (PROTECT's check); 15 B per host-day.
    finding_set = models.ForeignKey(FindingSet, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
                                    db_index=False)
    started = models.DateTimeField()  # = report.started, copied so a host's timeline needs no join

    class Meta:
        indexes = [models.Index(fields=["host", "started"])]


class Rejection(models.Model):
    """A delivery that was refused: shown to the organisation's admins, so a broken agent is noticed."""

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="rejections")
    at = models.DateTimeField(auto_now_add=True)
    token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    sha256 = models.CharField(max_length=64, blank=True, default="")
    size = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=500)


class AuditEntry(models.Model):
    """An admin action (tokens, members, signers, settings, uploads): who, when, from where, what."""

    at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    organisation = models.ForeignKey(Organisation, null=True, blank=True, on_delete=models.CASCADE,
                                     related_name="audit_entries")
    action = models.CharField(max_length=64)
    detail = models.JSONField(default=dict)
    address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["organisation", "at"])]


class DailyItemSummary(models.Model):
    """One Tokyo day of one organisation, per guideline item: how many host observations had the item and how
    many of them were compliant. The overview's trend reads these (365 days × ~30 items) instead of joining a
    year of observations to their findings on every request. A cache, derived from Observation + FindingSet
    by dashboard.queries.refresh_daily (never written by ingest); deleting the rows only costs a recomputation.
    """

    organisation = models.ForeignKey(Organisation, on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    item = models.CharField(max_length=64)
    hosts = models.PositiveIntegerField()
    compliant = models.PositiveIntegerField()

    objects: models.Manager[DailyItemSummary] = models.Manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organisation", "day", "item"], name="one_summary_per_day")]


class SummaryWatermark(models.Model):
    """Up to which Report id the organisation's DailyItemSummary rows are known to be complete."""

    organisation = models.OneToOneField(Organisation, on_delete=models.CASCADE, related_name="+")
    last_report_id = models.BigIntegerField(default=0)

    objects: models.Manager[SummaryWatermark] = models.Manager()

"""Report bytes at rest: zstd, against an earlier report of the same series where that pays.

Two daily reports of an unchanged host differ in a run id, a few time stamps and the checks' durations, so
compressing a report with an earlier one of its series as a raw-content dictionary leaves a few hundred bytes
where a full compression leaves some twenty thousand. The earlier report used as the dictionary is a
*keyframe*: a blob stored whole (no base). A blob with a base is never itself a base, so reading any report
decompresses at most two blobs, and a damaged delta never spoils another report. A new keyframe is taken when
the delta is not much smaller than a full compression (the host changed a lot) or after ``KEYFRAME_EVERY``
deltas, which bounds how much a keyframe's damage or deletion could affect.

The bytes handed back by :func:`report_bytes` are exactly the bytes received: the ``.sig`` covers them, and
anyone may re-verify a downloaded report with ``ssh-keygen -Y verify`` at any time.
"""

from __future__ import annotations

import zstandard

from dashboard.models import Blob, Organisation, Report, Series

#: zstd level: level 10 compresses a 110 KB report in a few milliseconds and its delta in about one.
LEVEL = 10
#: At most this many deltas against one keyframe before a new one is taken.
KEYFRAME_EVERY = 60
#: A delta at or below raw size / this is kept without trying a full compression (zstd never does that well
#: on JSON without a dictionary, so the comparison could not favour the full blob).
CLEARLY_SMALL = 32
#: Otherwise the delta is kept only when it is at most this share of a full compression.
DELTA_SHARE = 0.5

CODEC_FULL = "zstd"
CODEC_DELTA = "zstd-dict"


def _dictionary(raw: bytes) -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(raw, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def _decompress(blob: Blob, base_raw: bytes | None) -> bytes:
    data = bytes(blob.data)
    if blob.codec == CODEC_FULL:
        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=blob.raw_size)
    elif blob.codec == CODEC_DELTA:
        if base_raw is None:
            raise ValueError(f"blob {blob.pk}: a delta without its base")
        raw = zstandard.ZstdDecompressor(dict_data=_dictionary(base_raw)).decompress(
            data, max_output_size=blob.raw_size)
    else:
        raise ValueError(f"blob {blob.pk}: unknown codec {blob.codec!r}")
    if len(raw) != blob.raw_size:
        raise ValueError(f"blob {blob.pk}: {len(raw)} bytes where {blob.raw_size} were stored")
    return raw


def blob_bytes(blob: Blob) -> bytes:
    """The raw bytes a blob holds (its base decompressed first when it is a delta)."""
    base_raw = None
    if blob.base_id is not None:
        base = Blob.objects.get(pk=blob.base_id)
        base_raw = _decompress(base, None)
    return _decompress(blob, base_raw)


def report_bytes(report: Report) -> bytes:
    """The exact bytes of ``report`` as they were received."""
    return blob_bytes(report.blob)


def _keyframe_of(series: Series) -> Blob | None:
    """The keyframe the series' next delta should use: that of the most recently stored report, if it still
    has room for another delta."""
    last = (Report.objects.filter(series=series).order_by("-pk").select_related("blob").first())
    if last is None:
        return None
    keyframe = last.blob if last.blob.base_id is None else Blob.objects.filter(pk=last.blob.base_id).first()
    if keyframe is None:
        return None
    if Blob.objects.filter(base=keyframe).count() >= KEYFRAME_EVERY:
        return None
    return keyframe


def store(organisation: Organisation, series: Series, raw: bytes) -> Blob:
    """A new blob holding ``raw``: a delta against the series' keyframe where that is much smaller."""
    keyframe = _keyframe_of(series)
    if keyframe is not None:
        base_raw = _decompress(keyframe, None)
        delta = zstandard.ZstdCompressor(level=LEVEL, dict_data=_dictionary(base_raw)).compress(raw)
        keep = len(delta) * CLEARLY_SMALL <= len(raw)
        if not keep:
            full = zstandard.ZstdCompressor(level=LEVEL).compress(raw)
            keep = len(delta) <= DELTA_SHARE * len(full)
            if not keep:
                return Blob.objects.create(organisation=organisation, codec=CODEC_FULL, data=full,
                                           raw_size=len(raw))
        return Blob.objects.create(organisation=organisation, codec=CODEC_DELTA, base=keyframe, data=delta,
                                   raw_size=len(raw))
    full = zstandard.ZstdCompressor(level=LEVEL).compress(raw)
    return Blob.objects.create(organisation=organisation, codec=CODEC_FULL, data=full, raw_size=len(raw))

"""A small pipelined SFTP v3 client over one paramiko channel.

paramiko's own SFTPClient waits for each answer before the next request and
must not be shared between threads, so collectors running side by side would
queue behind one another, one round trip at a time. Here a reader thread
matches answers to requests by id: any number of requests can be in flight
(from several collectors, or the chunks of one file), and each caller waits
only for its own answer. Paths and names stay bytes on the wire, so a file
name that is not UTF-8 is kept exactly (as surrogate escapes), never lost.

Only what a read-only audit needs: stat, open for reading, read, close,
directory listing, readlink. Nothing here writes to the host.
"""

from __future__ import annotations

import contextlib
import dataclasses
import struct
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import paramiko

# Packet types (draft-ietf-secsh-filexfer-02, the version OpenSSH speaks).
INIT, VERSION, OPEN, CLOSE, READ = 1, 2, 3, 4, 5
OPENDIR, READDIR, STAT, READLINK = 11, 12, 17, 19
STATUS, HANDLE, DATA, NAME, ATTRS = 101, 102, 103, 104, 105
# Status codes.
OK, EOF, NO_SUCH_FILE, PERMISSION_DENIED, FAILURE = 0, 1, 2, 3, 4
FXF_READ = 0x1
_ATTR_SIZE, _ATTR_UIDGID, _ATTR_PERMISSIONS, _ATTR_ACMODTIME, _ATTR_EXTENDED = 0x1, 0x2, 0x4, 0x8, 0x80000000
MAX_PACKET = 1 << 20  # sftp-server answers at most 256 KiB of data per packet
T = TypeVar("T")


class SFTPStatus(Exception):
    """The server answered a request with an error status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message or f"SFTP status {code}")
        self.code = code


class SFTPClosed(Exception):
    """The session ended (connection lost, server gone): every pending and later request fails with this."""


@dataclasses.dataclass(frozen=True)
class Attrs:
    size: int | None
    uid: int | None
    gid: int | None
    mode: int | None
    mtime: int | None


class _Reply:
    """One answer to wait for: a lock held until the reader thread fills it in (cheaper than an Event)."""

    __slots__ = ("body", "error", "kind", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lock.acquire()
        self.kind = 0
        self.body = b""
        self.error: BaseException | None = None

    def set(self) -> None:
        self.lock.release()

    def wait(self, timeout: float) -> tuple[int, bytes]:
        if not self.lock.acquire(timeout=timeout):
            raise TimeoutError(f"no SFTP answer within {timeout:g} s")
        self.lock.release()  # a second wait on the same answer returns at once
        if self.error is not None:
            raise self.error
        return self.kind, self.body


_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
#: Bytes that each attribute flag adds to an ATTRS structure (extended pairs aside).
_ATTR_WIDTHS = ((_ATTR_SIZE, 8), (_ATTR_UIDGID, 8), (_ATTR_PERMISSIONS, 4), (_ATTR_ACMODTIME, 8))


class _Reader:
    """Decoding of SFTP fields from one packet body."""

    __slots__ = ("b", "i")

    def __init__(self, body: bytes) -> None:
        self.b = body
        self.i = 0

    def u32(self) -> int:
        (v,) = _U32.unpack_from(self.b, self.i)
        self.i += 4
        return int(v)

    def u64(self) -> int:
        (v,) = _U64.unpack_from(self.b, self.i)
        self.i += 8
        return int(v)

    def string(self) -> bytes:
        (n,) = _U32.unpack_from(self.b, self.i)
        start = self.i + 4
        if start + n > len(self.b):
            raise SFTPStatus(FAILURE, "malformed SFTP answer")
        self.i = start + n
        return self.b[start:self.i]

    def skip_string(self) -> None:
        (n,) = _U32.unpack_from(self.b, self.i)
        self.i += 4 + n
        if self.i > len(self.b):
            raise SFTPStatus(FAILURE, "malformed SFTP answer")

    def skip_attrs(self) -> None:
        """Past an ATTRS structure without decoding it (directory listings need only the names)."""
        flags = self.u32()
        for flag, width in _ATTR_WIDTHS:
            if flags & flag:
                self.i += width
        if flags & _ATTR_EXTENDED:
            for _ in range(self.u32()):
                self.skip_string()
                self.skip_string()
        if self.i > len(self.b):
            raise SFTPStatus(FAILURE, "malformed SFTP answer")

    def attrs(self) -> Attrs:
        flags = self.u32()
        size = self.u64() if flags & _ATTR_SIZE else None
        uid = gid = None
        if flags & _ATTR_UIDGID:
            uid, gid = self.u32(), self.u32()
        mode = self.u32() if flags & _ATTR_PERMISSIONS else None
        mtime = None
        if flags & _ATTR_ACMODTIME:
            self.u32()
            mtime = self.u32()
        if flags & _ATTR_EXTENDED:
            for _ in range(self.u32()):
                self.skip_string()
                self.skip_string()
        return Attrs(size=size, uid=uid, gid=gid, mode=mode, mtime=mtime)


def _string(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


class PipelinedSFTP:
    """SFTP v3 over ``chan`` (already running sftp-server); thread-safe, many requests in flight."""

    def __init__(self, chan: paramiko.Channel, *, timeout: float) -> None:
        self.chan = chan
        self.timeout = timeout
        self._send_lock = threading.Lock()
        self._lock = threading.Lock()
        self._pending: dict[int, _Reply] = {}
        self._next_id = 1
        self._deferred: list[bytes] = []
        self.closed: BaseException | None = None
        chan.settimeout(timeout)
        self._send_raw(struct.pack(">BI", INIT, 3))
        kind, body = self._read_packet()
        if kind != VERSION:
            raise SFTPClosed(f"not an SFTP server (answered packet type {kind})")
        self.version = _Reader(body).u32()
        chan.settimeout(None)
        self._thread = threading.Thread(target=self._read_loop, daemon=True, name="mamoru-sftp")
        self._thread.start()

    # -- wire --

    def _recv_exact(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self.chan.recv(n - len(buf))
            if not chunk:
                raise SFTPClosed("the SFTP session ended")
            buf += chunk
        return bytes(buf)

    def _read_packet(self) -> tuple[int, bytes]:
        (length,) = struct.unpack(">I", self._recv_exact(4))
        if not 1 <= length <= MAX_PACKET:
            raise SFTPClosed(f"SFTP packet of {length} bytes: the stream is out of step")
        body = self._recv_exact(length)
        return body[0], body[1:]

    def _send_raw(self, payload: bytes) -> None:
        with self._send_lock:
            self.chan.sendall(struct.pack(">I", len(payload)) + payload)

    def _read_loop(self) -> None:
        """Answers, dispatched by id; many per receive when they arrive together (batched requests)."""
        buf = b""
        try:
            while True:
                chunk = self.chan.recv(1 << 18)
                if not chunk:
                    raise SFTPClosed("the SFTP session ended")
                buf = buf + chunk if buf else chunk
                pos = 0
                while len(buf) - pos >= 4:
                    (length,) = struct.unpack_from(">I", buf, pos)
                    if not 5 <= length <= MAX_PACKET:
                        raise SFTPClosed(f"SFTP packet of {length} bytes: the stream is out of step")
                    if len(buf) - pos - 4 < length:
                        break
                    kind, rid = struct.unpack_from(">BI", buf, pos + 4)
                    body = buf[pos + 9:pos + 4 + length]
                    pos += 4 + length
                    with self._lock:
                        reply = self._pending.pop(rid, None)
                    if reply is not None:  # None: the answer to a close nobody waits for
                        reply.kind, reply.body = kind, body
                        reply.set()
                buf = buf[pos:]
        except BaseException as e:
            self._shutdown(e if isinstance(e, SFTPClosed) else SFTPClosed(f"the SFTP session ended ({e})"))

    def _shutdown(self, error: BaseException) -> None:
        with self._lock:
            if self.closed is None:
                self.closed = error
            pending, self._pending = self._pending, {}
        for reply in pending.values():
            reply.error = self.closed
            reply.set()

    # -- requests --

    def send_batch(self, requests: list[tuple[int, bytes]], *, want_reply: bool = True) -> list[_Reply]:
        """Many requests in one write: one SSH packet (or a few) instead of one per request.

        Closes that nobody waits for ride along with the next write instead of costing packets of their own.
        """
        replies = []
        out = bytearray()
        with self._lock:
            if self.closed is not None:
                raise self.closed
            out += b"".join(self._deferred)
            self._deferred.clear()
            for kind, payload in requests:
                rid = self._next_id
                self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
                reply = _Reply()
                if want_reply:
                    self._pending[rid] = reply
                replies.append(reply)
                msg = struct.pack(">BI", kind, rid) + payload
                out += struct.pack(">I", len(msg)) + msg
        if out:
            try:
                with self._send_lock:
                    self.chan.sendall(bytes(out))
            except (OSError, EOFError) as e:
                self._shutdown(SFTPClosed(f"the SFTP session ended ({e})"))
                raise SFTPClosed(f"the SFTP session ended ({e})") from e
        return replies

    def send(self, kind: int, payload: bytes) -> _Reply:
        return self.send_batch([(kind, payload)])[0]

    def wait(self, reply: _Reply, expect: int) -> _Reader:
        """The answer as a reader positioned after the id; an error status raises SFTPStatus."""
        kind, body = reply.wait(self.timeout)
        r = _Reader(body)
        if kind == STATUS:
            code = r.u32()
            message = r.string().decode("utf-8", "replace") if r.i < len(body) else ""
            if code == OK and expect == STATUS:
                return r
            raise SFTPStatus(code, message)
        if kind != expect:
            raise SFTPStatus(FAILURE, f"unexpected SFTP answer type {kind}")
        return r

    def call(self, kind: int, payload: bytes, expect: int) -> _Reader:
        return self.wait(self.send(kind, payload), expect)

    # -- operations --

    def stat(self, path: bytes) -> Attrs:
        return self.call(STAT, _string(path), ATTRS).attrs()

    def open(self, path: bytes) -> bytes:
        return self.call(OPEN, _string(path) + struct.pack(">II", FXF_READ, 0), HANDLE).string()

    def read_async(self, handle: bytes, offset: int, length: int) -> _Reply:
        return self.send(READ, _string(handle) + struct.pack(">QI", offset, length))

    def read_result(self, reply: _Reply) -> bytes | None:
        """Data, or None at end of file."""
        try:
            return self.wait(reply, DATA).string()
        except SFTPStatus as e:
            if e.code == EOF:
                return None
            raise

    def close_handle(self, handle: bytes) -> None:
        """Fire and forget, and not even now: the close travels with the next request."""
        with self._lock:
            rid = self._next_id
            self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
            msg = struct.pack(">BI", CLOSE, rid) + _string(handle)
            self._deferred.append(struct.pack(">I", len(msg)) + msg)
            flush = len(self._deferred) >= 64
        if flush:
            self.send_batch([])

    # -- many at once: one write out, answers collected in order --

    def _gather(self, replies: list[_Reply], expect: int, parse: Callable[[_Reader], T]) -> list[T | SFTPStatus]:
        out: list[T | SFTPStatus] = []
        for reply in replies:
            try:
                out.append(parse(self.wait(reply, expect)))
            except SFTPStatus as e:
                out.append(e)
        return out

    def stat_many(self, paths: list[bytes]) -> list[Attrs | SFTPStatus]:
        return self._gather(self.send_batch([(STAT, _string(p)) for p in paths]), ATTRS, _Reader.attrs)

    def open_many(self, paths: list[bytes]) -> list[bytes | SFTPStatus]:
        reqs = [(OPEN, _string(p) + struct.pack(">II", FXF_READ, 0)) for p in paths]
        return self._gather(self.send_batch(reqs), HANDLE, _Reader.string)

    def read_many(self, handles: list[tuple[bytes, int]]) -> list[bytes | SFTPStatus | None]:
        """The first ``length`` bytes behind each handle (None: empty file)."""
        replies = self.send_batch([(READ, _string(h) + struct.pack(">QI", 0, n)) for h, n in handles])
        out: list[bytes | SFTPStatus | None] = []
        for reply in replies:
            try:
                out.append(self.wait(reply, DATA).string())
            except SFTPStatus as e:
                out.append(None if e.code == EOF else e)
        return out

    def readlink_many(self, paths: list[bytes]) -> list[bytes | SFTPStatus]:
        def first(r: _Reader) -> bytes:
            if r.u32() < 1:
                raise SFTPStatus(FAILURE, "empty readlink answer")
            return r.string()

        return self._gather(self.send_batch([(READLINK, _string(p)) for p in paths]), NAME, first)

    def listdir_many(self, paths: list[bytes]) -> list[list[tuple[bytes, Attrs]] | SFTPStatus]:
        handles = self._gather(self.send_batch([(OPENDIR, _string(p)) for p in paths]), HANDLE, _Reader.string)
        results: list[list[tuple[bytes, Attrs]] | SFTPStatus] = [h if isinstance(h, SFTPStatus) else []
                                                                 for h in handles]
        open_ = [i for i, h in enumerate(handles) if isinstance(h, bytes)]
        depth = 2  # a small directory: its names and the EOF in one round trip
        while open_:
            # sftp-server answers a READDIR with ~100 names: a big directory (/usr/bin) takes a dozen, so after
            # the first round each open directory gets several in one write; those past the end answer EOF.
            reqs = [(i, READDIR, _string(handles[i])) for i in open_ for _ in range(depth)]  # type: ignore[arg-type]
            replies = self.send_batch([(kind, payload) for _, kind, payload in reqs])
            depth = 8
            finished: set[int] = set()
            for (i, _, _), reply in zip(reqs, replies, strict=True):
                try:
                    r = self.wait(reply, NAME)
                except SFTPStatus as e:
                    if e.code != EOF and not isinstance(results[i], SFTPStatus):
                        results[i] = e
                    finished.add(i)
                    continue
                entries = results[i]
                if not isinstance(entries, list) or i in finished:
                    continue
                for _ in range(r.u32()):
                    name = r.string()
                    r.skip_string()  # longname
                    attrs = r.attrs()
                    if name not in (b".", b".."):
                        entries.append((name, attrs))
            for i in finished:
                self.close_handle(handles[i])  # type: ignore[arg-type]
            open_ = [i for i in open_ if i not in finished]
        return results

    def listdir(self, path: bytes) -> list[tuple[bytes, Attrs]]:
        """Names with their attributes, as the server gives them: lstat(2), so a link is a link."""
        result = self.listdir_many([path])[0]
        if isinstance(result, SFTPStatus):
            raise result
        return result

    def readlink(self, path: bytes) -> bytes:
        r = self.call(READLINK, _string(path), NAME)
        if r.u32() < 1:
            raise SFTPStatus(FAILURE, "empty readlink answer")
        return r.string()

    def read_all(self, handle: bytes, *, size: int, limit: int, chunk: int = 65536,
                 too_large: Callable[[], Exception]) -> bytes:
        """The whole file behind ``handle``, at most ``limit`` bytes (``too_large()`` is raised beyond).

        A known size is fetched in pipelined chunks plus one read at the end to see that nothing follows;
        an unknown size (``/proc`` files say 0) is read on until end of file. A short answer switches to
        reading on from where it stopped, since SFTP allows short reads anywhere.
        """
        data = bytearray()
        if size > 0:
            offsets = [*range(0, size, chunk), size]
            batch = self.send_batch([(READ, _string(handle) + struct.pack(">QI", off, min(chunk, size - off)
                                                                            if off < size else chunk))
                                     for off in offsets])
            replies = list(zip(offsets, batch, strict=True))
            # The server answers in order, so a close sent after these reads comes after them.
            for off, reply in replies:
                if off != len(data):
                    break
                part = self.read_result(reply)
                if part is None:
                    return bytes(data)
                data += part
                if len(data) > limit:
                    raise too_large()
        while True:
            part = self.read_result(self.read_async(handle, len(data), chunk))
            if part is None:
                return bytes(data)
            data += part
            if len(data) > limit:
                raise too_large()

    def close(self) -> None:
        self._shutdown(SFTPClosed("the SFTP session is closed"))
        with contextlib.suppress(Exception):  # already gone is fine
            self.chan.close()

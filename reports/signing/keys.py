"""Ed25519 signing keys in OpenSSH format: make them safely, load them (also passphrase-protected).

The key files are the ones ``ssh-keygen -t ed25519`` writes, so a consultant
can use a key they already have (``~/.ssh/id_ed25519``) and ``ssh-keygen`` can
use ours. Private key bytes never leave this module except into the file
written 0600; errors name the file, never its content.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import os
import stat
import struct
from collections.abc import Callable, Mapping
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from reports.signing.errors import SigningKeyError

ED25519 = "ssh-ed25519"
PASSPHRASE_ENV = "MAMORU_KEY_PASSPHRASE"
MAX_KEY_FILE = 64 * 1024  # an OpenSSH ed25519 key is ~400 bytes; anything huge is not a key


class KeyExists(SigningKeyError):
    hint = "keygen never overwrites a key: choose another --output, or move the old key away deliberately"


def ed25519_blob(public: Ed25519PublicKey) -> bytes:
    """The SSH wire form of the public key (RFC 8709): string "ssh-ed25519", string pk."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    name = ED25519.encode()
    return struct.pack(">I", len(name)) + name + struct.pack(">I", len(raw)) + raw


def fingerprint(blob: bytes) -> str:
    """``SHA256:...`` exactly as ``ssh-keygen -lf`` prints it (unpadded base64 of SHA-256 of the blob)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def public_line(blob: bytes, comment: str = "") -> str:
    """The ``.pub`` / authorized_keys form: ``ssh-ed25519 AAAA... comment``."""
    line = f"{ED25519} {base64.b64encode(blob).decode()}"
    return f"{line} {comment}" if comment else line


def allowed_signers_line(identity: str, blob: bytes, namespace: str) -> str:
    """The line a recipient appends to allowed_signers; restricted to our namespace so the key vouches for
    mamoru reports only."""
    return f'{identity} namespaces="{namespace}" {public_line(blob)}'


@dataclasses.dataclass(frozen=True)
class SigningKey:
    path: str
    public_blob: bytes
    private: Ed25519PrivateKey = dataclasses.field(repr=False, compare=False)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_blob)


def _read_key_file(path: Path) -> bytes:
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SigningKeyError(f"signing key {path}: no such file") from None
    except OSError as e:
        raise SigningKeyError(f"signing key {path}: cannot read it ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise SigningKeyError(f"signing key {path}: not a regular file")
    if st.st_uid == os.geteuid() and st.st_mode & 0o077:
        # ssh refuses such keys too ("UNPROTECTED PRIVATE KEY FILE"): anyone else may have copied it.
        raise SigningKeyError(f"signing key {path}: permissions {stat.S_IMODE(st.st_mode):04o} are too open; "
                              f"it must be readable by its owner only (chmod 600 {path})")
    if st.st_size > MAX_KEY_FILE:
        raise SigningKeyError(f"signing key {path}: {st.st_size} bytes is too large for a private key")
    try:
        return path.read_bytes()
    except OSError as e:
        raise SigningKeyError(f"signing key {path}: cannot read it ({e.strerror})") from None


def load_signing_key(path: str | os.PathLike[str], *, ask_passphrase: Callable[[], str | None] | None = None,
                     env: Mapping[str, str] | None = None) -> SigningKey:
    """Load an OpenSSH (or PKCS#8 PEM) Ed25519 private key.

    A passphrase comes from ``$MAMORU_KEY_PASSPHRASE`` if set (unattended scheduled scans), else from
    ``ask_passphrase`` (the CLI prompts when it has a terminal), else the key is refused with a hint.
    """
    p = Path(path)
    data = _read_key_file(p)
    head = data.lstrip()[:64]
    if head.startswith((b"ssh-", b"ecdsa-", b"sk-")):
        raise SigningKeyError(f"signing key {p}: this is a public key; --sign-key needs the private key file")
    environ = os.environ if env is None else env

    def load(password: bytes | None) -> object:
        if head.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----"):
            return serialization.load_ssh_private_key(data, password)
        if head.startswith(b"-----BEGIN"):
            return serialization.load_pem_private_key(data, password)
        raise ValueError("unknown format")

    try:
        try:
            key = load(None)
        except TypeError:  # passphrase-protected
            secret = environ.get(PASSPHRASE_ENV)
            if secret is None and ask_passphrase is not None:
                secret = ask_passphrase()
            if not secret:
                raise SigningKeyError(f"signing key {p} is passphrase-protected and no passphrase was given: "
                                      f"run in a terminal to be asked, or set {PASSPHRASE_ENV}") from None
            try:
                key = load(secret.encode())
            except ValueError:
                raise SigningKeyError(f"signing key {p}: wrong passphrase") from None
    except UnsupportedAlgorithm as e:
        raise SigningKeyError(f"signing key {p}: {e} (pip install bcrypt for passphrase-protected keys)") from None
    except ValueError:
        raise SigningKeyError(f"signing key {p}: not an OpenSSH or PEM private key, or damaged") from None
    if not isinstance(key, Ed25519PrivateKey):
        kind = type(key).__name__.replace("_", "").replace("PrivateKey", "")
        raise SigningKeyError(f"signing key {p} is a {kind} key; mamoru signs with Ed25519 keys only "
                              f"(ssh-keygen -t ed25519, or mamoru keygen)")
    return SigningKey(path=str(p), public_blob=ed25519_blob(key.public_key()), private=key)


def _create_exclusive(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` with ``mode`` from the start (no window where it is readable), never replacing a file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise KeyExists(f"{path} already exists; refusing to overwrite it") from None
    try:
        os.fchmod(fd, mode)  # the umask may have removed bits we want, never added ones
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def create_key_files(path: str | os.PathLike[str], *, comment: str, passphrase: str | None = None) -> SigningKey:
    """Write a new Ed25519 key: ``path`` (private, 0600) and ``path.pub``; refuse if either exists."""
    p = Path(path)
    pub_path = Path(f"{p}.pub")
    for existing in (p, pub_path):
        if existing.exists() or existing.is_symlink():
            raise KeyExists(f"{existing} already exists; refusing to overwrite it")
    try:
        p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise SigningKeyError(f"cannot create the directory {p.parent}: {e.strerror}") from None
    key = Ed25519PrivateKey.generate()
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
        else serialization.NoEncryption())
    private_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
    blob = ed25519_blob(key.public_key())
    try:
        _create_exclusive(p, private_bytes, 0o600)
        try:
            _create_exclusive(pub_path, (public_line(blob, comment) + "\n").encode(), 0o644)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(p)
            raise
    except OSError as e:
        raise SigningKeyError(f"cannot write the key {p}: {e.strerror}") from None
    return SigningKey(path=str(p), public_blob=blob, private=key)

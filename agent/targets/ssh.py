"""``ssh://user@host:port``: a machine audited over SSH, with nothing installed on it.

One SSH connection per host and two sessions on it, opened side by side:
files, directories, stats and links go through ONE pipelined SFTP session
(``ssh_sftp``; ``sudo -n sftp-server`` when the audit needs root), commands
through ONE remote ``sh -s`` fed framed scripts (``ssh_shell``). Connecting,
host keys and login are in ``ssh_connect``. A request inside an open session
costs a round trip; a new session would cost the server a fork and a login.

Once the host stops answering (killed, unplugged, a request timed out) the
target remembers why (``failure``): later calls fail at once instead of each
waiting out its timeout, and the runner reports the target ``partial`` with
reason ``connection_lost``.

paramiko is imported inside functions only: the CLI starts without it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import shlex
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from agent.errors import ConfigError
from agent.targets.base import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_OUTPUT_BYTES,
    CommandResult,
    CommandTimeout,
    CommandUnavailable,
    FileMissing,
    FileStat,
    FileTooLarge,
    FileUnreadable,
    PlatformInfo,
    PrefetchOp,
    Target,
    TargetError,
    TargetUnreachable,
)
from agent.targets.filesystem import parse_os_release
from agent.targets.ssh_connect import (
    ConnectionLost,
    ConnectTimeout,
    KnownHosts,
    SSHAddress,
    SudoRefused,
    open_transport,
)
from agent.targets.ssh_files import RemoteFiles
from agent.targets.ssh_sftp import PipelinedSFTP, SFTPClosed
from agent.targets.ssh_shell import RemoteShell, ShellGone, sudo_message
from agent.targets.ssh_windows import POWERSHELL_COMMAND, ShellKind, exec_session, probe
from agent.targets.windows_paths import sftp_path

if TYPE_CHECKING:
    import paramiko

    from agent.targets.powershell import PowerShellBatch

DEFAULT_CONNECT_TIMEOUT = 10.0
#: Seconds one file operation may take before the host counts as gone.
DEFAULT_FILE_OP_TIMEOUT = 20.0
MAX_STDIN_BYTES = 1 << 20
#: Where distributions install OpenSSH's sftp-server (needed to run it under sudo).
SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/lib/ssh/sftp-server",
                "/usr/libexec/sftp-server", "/usr/lib/sftp-server")
@dataclasses.dataclass(frozen=True, kw_only=True)
class SSHOptions:
    identity_file: str | None = None
    known_hosts: str | None = None
    accept_new: bool = False
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    #: Overrides every command's own timeout and bounds every file operation; None keeps the callers' values.
    command_timeout: float | None = None
    sudo: bool = False
    #: ``ssh://user@bastion:port`` to hop through (its host key is checked the same way).
    jump: str | None = None
    jump_identity_file: str | None = None


class SSHTarget(Target):
    kind = "ssh"

    def __init__(self, spec: str, address: SSHAddress, options: SSHOptions) -> None:
        super().__init__(spec)
        self.address = address
        self.options = options
        self.file_timeout = options.command_timeout or DEFAULT_FILE_OP_TIMEOUT
        self._jump: paramiko.Transport | None = None
        self._failure: TargetError | None = None
        self._shell_lock = threading.Lock()
        self._shell: RemoteShell | None = None
        self._shell_error: TargetError | None = None
        self._shell_ready = threading.Event()
        self._probe: tuple[ShellKind, str, str] = ("unknown", "", "")
        self._probe_ready = threading.Event()
        self._closed = False
        self._connect()

    @classmethod
    def from_spec(cls, spec: str, **options: Any) -> SSHTarget:
        try:
            opts = SSHOptions(**options)
        except TypeError as e:
            raise ConfigError(f"ssh target: {e}") from None
        address = SSHAddress.parse(spec)
        return cls(address.spec, address, opts)

    # -- connection --

    def _connect(self) -> None:
        import paramiko

        opts = self.options
        known = KnownHosts(opts.known_hosts, accept_new=opts.accept_new)
        timeout = opts.connect_timeout
        sock: Any = None
        if opts.jump:
            jump_addr = SSHAddress.parse(opts.jump)
            self._jump = open_transport(jump_addr, identity_file=opts.jump_identity_file or opts.identity_file,
                                        known_hosts=known, timeout=timeout)
            try:
                sock = self._jump.open_channel("direct-tcpip", (self.address.host, self.address.port),
                                               ("127.0.0.1", 0), timeout=timeout)
            except (paramiko.SSHException, OSError, EOFError) as e:
                self._jump.close()
                raise TargetUnreachable(f"{self.address.host}:{self.address.port} via {jump_addr.known_hosts_name}:"
                                        f" the jump host could not connect ({e})") from e
        try:
            self.transport = open_transport(self.address, identity_file=opts.identity_file, known_hosts=known,
                                            timeout=timeout, sock=sock)
        except BaseException:
            if self._jump is not None:
                self._jump.close()
            raise
        # The shell opens beside the SFTP session and the shell probe: session setups in parallel, not in a row.
        threading.Thread(target=self._open_shell, daemon=True, name=f"mamoru-shell {self.id}").start()
        threading.Thread(target=self._run_probe, daemon=True, name=f"mamoru-probe {self.id}").start()
        try:
            self.sftp = self._open_sftp()
        except BaseException:
            self.close()
            raise
        self.files = RemoteFiles(self.sftp, on_lost=self._lost)

    def _open_sftp(self) -> PipelinedSFTP:
        import paramiko

        timeout = self.options.connect_timeout
        chan = None
        try:
            chan = self.transport.open_session(timeout=timeout)
            if self.options.sudo:
                loop = "; ".join(f"[ -x {p} ] && exec {p}" for p in SFTP_SERVERS)
                script = f"for _ in 1; do {loop}; done; echo 'sh: sftp-server: not found' >&2; exit 127"
                chan.exec_command(f"sudo -n -- sh -c {shlex.quote(script)}")
            else:
                chan.invoke_subsystem("sftp")
            return PipelinedSFTP(chan, timeout=self.file_timeout)
        except TimeoutError as e:
            raise ConnectTimeout(f"no SFTP session within {timeout:g} s") from e
        except (SFTPClosed, paramiko.SSHException, EOFError, OSError) as e:
            if not self.transport.is_active():
                raise ConnectionLost(f"the connection closed while opening SFTP ({e})") from e
            err = ""
            if chan is not None:
                chan.status_event.wait(2)
                with contextlib.suppress(Exception):
                    while chan.recv_stderr_ready():
                        err += chan.recv_stderr(65536).decode("utf-8", "replace")
            if self.options.sudo:
                raise SudoRefused(sudo_message(err.strip())) from e
            raise TargetUnreachable(f"the server refused an SFTP session ({err.strip() or e})") from e

    def _open_shell(self) -> None:
        try:
            shell = RemoteShell(self.transport, sudo=self.options.sudo, timeout=self.options.connect_timeout)
            with self._shell_lock:
                self._shell, self._shell_error = shell, None
        except TargetError as e:
            self._shell_error = e
        except Exception as e:
            self._shell_error = CommandUnavailable(f"cannot open a remote shell: {e}")
        finally:
            self._shell_ready.set()

    def _run_probe(self) -> None:
        """Which shell runs commands there (sh, cmd.exe, PowerShell): see ``ssh_windows``."""
        try:
            self._probe = probe(self.transport, self.options.connect_timeout)
        except Exception:  # no answer is "unknown": the platform is then read as before, never guessed
            self._probe = ("unknown", "", "")
        finally:
            self._probe_ready.set()

    def shell_kind(self) -> ShellKind:
        self._probe_ready.wait(self.options.connect_timeout + 5)
        return self._probe[0]

    def powershell(self) -> PowerShellBatch:
        """The PowerShell batch of a Windows host, run on one exec session of the connection it keeps."""
        kind = self.shell_kind()
        if kind not in ("cmd", "powershell"):
            raise CommandUnavailable(f"{self.address.host} is not a Windows host (its shell is {kind})")

        def make() -> PowerShellBatch:
            from agent.targets.powershell import PowerShellBatch

            def runner(stdin: bytes, timeout: float) -> CommandResult:
                self._check_alive()
                try:
                    return exec_session(self.transport, POWERSHELL_COMMAND, stdin, timeout=timeout)
                except TargetError:
                    if not self.transport.is_active():
                        raise self._lost("the SSH connection was lost while PowerShell ran") from None
                    raise

            return PowerShellBatch(runner, where=f"ssh ({'cmd.exe' if kind == 'cmd' else 'PowerShell'})")

        return self.shared("powershell-batch", make)

    @property
    def failure(self) -> TargetError | None:
        return self._failure

    def _fail(self, error: TargetError) -> TargetError:
        if self._failure is None:
            self._failure = error
        return self._failure

    def _lost(self, detail: str) -> TargetError:
        return self._fail(ConnectionLost(f"{self.address.known_hosts_name}: {detail}"))

    def _check_alive(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise TargetUnreachable("the SSH target is closed")
        if not self.transport.is_active():
            raise self._lost("the SSH connection was lost")

    # -- files (ssh_files: cache, sibling prefetch) --

    def remote_path(self, path: str) -> str:
        """Where the server's SFTP finds ``path``: as given on a POSIX host; on Windows, mapped from the system
        volume's root to Win32-OpenSSH's form (``/Windows/...`` -> ``/C:/Windows/...``, ``windows_paths``)."""
        if self.shell_kind() not in ("cmd", "powershell"):
            return path
        try:
            return sftp_path(path, self._probe[2])
        except ValueError as e:
            raise FileUnreadable(str(e)) from None

    def read_file(self, path: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        self._check_alive()
        return self.files.read_file(self.remote_path(path), max_bytes)

    def list_dir(self, path: str) -> list[str]:
        self._check_alive()
        return self.files.list_dir(self.remote_path(path))

    def stat(self, path: str) -> FileStat | None:
        self._check_alive()
        return self.files.stat(self.remote_path(path))

    def readlink(self, path: str) -> str:
        self._check_alive()
        return self.files.readlink(self.remote_path(path))

    def prefetch(self, paths: Iterable[str], *, op: PrefetchOp = "read") -> None:
        if self._failure is not None or self._closed:
            return
        with contextlib.suppress(TargetError):  # a hint: the calls that follow report any error themselves
            self.files.prefetch(op, [self.remote_path(p) for p in paths])

    # -- commands --

    def _get_shell(self) -> RemoteShell:
        if not self._shell_ready.wait(self.options.connect_timeout + 5):
            raise CommandUnavailable("the remote shell did not start")
        with self._shell_lock:
            if self._shell is not None and self._shell.alive:
                return self._shell
            if self._shell_error is not None:
                raise self._shell_error
        # The previous shell ended (a command outlived its timeout): open another on the same connection.
        self._check_alive()
        shell = RemoteShell(self.transport, sudo=self.options.sudo, timeout=self.options.connect_timeout)
        with self._shell_lock:
            self._shell = shell
        return shell

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = DEFAULT_COMMAND_TIMEOUT,
        max_output: int = DEFAULT_MAX_OUTPUT_BYTES,
        stdin: bytes | None = None,
    ) -> CommandResult:
        if not argv:
            raise ValueError("empty argv")
        if stdin is not None and len(stdin) > MAX_STDIN_BYTES:
            raise CommandUnavailable(f"{argv[0]}: stdin larger than {MAX_STDIN_BYTES} bytes")
        self._check_alive()
        shell = self._get_shell()
        try:
            return shell.run(argv, timeout=self.options.command_timeout or timeout, max_output=max_output,
                             stdin=stdin)
        except ShellGone:
            if not self.transport.is_active():
                raise self._lost(f"the SSH connection was lost while running {argv[0]}") from None
            raise TargetError(f"{argv[0]}: the remote shell ended unexpectedly") from None

    # -- identity --

    def platform(self) -> PlatformInfo:
        kind = self.shell_kind()
        if kind in ("cmd", "powershell"):
            return PlatformInfo(system="windows", hostname=self._probe[1] or self.address.host, distro="Windows",
                                version="")

        def text(path: str, cap: int = 65536) -> str:
            try:
                return self.read_file(path, max_bytes=cap).decode("utf-8", "replace").strip()
            except (FileMissing, FileUnreadable, FileTooLarge):
                return ""

        self.prefetch(["/proc/sys/kernel/ostype", "/proc/sys/kernel/hostname", "/etc/os-release", "/etc/machine-id"])
        ostype, hostname = text("/proc/sys/kernel/ostype"), text("/proc/sys/kernel/hostname")
        if not ostype:  # no Linux /proc: ask uname
            try:
                res = self.run(["uname", "-s", "-n"], timeout=10, max_output=4096)
                words = res.stdout.decode("utf-8", "replace").split()
                if res.ok and len(words) >= 2:
                    ostype, hostname = words[0], words[1]
            except (CommandUnavailable, CommandTimeout):
                pass
        osr: dict[str, str] = {}
        for candidate in ("/etc/os-release", "/usr/lib/os-release"):
            data = text(candidate)
            if data:
                osr = parse_os_release(data.encode())
                break
        system = ostype.lower() or "unknown"
        return PlatformInfo(system=system, hostname=hostname or self.address.host, distro=osr.get("NAME", ""),
                            version=osr.get("VERSION_ID", ""), machine_id=text("/etc/machine-id", 4096))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._shell_lock:
            shell = self._shell
        if shell is not None:
            shell.close(graceful=self._failure is None)
        sftp = getattr(self, "sftp", None)
        if sftp is not None:
            sftp.close()
        for transport in (getattr(self, "transport", None), self._jump):
            if transport is not None:
                with contextlib.suppress(Exception):
                    transport.close()


logging.getLogger("paramiko").addHandler(logging.NullHandler())  # its tracebacks are not for our users

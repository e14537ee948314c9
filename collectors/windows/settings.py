"""Windows settings read from the registry: screen saver lock per user, firewall profiles, SMBv1, Security log.

Facts are the registry answers themselves (key as read, status, typed values, error kind), grouped by what
they are for; the judges in ``checks/windows.py`` decide. Policy keys (``Software\\Policies``, written by
Group Policy) are read beside the local settings they override, so a judge can say which one was in force.
"""

from __future__ import annotations

import posixpath
import re
import time
from typing import Any

from agent.targets.base import Target, TargetError
from agent.targets.registry import RegistryReader, RegQuery
from agent.targets.registry_offline import find_ci
from collectors.windows.base import Answers, WindowsCollector
from collectors.windows.live import live_part

CCS = r"HKLM\SYSTEM\CurrentControlSet"
SAVER_VALUES = ("ScreenSaveActive", "ScreenSaverIsSecure", "ScreenSaveTimeOut", "SCRNSAVE.EXE")
USER_DESKTOP = RegQuery(r"HKU\*\Control Panel\Desktop", SAVER_VALUES)
USER_POLICY = RegQuery(r"HKU\*\Software\Policies\Microsoft\Windows\Control Panel\Desktop", SAVER_VALUES)
MACHINE_LOCK = RegQuery(r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System",
                        ("InactivityTimeoutSecs",))


class ScreenlockCollector(WindowsCollector):
    """Per user: the screen saver settings and their policy; per machine: the inactivity lock policy."""

    id = "win_screenlock"
    registry_reads = (MACHINE_LOCK, USER_DESKTOP, USER_POLICY)

    def build(self, target: Target, reader: RegistryReader, answers: Answers) -> dict[str, Any]:
        policies = {a.user.id: a for a in answers.per_user(USER_POLICY) if a.user is not None}
        users = []
        for a in answers.per_user(USER_DESKTOP):
            if a.user is None:  # the user list itself could not be read
                users.append({"user": None, "desktop": a.fact(), "policy": None})
                continue
            p = policies.get(a.user.id)
            users.append({"user": a.user.fact(), "desktop": a.fact(), "policy": p.fact() if p else None})
        return {"machine": answers.one(MACHINE_LOCK).fact(), "users": users}


FW_LOCAL = {p: RegQuery(rf"{CCS}\Services\SharedAccess\Parameters\FirewallPolicy\{k}Profile",
                        ("EnableFirewall", "DefaultInboundAction"))
            for p, k in (("domain", "Domain"), ("private", "Standard"), ("public", "Public"))}
FW_POLICY = {p: RegQuery(rf"HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall\{k}Profile",
                         ("EnableFirewall", "DefaultInboundAction"))
             for p, k in (("domain", "Domain"), ("private", "Private"), ("public", "Public"))}
FW_SERVICE = RegQuery(rf"{CCS}\Services\MpsSvc", ("Start",))


class FirewallCollector(WindowsCollector):
    """Windows Defender Firewall: each profile's local settings, their Group Policy, and the service."""

    id = "win_firewall"
    registry_reads = (*FW_LOCAL.values(), *FW_POLICY.values(), FW_SERVICE)

    def build(self, target: Target, reader: RegistryReader, answers: Answers) -> dict[str, Any]:
        return {"local": {p: answers.one(q).fact() for p, q in FW_LOCAL.items()},
                "policy": {p: answers.one(q).fact() for p, q in FW_POLICY.items()},
                "service": answers.one(FW_SERVICE).fact()}


SMB_SERVER = RegQuery(rf"{CCS}\Services\LanmanServer\Parameters", ("SMB1",))
SMB_SERVER_SERVICE = RegQuery(rf"{CCS}\Services\LanmanServer", ("Start",))
SMB1_SERVER_DRIVER = RegQuery(rf"{CCS}\Services\srv", ("Start",))
SMB1_CLIENT_DRIVER = RegQuery(rf"{CCS}\Services\mrxsmb10", ("Start",))


class SmbCollector(WindowsCollector):
    """SMBv1: the server's ``SMB1`` switch and drivers (srv.sys, mrxsmb10.sys) and how they start."""

    id = "win_smb"
    registry_reads = (SMB_SERVER, SMB_SERVER_SERVICE, SMB1_SERVER_DRIVER, SMB1_CLIENT_DRIVER)

    def build(self, target: Target, reader: RegistryReader, answers: Answers) -> dict[str, Any]:
        return {"server_parameters": answers.one(SMB_SERVER).fact(),
                "server_service": answers.one(SMB_SERVER_SERVICE).fact(),
                "smb1_server_driver": answers.one(SMB1_SERVER_DRIVER).fact(),
                "smb1_client_driver": answers.one(SMB1_CLIENT_DRIVER).fact()}


LOG_VALUES = ("MaxSize", "Retention", "AutoBackupLogFiles", "File")
SECURITY_LOG = RegQuery(rf"{CCS}\Services\EventLog\Security", (*LOG_VALUES, "RestrictGuestAccess"))
SECURITY_LOG_POLICY = RegQuery(r"HKLM\SOFTWARE\Policies\Microsoft\Windows\EventLog\Security", LOG_VALUES)
DEFAULT_EVTX = r"%SystemRoot%\System32\winevt\Logs\Security.evtx"
_ROOT_VARS = re.compile(r"(?i)^(%systemroot%|%windir%|[a-z]:\\windows)(?=\\)")


class EventLogCollector(WindowsCollector):
    """The Security event log's size, retention and archiving (local and policy), and its files in the image.

    Only a running system knows its oldest record: live, the ``eventlog`` part of the PowerShell batch reads it
    (``Get-WinEvent -Oldest``: its time and record id, in ``oldest``). Offline, that would need parsing
    ``Security.evtx`` (and its ``Archive-Security-*.evtx``), which mamoru does not do: the collector records
    whether they are in the image, and ``oldest`` says the record was not read offline.
    """

    id = "win_eventlog"
    version = "2"  # 2: the oldest record ("oldest"), live
    registry_reads = (SECURITY_LOG, SECURITY_LOG_POLICY)
    powershell_parts = ("eventlog",)

    def build(self, target: Target, reader: RegistryReader, answers: Answers) -> dict[str, Any]:
        local, pol = answers.one(SECURITY_LOG), answers.one(SECURITY_LOG_POLICY)
        files = None
        if reader.backend == "offline-hives":
            files = self._files(target, pol.value("File") or local.value("File"))
            oldest: dict[str, Any] = {"live": False, "via": None, "value": None, "error": {
                "kind": "offline", "message": "the oldest record was not read: an offline image has no running "
                                              "event log, and Security.evtx is not parsed"}}
        else:
            value, err, via = live_part(target, "eventlog")
            oldest = {"live": via is not None, "via": via, "value": value, "error": err}
        oldest["collected_at"] = time.time()
        return {"local": local.fact(), "policy": pol.fact(), "files": files, "oldest": oldest}

    @staticmethod
    def _files(target: Target, file_value: Any) -> dict[str, Any]:
        windows_path = file_value.data if file_value is not None and isinstance(file_value.data, str) else DEFAULT_EVTX
        relative = _ROOT_VARS.sub("Windows", windows_path)
        relative = re.sub(r"^[A-Za-z]:\\", "", relative)
        parts = [p for p in relative.split("\\") if p]
        out: dict[str, Any] = {"log": windows_path, "present": False, "path": None, "size": None, "archives": [],
                               "problem": None}
        try:
            path = find_ci(target, parts)
            folder = find_ci(target, parts[:-1])
            if path is not None:
                st = target.stat(path)
                out.update(present=True, path=path, size=st.size if st else None)
            if folder is not None:
                out["archives"] = [posixpath.join(folder, n) for n in target.list_dir(folder)
                                   if n.casefold().startswith("archive-security-") and n.casefold().endswith(".evtx")]
        except TargetError as e:
            out["problem"] = str(e)
        return out


SCREENLOCK = ScreenlockCollector()
FIREWALL = FirewallCollector()
SMB = SmbCollector()
EVENTLOG = EventLogCollector()

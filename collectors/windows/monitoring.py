"""Event forwarding and monitoring on Windows, from the registry: what MN-01 and MN-02 judge.

Read in one batch: the Windows Event Forwarding policy (``Software\\Policies\\...\\EventForwarding\\
SubscriptionManager``, what "Configure target Subscription Manager" writes), the WinRM service that sends the
events, the Defender policy keys, and the service key of every forwarding agent and monitoring tool named in
``collectors/data/windows_services.yaml``. A service key holds how the service is set to start, not whether
it runs: the judges say so.

The Subscription Manager values are parsed here, because their raw text is a URL and a certificate
thumbprint: the facts keep the server without ``user:password@``, query or fragment
(``log_forwarding.without_credentials``), and only whether an IssuerCA is set.
"""

from __future__ import annotations

import re
from typing import Any, TypedDict

from agent.targets.base import Target
from agent.targets.registry import RegistryReader, RegQuery, RegValue
from collectors import data
from collectors.log_forwarding import without_credentials
from collectors.windows.base import Answers, WindowsCollector

CCS = r"HKLM\SYSTEM\CurrentControlSet"
SERVICE_VALUES = ("Start", "Type", "DeleteFlag", "DelayedAutostart")
WEF_POLICY = RegQuery(r"HKLM\SOFTWARE\Policies\Microsoft\Windows\EventLog\EventForwarding\SubscriptionManager", None)
WINRM = "WinRM"
DEFENDER_POLICY = RegQuery(r"HKLM\SOFTWARE\Policies\Microsoft\Windows Defender", ("DisableAntiSpyware",))
DEFENDER_RTP_POLICY = RegQuery(r"HKLM\SOFTWARE\Policies\Microsoft\Windows Defender\Real-Time Protection",
                               ("DisableRealtimeMonitoring",))
#: A host name, an IPv4 address or a bracketed IPv6 address, with an optional port.
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,252}[A-Za-z0-9])?)(:\d{1,5})?$")


def tables() -> dict[str, Any]:
    """``{"forwarders": {key: tool}, "monitors": {key: tool}}`` from the data file."""
    table: dict[str, Any] = data.load("windows_services.yaml")
    return table


def service_query(name: str) -> RegQuery:
    return RegQuery(rf"{CCS}\Services\{name}", SERVICE_VALUES)


def service_names() -> list[str]:
    """Every service and driver the data file names, and WinRM, once each (in a stable order)."""
    names: dict[str, None] = {WINRM: None}
    for group in tables().values():
        for tool in group.values():
            for n in (*tool["services"], *tool.get("drivers", ())):
                names.setdefault(n, None)
    return list(names)


class Subscription(TypedDict):
    """One Subscription Manager entry: where events go, redacted; ``problem`` is a code when unusable."""

    name: str
    server: str | None
    scheme: str | None  # "http", "https"; None when the value gave no server
    scheme_given: bool  # False: no scheme in the value, WinRM's default (HTTP) applies
    refresh: int | None
    issuer_ca: bool
    problem: str | None  # not_text, no_server, bad_server, bad_refresh


def parse_subscription(value: RegValue) -> Subscription:
    """``Server=http(s)://host:port/wsman/SubscriptionManager/WEC,Refresh=60,IssuerCA=<thumbprint>``.

    Anything that does not read as that is kept as a problem code, so a judge can say "cannot tell" and
    never pass on it.
    """
    out = Subscription(name=value.name, server=None, scheme=None, scheme_given=False, refresh=None,
                       issuer_ca=False, problem=None)
    if not isinstance(value.data, str):
        out["problem"] = "not_text"
        return out
    fields: dict[str, str] = {}
    for item in value.data.split(","):
        key, sep, val = item.partition("=")
        if sep:
            fields[key.strip().lower()] = val.strip()
    server = fields.get("server", "")
    if not server:
        out["problem"] = "no_server"
        return out
    m = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", server)
    scheme = m.group(1).lower() if m else "http"
    url = server if m else f"http://{server}"
    shown = without_credentials(url)
    netloc = re.sub(r"^[a-z]+://", "", shown).split("/", 1)[0]
    out["server"], out["scheme"], out["scheme_given"] = shown, scheme, m is not None
    out["issuer_ca"] = bool(fields.get("issuerca"))
    if scheme not in ("http", "https") or not _HOST.match(netloc):
        out["problem"] = "bad_server"
        return out
    refresh = fields.get("refresh")
    if refresh is not None:
        if not refresh.isdigit():
            out["problem"] = "bad_refresh"
            return out
        out["refresh"] = int(refresh)
    return out


class MonitoringCollector(WindowsCollector):
    """WEF policy, WinRM, Defender policy and the services of known forwarding and monitoring tools."""

    id = "win_monitoring"
    version = "1"
    registry_reads = (WEF_POLICY, DEFENDER_POLICY, DEFENDER_RTP_POLICY, *(service_query(n) for n in service_names()))

    def build(self, target: Target, reader: RegistryReader, answers: Answers) -> dict[str, Any]:
        wef = answers.one(WEF_POLICY)
        policy = {k: v for k, v in wef.fact().items() if k != "values"}  # the raw values hold the URLs
        subscriptions = [parse_subscription(v) for _, v in sorted(wef.values.items())] if wef.status == "ok" else []
        return {"wef": {"policy": policy, "subscriptions": subscriptions},
                "services": {n: answers.one(service_query(n)).fact() for n in service_names()},
                "defender_policy": answers.one(DEFENDER_POLICY).fact(),
                "defender_rtp_policy": answers.one(DEFENDER_RTP_POLICY).fact(),
                "backend": reader.backend}


COLLECTOR = MonitoringCollector()

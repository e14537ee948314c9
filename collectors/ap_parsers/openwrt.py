"""OpenWrt: UCI ``/etc/config/wireless``.

UCI is line based: ``config TYPE ['NAME']`` opens a section, ``option KEY
VALUE`` sets a value, ``list KEY VALUE`` appends to a list; values may be
quoted like shell words. A line that is none of these (a Jinja ``{% %}``
template, a stray keyword) makes the whole file unreadable for us rather
than silently half-read. What the radio actually does follows the rules of
OpenWrt's ``hostapd.sh``: ``psk`` is WPA1, ``psk2`` WPA2, ``psk-mixed`` both,
``sae`` WPA3, ``sae-mixed`` WPA2/WPA3; a ``+tkip`` suffix allows TKIP; the
default cipher is CCMP; an interface without ``encryption`` is open.

The file holds the Wi-Fi keys, so an error names the file, the line and at
most the option's name, never a value or the line itself: an error message
travels into the report, the evidence bundle and the terminal.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, ClassVar

from collectors.ap_parsers import APConfigError, APParser
from collectors.lan_probe import normalise_mac
from collectors.wifi.ie import ssid_fields

BASES = {
    "none": "open", "": "open", "owe": "owe", "wep": "wep", "wep-open": "wep", "wep-shared": "wep",
    "psk": "wpa", "psk2": "wpa2", "psk-mixed": "wpa/wpa2", "mixed-psk": "wpa/wpa2",
    "sae": "wpa3", "sae-mixed": "wpa2/wpa3", "psk3": "wpa3", "psk3-mixed": "wpa2/wpa3",
    "wpa": "wpa", "wpa2": "enterprise", "wpa-mixed": "wpa/wpa2", "mixed-wpa": "wpa/wpa2",
    "wpa3": "enterprise", "wpa3-mixed": "enterprise", "wpa3-192": "enterprise",
}
SUFFIX_CIPHERS = {
    "tkip+aes": ["CCMP", "TKIP"], "tkip+ccmp": ["CCMP", "TKIP"], "aes+tkip": ["CCMP", "TKIP"],
    "ccmp+tkip": ["CCMP", "TKIP"], "aes": ["CCMP"], "ccmp": ["CCMP"], "tkip": ["TKIP"], "gcmp": ["GCMP-128"],
    "gcmp256": ["GCMP-256"], "ccmp256": ["CCMP-256"], "open": [], "shared": [], "": [],
}
PMF_DEFAULT = {"wpa3": "required", "owe": "required", "wpa2/wpa3": "capable"}
PMF_OPTION = {"0": "no", "1": "capable", "2": "required"}
#: Options that hold secrets: only whether they are set is recorded.
SECRETS = ("key", "key1", "key2", "key3", "key4", "sae_password", "wpapsk", "password", "auth_secret",
           "acct_secret", "priv_key_pwd", "wpa_psk_file")


#: What an option name may look like for an error to name it (uci's own rule: letters, digits, underscore).
_OPTION_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
KEYWORDS = ("config", "option", "list", "package")


def _option_named(words: list[str]) -> str:
    """``option 'key'`` for an error message when the line surely names one, else just the keyword.

    A name is shown only when a value follows it: in ``option 'S3cret'`` the word may be a value that lost
    its name.
    """
    if len(words) >= 3 and words[0] in ("option", "list") and _OPTION_NAME.fullmatch(words[1]):
        return f"{words[0]} {words[1]!r}"
    return words[0] if words and words[0] in KEYWORDS else "the line"


def _not_uci(words: list[str], has_section: bool) -> str:
    """Why a line is not UCI, quoting nothing from it but a keyword and an option name."""
    kw = words[0]
    if kw not in KEYWORDS:
        return "not a UCI line: it does not start with config, option, list or package (the line is not shown)"
    if kw == "config":
        return f"not a UCI line: config needs a type and at most a name, found {len(words) - 1} words"
    if not has_section and len(words) == 3:
        return f"not a UCI line: {_option_named(words)} comes before any config section"
    return (f"not a UCI line: {_option_named(words)} needs a name and one value, found {len(words) - 1} words "
            f"(values are not shown)")


def parse_uci(text: str, where: str) -> list[dict[str, Any]]:
    """Sections as ``{"type", "name", "options": {k: v}, "lists": {k: [v]}}``; raises APConfigError."""
    sections: list[dict[str, Any]] = []
    for n, line in enumerate(text.splitlines(), 1):
        try:
            words = shlex.split(line, comments=True, posix=True)
        except ValueError as e:
            # shlex's own text ("No closing quotation") quotes nothing; the words before the damage may.
            raise APConfigError(f"{where}:{n}: {_option_named(line.split())}: {e}") from None
        if not words:
            continue
        kw = words[0]
        if kw == "package":
            continue
        if kw == "config" and len(words) in (2, 3):
            sections.append({"type": words[1], "name": words[2] if len(words) == 3 else None,
                             "options": {}, "lists": {}})
        elif kw in ("option", "list") and len(words) == 3 and sections:
            bucket = sections[-1]["options" if kw == "option" else "lists"]
            if kw == "option":
                bucket[words[1]] = words[2]
            else:
                bucket.setdefault(words[1], []).append(words[2])
        else:
            raise APConfigError(f"{where}:{n}: {_not_uci(words, bool(sections))}")
    return sections


def encryption(value: str | None) -> dict[str, Any]:
    """security label, ciphers and the raw value of an OpenWrt ``encryption`` option."""
    raw = (value or "none").strip().lower()
    base, _, suffix = raw.partition("+")
    label = BASES.get(base, "unknown")
    ciphers = SUFFIX_CIPHERS.get(suffix)
    if ciphers is None:
        label = "unknown"
        ciphers = []
    if label == "wep":
        ciphers = ["WEP-104"]
    elif label not in ("open", "unknown") and not ciphers:
        ciphers = ["GCMP-256"] if base == "wpa3-192" else ["CCMP"]
    group = "TKIP" if "TKIP" in ciphers else (ciphers[0] if ciphers else None)
    return {"encryption": value, "security": label, "pairwise": ciphers, "group": group}


def _flag(value: str | None) -> bool:
    return (value or "0").strip().lower() in ("1", "on", "true", "yes", "enabled")


class OpenWrtParser(APParser):
    name = "openwrt"
    paths: ClassVar[tuple[str, ...]] = ("/etc/config/wireless",)

    def parse(self, data: bytes, path: str) -> dict[str, Any]:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise APConfigError(f"{path}: not UTF-8 (byte {e.start})") from e
        sections = parse_uci(text, path)
        radios = {s["name"]: s for s in sections if s["type"] == "wifi-device" and s["name"]}
        interfaces = []
        for i, s in enumerate(sec for sec in sections if sec["type"] == "wifi-iface"):
            o, lists = s["options"], s["lists"]
            radio = radios.get(o.get("device", ""))
            enc = encryption(o.get("encryption"))
            maclist_raw = [w for v in lists.get("maclist", []) for w in v.split()] + o.get("maclist", "").split()
            macs, invalid = [], []
            for m in maclist_raw:
                try:
                    macs.append(normalise_mac(m))
                except ValueError:
                    invalid.append(m)
            pmf = PMF_OPTION.get(o.get("ieee80211w", "").strip()) or PMF_DEFAULT.get(enc["security"], "no")
            interfaces.append({
                "section": s["name"] or f"@wifi-iface[{i}]",
                "device": o.get("device"),
                "mode": o.get("mode", "ap"),
                **ssid_fields((o.get("ssid") or o.get("mesh_id") or "").encode("utf-8")),
                "disabled": _flag(o.get("disabled")) or (radio is not None and _flag(radio["options"].get("disabled"))),
                **enc,
                "pmf": pmf,
                "macfilter": (o.get("macfilter") or "").strip().lower() or None,
                "maclist": sorted(set(macs)),
                "maclist_invalid": invalid,
                "macfile": o.get("macfile"),
                "hidden": _flag(o.get("hidden")),
                "isolate": _flag(o.get("isolate")),
                "key_set": any(o.get(k) for k in SECRETS) or any(lists.get(k) for k in SECRETS),
            })
        return {
            "radios": [{"name": n, "type": r["options"].get("type"), "disabled": _flag(r["options"].get("disabled"))}
                       for n, r in radios.items()],
            "interfaces": interfaces,
        }


PARSER = OpenWrtParser()

"""Where this host sends its logs: rsyslog forwarding actions and systemd-journal-upload.

rsyslog is read from the file each running ``rsyslogd`` was started with
(``-f``), else ``/etc/rsyslog.conf``, following ``$IncludeConfig`` and
``include(file=…)`` with globs. Both syntaxes count: legacy selector lines with
``@host`` (UDP), ``@@host`` (TCP) or ``:omrelp:host:port``, and RainerScript
``action(type="omfwd"|"omrelp" target=…)``, alone, after a selector, in an
``if … then`` or inside a ``ruleset``. For each forward the facts record the
selector, so the check can tell whether authentication messages are among
what leaves the host, and whether the stream is TLS (``gtls``/``ossl`` driver
in mode 1, or RELP ``tls="on"``). A ``problem`` is a code with its parts (collectors/problems.py).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from agent.targets.base import FileMissing, Target, TargetError
from collectors.base import Collector, Facts
from collectors.problems import Problem, problem, unreadable
from collectors.running import config_path, find_daemons
from collectors.textfiles import glob, read_text

RSYSLOG_CONF = "/etc/rsyslog.conf"
RSYSLOG_BINARIES = ("/usr/sbin/rsyslogd", "/sbin/rsyslogd")
UPLOAD_CONF = "/etc/systemd/journal-upload.conf"
UPLOAD_DROPINS = ("/usr/lib/systemd/journal-upload.conf.d", "/etc/systemd/journal-upload.conf.d")
UPLOAD_BINARIES = ("/usr/lib/systemd/systemd-journal-upload", "/lib/systemd/systemd-journal-upload")
UPLOAD_WANTS = ("/etc/systemd/system/multi-user.target.wants/systemd-journal-upload.service",)
OBJECTS = ("module", "input", "global", "template", "include", "action", "main_queue", "timezone", "parser",
           "lookup_table", "dyn_stats", "property", "constant", "set", "unset", "call", "reset", "foreach",
           "ratelimit", "percentile_stats")
FORWARD_TYPES = {"omfwd", "omrelp"}
MAX_DEPTH = 16
MAX_FORWARDS = 100


class RsyslogProblem(Problem):
    """rsyslog would refuse this configuration (or mamoru cannot follow it): a code and its parts."""


def strip_comments(text: str) -> str:
    """Remove ``#`` line comments and ``/* */`` blocks, leaving quoted strings and ``$`` directives alone."""
    out: list[str] = []
    i, n = 0, len(text)
    quote = ""
    while i < n:
        c = text[i]
        if quote:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if c == quote:
                quote = ""
            i += 1
            continue
        at_line_start = not text[text.rfind("\n", 0, i) + 1:i].strip()
        if at_line_start and c == "$":  # a legacy directive is one line, its paths may hold "/*" or quotes
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(re.sub(r"\s#.*$", "", text[i:j]))
            i = j
            continue
        if c in "\"'`":
            quote = c
            out.append(c)
        elif c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif text.startswith("/*", i) and (i == 0 or text[i - 1].isspace()):
            j = text.find("*/", i + 2)
            if j < 0:
                raise RsyslogProblem("unterminated_comment")
            out.append("\n" * text.count("\n", i, j))
            i = j + 2
            continue
        else:
            out.append(c)
        i += 1
    if quote:
        raise RsyslogProblem("unterminated_quote")
    return "".join(out)


def balanced(text: str, start: int, open_: str = "(", close: str = ")") -> int:
    """Index just past the bracket matching the one at ``start`` (quotes respected)."""
    depth = 0
    quote = ""
    i = start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise RsyslogProblem("unbalanced", bracket=open_)


def params(body: str) -> dict[str, str]:
    """``name="value" name2='v'`` pairs of a RainerScript object, names lower-cased."""
    return {m.group(1).lower(): m.group(3)
            for m in re.finditer(r"([\w.]+)\s*=\s*([\"'])(.*?)\2", body, re.S)}


class RsyslogParser:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.files: list[str] = []
        self.forwards: list[dict[str, Any]] = []
        self.legacy: dict[str, str] = {}
        self.global_driver = "ptcp"
        self.last_selector: str | None = None

    def parse_file(self, path: str, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise RsyslogProblem("nested_too_deeply", path=path)
        tf = read_text(self.target, path)
        self.files.append(path)
        try:
            self.parse_text("\n".join(tf.lines), path, depth, context="")
        except RsyslogProblem as e:
            if "where" not in e.problem and "path" not in e.problem:
                e.problem["path"] = path  # found by a helper that does not know the file
            raise

    def include(self, pattern: str, where: str, depth: int, optional: bool) -> None:
        if not pattern.startswith("/"):
            raise RsyslogProblem("relative_include", where=where, pattern=pattern)
        st = self.target.stat(pattern) if not any(ch in pattern for ch in "*?[") else None
        if st is not None and st.mode & 0o170000 == 0o040000:
            names = sorted(self.target.list_dir(pattern))
            paths = [posixpath.join(pattern, n) for n in names if not n.startswith(".")]
        else:
            paths = glob(self.target, pattern)
        if not paths and not optional and not any(ch in pattern for ch in "*?["):
            raise RsyslogProblem("include_missing", where=where, pattern=pattern)
        self.target.prefetch(paths)
        for p in paths:
            self.parse_file(p, depth + 1)

    def parse_text(self, raw: str, path: str, depth: int, context: str) -> None:
        text = strip_comments(raw)
        i, n = 0, len(text)

        def where(pos: int) -> str:
            return f"{path}:{text.count(chr(10), 0, pos) + 1}"

        while i < n:
            while i < n and text[i].isspace():
                i += 1
            if i >= n:
                break
            rest = text[i:]
            m_obj = re.match(r"([a-z_]+)\s*\(", rest)
            if rest.startswith("$"):
                end = text.find("\n", i)
                end = n if end < 0 else end
                self.directive(text[i:end].strip(), where(i), depth)
                i = end
            elif m_obj and m_obj.group(1) == "ruleset":
                close = balanced(text, i + m_obj.end() - 1)
                name = params(text[i:close]).get("name", "?")
                brace = text.find("{", close)
                if brace < 0 or text[close:brace].strip():
                    i = close  # a ruleset() with no body
                    continue
                end = balanced(text, brace, "{", "}")
                self.parse_text(text[brace + 1:end - 1], path, depth, context=f"ruleset {name}")
                i = end
            elif m_obj and m_obj.group(1) in OBJECTS:
                close = balanced(text, i + m_obj.end() - 1)
                self.rainer_object(m_obj.group(1), text[i:close], where(i), depth, context, selector=None)
                i = close
            elif re.match(r"if\b", rest):
                then = re.search(r"\bthen\b", rest)
                if not then:
                    raise RsyslogProblem("if_without_then", where=where(i))
                j = i + then.end()
                while j < n and text[j].isspace():
                    j += 1
                cond = "if " + " ".join(rest[2:then.start()].split())
                if j < n and text[j] == "{":
                    end = balanced(text, j, "{", "}")
                    self.parse_text(text[j + 1:end - 1], path, depth, context=(context + " " + cond).strip())
                    i = end
                else:
                    i = self.action_part(text, j, where(j), depth, context, selector=cond)
            elif rest.startswith("else"):
                j = i + 4
                while j < n and text[j].isspace():
                    j += 1
                if j < n and text[j] == "{":
                    end = balanced(text, j, "{", "}")
                    self.parse_text(text[j + 1:end - 1], path, depth, context=(context + " else").strip())
                    i = end
                elif re.match(r"if\b", text[j:]):
                    i = j  # "else if": the if is conditional by itself
                else:
                    i = self.action_part(text, j, where(j), depth, context, selector="else")
            elif rest.startswith("{"):
                end = balanced(text, i, "{", "}")
                self.parse_text(text[i + 1:end - 1], path, depth, context=context)
                i = end
            elif rest.startswith(("}", "stop", "~")):
                end = text.find("\n", i)
                i = n if end < 0 else end
            elif rest.startswith("&"):
                i = self.action_part(text, i + 1, where(i), depth, context, selector=self.last_selector)
            else:
                m_sel = re.match(r"([^\s]+)\s+", rest)
                if not m_sel:
                    # Quoted up to the first '=' or quote: what follows may be a value (pwd="…" of an output module).
                    shown = re.split(r"[=\"']", rest, maxsplit=1)[0][:40]
                    raise RsyslogProblem("cannot_parse", where=where(i), text=shown)
                selector = m_sel.group(1)
                if selector.startswith(":"):  # property filter ":msg, contains, "x"": up to the action
                    pm = re.match(r":[^,]+,\s*!?[\w-]+,\s*\"(?:[^\"\\]|\\.)*\"\s+", rest)
                    if not pm:
                        raise RsyslogProblem("malformed_filter", where=where(i))
                    selector, adv = "filter " + rest[:pm.end()].strip(), pm.end()
                else:
                    adv = m_sel.end()
                self.last_selector = selector
                i = self.action_part(text, i + adv, where(i), depth, context, selector=selector)

    def action_part(self, text: str, i: int, where: str, depth: int, context: str, selector: str | None) -> int:
        """Parse one action (RainerScript object or legacy action text) starting at ``i``; return the end."""
        while i < len(text) and text[i] in " \t":
            i += 1
        m = re.match(r"(action|call|stop)\b\s*\(?", text[i:])
        if m and m.group(1) == "action":
            close = balanced(text, i + text[i:].index("("))
            self.rainer_object("action", text[i:close], where, depth, context, selector)
            return close
        end = text.find("\n", i)
        end = len(text) if end < 0 else end
        self.legacy_action(text[i:end].strip(), where, context, selector)
        return end

    def directive(self, line: str, where: str, depth: int) -> None:
        name, _, value = line[1:].partition(" ")
        name, value = name.lower(), value.strip()
        if name == "includeconfig":
            self.include(value, where, depth, optional=True)
        elif name == "defaultnetstreamdriver":
            self.global_driver = value.lower()
        else:
            self.legacy[name] = value

    def rainer_object(self, kind: str, body: str, where: str, depth: int, context: str,
                      selector: str | None) -> None:
        p = params(body)
        if kind == "include":
            if "file" in p:
                self.include(p["file"], where, depth, optional=p.get("mode", "required") == "optional")
            return
        if kind == "global" and "defaultnetstreamdriver" in p:
            self.global_driver = p["defaultnetstreamdriver"].lower()
            return
        if kind != "action" or p.get("type", "").lower() not in FORWARD_TYPES:
            return
        kind_ = p["type"].lower()
        if kind_ == "omrelp":
            tls: bool | None = p.get("tls", "off").lower() == "on"
            proto = "relp"
        else:
            proto = p.get("protocol", "udp").lower()
            driver = p.get("streamdriver", self.global_driver).lower()
            mode = p.get("streamdrivermode", p.get("streamdriver.mode", "0"))
            tls = proto == "tcp" and driver in ("gtls", "ossl", "mbedtls") and mode == "1"
        self.add(where, p.get("target"), p.get("port", "514"), proto, tls, selector, context)

    def legacy_action(self, action: str, where: str, context: str, selector: str | None) -> None:
        action = action.split(";", 1)[0].strip()  # ";Template"
        m = re.fullmatch(r"(@@?)(?:\([^)]*\))?(\[[^\]]+\]|[^:\s]+)(?::(\d+))?", action)
        if m:
            proto = "tcp" if m.group(1) == "@@" else "udp"
            mode = self.legacy.get("actionsendstreamdrivermode", "0")
            tls = proto == "tcp" and self.global_driver in ("gtls", "ossl") and mode == "1"
            self.add(where, m.group(2).strip("[]"), m.group(3) or "514", proto, tls, selector, context)
            return
        m = re.fullmatch(r":omrelp:(\[[^\]]+\]|[^:\s]+):(\d+)", action)
        if m:
            self.add(where, m.group(1).strip("[]"), m.group(2), "relp", False, selector, context)

    def add(self, where: str, target: str | None, port: str, proto: str, tls: bool | None, selector: str | None,
            context: str) -> None:
        if len(self.forwards) >= MAX_FORWARDS:
            return
        self.forwards.append({"where": where, "target": target, "port": port, "protocol": proto, "tls": tls,
                              "selector": selector, "context": context or None})


def without_credentials(url: str) -> str:
    """Where logs go, without what would let someone else send them: ``user:password@``, query and fragment.

    A journal-upload URL may carry a password or a token (``https://u:p@log:19532/?key=…``); the facts need
    the scheme, host, port and path only, and facts end up in bundles and reports.
    """
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(unparsable URL, not shown)"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def read_upload(target: Target) -> dict[str, Any]:
    installed = any(target.exists(b) for b in UPLOAD_BINARIES)
    out: dict[str, Any] = {"installed": installed, "url": None, "enabled": False, "files": [], "problem": None}
    if not installed:
        return out
    paths = [UPLOAD_CONF]
    for d in UPLOAD_DROPINS:
        try:
            paths += [posixpath.join(d, n) for n in target.list_dir(d) if n.endswith(".conf")]
        except FileMissing:
            continue
    target.prefetch(paths)
    for path in paths:
        try:
            tf = read_text(target, path)
        except FileMissing:
            continue
        except TargetError as e:
            out["problem"] = problem("upload_unreadable", error=str(e))
            continue
        out["files"].append(path)
        section = ""
        for raw in tf.lines:
            line = raw.strip()
            if line.startswith("["):
                section = line.strip("[]")
            elif section == "Upload" and line.startswith("URL="):
                out["url"] = without_credentials(line[4:].strip()) or None
    out["enabled"] = any(target.exists(p) for p in UPLOAD_WANTS)
    return out


class LogForwardingCollector(Collector):
    id = "log_forwarding"
    reads = (RSYSLOG_CONF, UPLOAD_CONF, *UPLOAD_WANTS)
    lists = ("/etc/rsyslog.d", *UPLOAD_DROPINS, "/usr/lib/systemd")
    probes = (*RSYSLOG_BINARIES, *UPLOAD_BINARIES)
    version = "3"  # 2: problems are codes with their parts; 3: no credentials in the upload URL or parse errors

    def collect(self, target: Target) -> Facts:
        rs: dict[str, Any] = {"installed": any(target.exists(b) for b in RSYSLOG_BINARIES), "configs": [],
                              "files": [], "forwards": [], "problem": None}
        daemons = find_daemons(target, {"rsyslogd"})
        configs = list(dict.fromkeys(config_path(target, d, "-f", None, RSYSLOG_CONF) for d in daemons))
        rs["daemon_configs"] = bool(configs)
        if rs["installed"] or configs:
            for conf in configs or [RSYSLOG_CONF]:
                parser = RsyslogParser(target)
                try:
                    parser.parse_file(conf)
                except FileMissing:
                    if configs:
                        rs["problem"] = problem("missing", path=conf)
                except RsyslogProblem as e:
                    rs["problem"] = e.problem
                except TargetError as e:
                    rs["problem"] = unreadable(e)
                rs["configs"].append(conf)
                rs["files"] += parser.files
                rs["forwards"] += parser.forwards
        return {"rsyslog": rs, "journal_upload": read_upload(target)}


COLLECTOR = LogForwardingCollector()

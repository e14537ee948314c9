"""Whether a systemd unit is enabled on a target, read from the filesystem (works on images too)."""

from __future__ import annotations

from agent.targets.base import Target, TargetError
from collectors.textfiles import glob


def unit_enabled(target: Target, unit: str) -> bool:
    """Enabled means some ``*.wants`` directory links the unit; the link's target need not resolve here."""
    for wants in glob(target, "/etc/systemd/system/*.wants"):
        try:
            if unit in target.list_dir(wants):
                return True
        except TargetError:
            continue
    return False

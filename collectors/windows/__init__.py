"""Collectors for Windows PCs: the same code on the PC (winreg), over SSH and on an offline image (hive files).

Each collector declares its registry reads (``registry_reads``) and asks the target's registry for them in
one batch (``Target.registry()``, ``agent/targets/registry.py``); facts keep every answer with its status
(ok / missing / error and why), so judges can tell "not configured" from "could not be read".
"""

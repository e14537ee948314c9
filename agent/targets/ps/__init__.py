"""PowerShell scripts shipped as data: the batch driver and one fixed script per part.

See ``agent/targets/powershell.py``.
"""

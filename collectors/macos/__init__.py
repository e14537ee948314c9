"""Collectors for Macs: the same code on the Mac itself (``sudo mamoru scan``) and over SSH (Remote Login).

Each reads Apple's own tools and property lists the way the macOS Security Compliance Project (mSCP,
github.com/usnistgov/macos_security) rules read them, and cites the rule IDs in its facts (``mscp``). Tools
are run from argv lists only; plists are parsed with ``plistlib`` and JSON with ``json``; text that a tool
localizes is never read (``LC_ALL=C`` is set by every target, and only the few fixed English lines of
command-line tools are matched). Problems are codes worded by ``checks/meta/_facts.yaml`` under ``mac.``.
"""

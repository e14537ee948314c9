"""Signed reports: SSHSIG detached signatures that stock OpenSSH (``ssh-keygen -Y verify``) checks.

Modules: ``sshsig`` (sign/verify over exact bytes), ``keys`` (Ed25519 keys in
OpenSSH format), ``allowed_signers`` (the recipient's trust list), ``errors``.
Import them directly; this package imports nothing heavy on its own.
"""

"""Checks judge facts against a policy. They never touch a system."""

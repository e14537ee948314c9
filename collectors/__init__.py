"""Collectors gather facts from a target. They judge nothing."""

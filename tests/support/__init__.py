"""Helpers for tests (importable because pytest puts tests/ on sys.path)."""

"""The `live` tests (real AWS) run only when asked for and only with credentials."""

from __future__ import annotations

import conftest


def test_without_the_opt_in_the_live_tests_are_skipped_and_say_how_to_run_them(monkeypatch):
    monkeypatch.setattr(conftest, "STARTING_ENV", {"AWS_ACCESS_KEY_ID": "AKIA0000000000000000"})
    assert conftest.live_opt_in() == ("live tests against real AWS run only with KSERVECTL_LIVE=1 "
                                      "and AWS credentials")


def test_with_the_opt_in_but_no_credentials_they_are_skipped_naming_what_is_missing(monkeypatch):
    monkeypatch.setattr(conftest, "STARTING_ENV", {"KSERVECTL_LIVE": "1"})  # isolated_env: no credentials
    assert "no AWS credentials resolve" in conftest.live_opt_in()


def test_with_the_opt_in_and_credentials_they_run(monkeypatch):
    monkeypatch.setattr(conftest, "STARTING_ENV", {"KSERVECTL_LIVE": "1"})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert conftest.live_opt_in() is None

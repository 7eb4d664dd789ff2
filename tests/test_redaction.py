"""No credential reaches a terminal: errors and progress lines are masked where they are made."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kservectl.cli.console import ConsoleReporter
from kservectl.errors import KservectlError, UsageError
from kservectl.redact import Redactor
from support.http_server import QuietHandler, serving

PASSWORD = "S3cretPassw0rd"


class _HealthOnly(QuietHandler):
    """Answers MLflow's /health, then hangs up on every API call (a proxy dropping them)."""

    def do_GET(self) -> None:  # noqa: N802 - the http.server interface
        if self.path.startswith("/health"):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
        else:
            self.close_connection = True

    do_POST = do_GET  # noqa: N815


@pytest.fixture
def dropping_mlflow() -> Iterator[str]:
    with serving(_HealthOnly) as port:
        yield f"http://alice:{PASSWORD}@127.0.0.1:{port}"


def test_an_mlflow_error_quoting_the_tracking_uri_does_not_show_its_password(cli, dropping_mlflow, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    result = cli("serve", "example", "--tracking-uri", dropping_mlflow)
    assert result.exit_code == 1
    assert "refused the example model" in result.stderr  # MLflow's own message, which quotes the URL
    assert "alice:<redacted>@127.0.0.1" in result.stderr
    assert PASSWORD not in result.stderr + result.stdout


def test_every_project_error_masks_what_looks_like_a_credential_when_it_is_made():
    error = KservectlError("GET http://bob:hunter2@mlflow:5000/api failed: token=abc123def",
                           hint="key AKIAABCDEFGHIJKLMNOP was refused")
    assert error.one_line() == ("GET http://bob:<redacted>@mlflow:5000/api failed: token=<redacted> "
                                "(key <redacted> was refused)")
    assert "hunter2" not in str(error) and "hunter2" not in repr(error.args)
    assert UsageError("password=swordfish is too short").message == "password=<redacted> is too short"


def test_progress_lines_and_warnings_mask_the_secrets_the_context_knows(capsys):
    redactor = Redactor()
    redactor.add("generated-admin-pw-123")
    reporter = ConsoleReporter(redactor=redactor)
    reporter.info("logging in with generated-admin-pw-123")
    reporter.warn("MLflow at http://admin:generated-admin-pw-123@nlb:80 is slow")
    reporter.step("mlflow", "secret generated-admin-pw-123 stored")
    err = capsys.readouterr().err
    assert "generated-admin-pw-123" not in err
    assert err.count("<redacted>") == 3


def test_error_codes_and_permission_names_that_mention_a_credential_word_stay_readable():
    from kservectl.redact import scrub

    for readable in ("ExpiredToken: The security token included in the request is expired",
                     "not authorized to perform: secretsmanager:GetSecretValue on resource",
                     "Secret mlflow/mlflow-auth-secret: User admin could not log in"):
        assert scrub(readable) == readable
    assert scrub('db_password: "s3cr3t-value" and aws_secret_access_key: wJalrXUtnFEMI/K7MDENG') == (
        'db_password: "<redacted>" and aws_secret_access_key: <redacted>')


def test_a_hint_added_after_the_error_was_made_is_masked_too():
    error = KservectlError("the model server failed")
    error.hint = "retry with --tracking-uri http://admin:pa55word@mlflow:5000"
    assert error.one_line() == "the model server failed (retry with --tracking-uri http://admin:<redacted>@mlflow:5000)"

"""One boto3 session and client factory (STYLE 6).

Standard retry mode with the configured attempts; a fail-fast variant (one attempt) for
creates whose errors must surface at once; region and profile from config; ``AWS_ENDPOINT_URL``
is honoured by boto3 itself (moto's server in tests). boto3 is imported only when a client is
first needed, so the CLI starts fast.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from kservectl import __version__
from kservectl.errors import AwsError
from kservectl.settings import DEFAULT_SETTINGS, Settings

T = TypeVar("T")

# Error codes worth a hand-written retry loop on top of botocore's own (STYLE 6).
RETRYABLE_CODES = frozenset(
    {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException",
     "DependencyViolation", "ServiceUnavailable", "InternalError"}
)


class AwsClients:
    def __init__(self, region: str, profile: str = "", settings: Settings = DEFAULT_SETTINGS) -> None:
        self.region = region
        self.profile = profile or None
        self.settings = settings
        self._session: Any = None
        self._clients: dict[tuple[str, bool], Any] = {}
        self._lock = threading.Lock()
        # Each observer sees every AWS call as (service, operation); tests count mutating calls.
        self.observers: list[Callable[[str, str], None]] = []

    def session(self) -> Any:
        with self._lock:
            if self._session is None:
                import boto3
                import botocore.session

                core = botocore.session.Session()
                # One service-model loader per process: botocore otherwise re-reads its JSON
                # models for every session (~0.3 s each).
                core.register_component("data_loader", _shared_loader())
                if self.profile:
                    if self.profile not in core.available_profiles:
                        raise AwsError("Session", "ProfileNotFound",
                                       f"The config profile ({self.profile}) could not be found",
                                       hint="check aws.profile / AWS_PROFILE")
                    core.set_config_variable("profile", self.profile)
                self._session = boto3.session.Session(botocore_session=core, region_name=self.region)
            return self._session

    def client(self, service: str, *, fail_fast: bool = False) -> Any:
        key = (service, fail_fast)
        session = self.session()
        with self._lock:
            if key not in self._clients:
                from botocore.config import Config

                config = Config(
                    retries={"mode": "standard",
                             "total_max_attempts": 1 if fail_fast else self.settings.aws_max_attempts},
                    connect_timeout=self.settings.aws_connect_timeout,
                    read_timeout=self.settings.aws_read_timeout,
                    user_agent_extra=f"kservectl/{__version__}",
                )
                client = session.client(service, config=config)
                client.meta.events.register("before-call.*.*", self._observe)
                self._clients[key] = client
            return self._clients[key]

    def _observe(self, model: Any, **_: Any) -> None:
        for observer in self.observers:
            observer(model.service_model.service_name, model.name)


MUTATING_PREFIXES = ("Describe", "Get", "List", "Head", "Lookup", "Search", "Check", "Simulate")


def is_mutating(operation: str) -> bool:
    """Does this AWS operation change anything? (Read operations start with a read verb.)"""
    return not operation.startswith(MUTATING_PREFIXES)


_LOADER: Any = None
_LOADER_LOCK = threading.Lock()


def _shared_loader() -> Any:
    global _LOADER
    with _LOADER_LOCK:
        if _LOADER is None:
            from botocore.loaders import create_loader

            _LOADER = create_loader()
        return _LOADER


def error_code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


def call(operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call a boto3 method, turning botocore errors into ``AwsError`` (cause chained)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return fn(*args, **kwargs)
    except NoCredentialsError as exc:
        raise AwsError(operation, "NoCredentials", "no AWS credentials found",
                       hint="run `aws configure` or set AWS_PROFILE") from exc
    except ClientError as exc:
        code = error_code(exc) or "ClientError"
        message = exc.response.get("Error", {}).get("Message", str(exc))
        raise AwsError(operation, code, message) from exc
    except BotoCoreError as exc:
        raise AwsError(operation, type(exc).__name__, str(exc)) from exc

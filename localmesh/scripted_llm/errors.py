"""The exceptions of the scripted LLM."""

from __future__ import annotations

from collections.abc import Sequence


class ScriptError(ValueError):
    """A script file that cannot be used. ``str(error)`` names the file, the place and the problem.

    ``problems`` holds ``(place, what)`` pairs, e.g. ``("rules[2].answer.calls[0]", "missing
    required key 'name'")``; ``source`` is the file name (or another label) the script came from.
    """

    def __init__(self, source: str, problems: Sequence[tuple[str, str]]) -> None:
        self.source = source
        self.problems = list(problems)
        if len(self.problems) == 1:
            place, what = self.problems[0]
            text = f"{source}: {place}: {what}"
        else:
            lines = "".join(f"\n  {place}: {what}" for place, what in self.problems)
            text = f"{source}: {len(self.problems)} problems:{lines}"
        super().__init__(text)


class ScriptedError(Exception):
    """An error answer: the request fails with an HTTP ``status`` and an OpenAI error body.

    Raised by ``ScriptPlayer.respond`` for scripted ``error`` answers and for requests that no
    rule matches. ``retry_after`` (seconds) becomes a ``retry-after`` header; ``event`` asks for
    an in-stream ``error`` event rather than an HTTP status when the transport streams.
    ``fatal`` marks localmesh's own refusals (no rule matched, unknown previous response, a
    malformed body).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        retry_after: float | None = None,
        type: str | None = None,
        code: str | None = None,
        event: bool = False,
        fatal: bool = False,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.type = type or _default_type(status)
        self.given_type = type  # what the script asked for; wire formats map the status otherwise
        self.code = code
        self.event = event
        self.fatal = fatal
        self.param = param  # the request field a refusal is about, for OpenAI's error body

    def to_dict(self) -> dict[str, object]:
        """The JSON form used in transcripts."""
        data: dict[str, object] = {"status": self.status, "message": self.message}
        if self.retry_after is not None:
            data["retry_after"] = self.retry_after
        if self.code is not None:
            data["code"] = self.code
        return data


class ScriptedDrop(ScriptedError):
    """A ``drop: true`` answer: the connection is cut without any reply."""

    def __init__(self, message: str) -> None:
        super().__init__(503, message, type="server_error")


class ScriptFailed(AssertionError):
    """A test's LLM requests broke its script's checks: an ``expect`` that did not hold, or a
    Python rule that failed an assertion, raised, or returned no answer. Raised by
    ``check()`` (the harness calls it for you); ``failures`` are the ``RuleFailure`` records."""

    def __init__(self, failures: Sequence[object]) -> None:
        self.failures = list(failures)
        count = len(self.failures)
        head = ("an LLM request did not meet the script's checks" if count == 1
                else f"{count} LLM requests did not meet the script's checks")
        body = "\n\n".join(str(failure) for failure in self.failures)
        super().__init__(f"{head}:\n\n{body}")


class AuthError(Exception):
    """Raised by the router's ``authenticate`` callable for a refused token; ``str`` says why."""


def _default_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"

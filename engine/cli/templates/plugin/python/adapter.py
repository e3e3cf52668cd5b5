"""The {{name}} adapter, in Python: a WebAssembly component of the
weft:plugin world in wit/plugin.wit, built by ./build.sh.

Action `greet`, input `{"name": "ada"}`, answers `{"greeting": "hello, ada"}`.
Config (the binding's `config:`):
- `blocked`: names that fail with the typed error `blocked`, which a process
  routes on as `error.blocked`;
- `flaky_attempts` (default 0): attempts up to this number fail retryably,
  as a busy service would, so the retry policy is seen working.

A failure is raised as `Err(<failure variant>)`; any other exception would
trap the instance, so `invoke` turns it into `fatal`.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types

VERSION = "0.1.0"
# How loudly each failure is logged: a typed error is an answer, not a fault.
LEVELS = {
    types.Failure_Error: host.Level.INFO,
    types.Failure_Retryable: host.Level.WARN,
    types.Failure_Fatal: host.Level.ERROR,
}


class Failed(Exception):
    """A failure to hand back as the WIT `failure` variant."""

    def __init__(self, failure: types.Failure):
        super().__init__(failure)
        self.failure = failure


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.Manifest:
        return types.Manifest(
            name="{{name}}",
            version=VERSION,
            actions=[
                types.ActionInfo(
                    name="greet",
                    # The same input gives the same greeting: safe to run twice.
                    idempotent=True,
                    compensated_by=None,
                    errors=["blocked"],
                )
            ],
        )

    def invoke(self, inv: types.Invocation) -> types.Outcome:
        try:
            text = json.dumps(run(inv))
        except Failed as e:
            failure = e.failure
        except Exception as e:
            failure = fatal(f"{{name}} adapter bug: {type(e).__name__}: {e}")
        else:
            host.log(host.Level.DEBUG, f"{inv.action} attempt {inv.attempt}: done {text}")
            return types.Outcome_Done(text)
        host.log(LEVELS[type(failure)], f"{inv.action} attempt {inv.attempt}: {said(failure)}")
        # A service that says when to come back (HTTP 429 with Retry-After)
        # would call `host.retry_after(millis)` before failing retryably.
        raise Err(failure)


def run(inv: types.Invocation) -> dict:
    data = parse("input", inv.input)
    config = parse("config", inv.config)
    if inv.action == "greet":
        return greet(data, config, inv.attempt)
    raise Failed(fatal(f"{{name}} has no action '{inv.action}'"))


def greet(data: dict, config: dict, attempt: int) -> dict:
    flaky = config.get("flaky_attempts")
    if flaky is None:
        flaky = 0
    if not isinstance(flaky, int) or isinstance(flaky, bool) or flaky < 0:
        raise Failed(fatal(f"config 'flaky_attempts' must be a whole number, not {json.dumps(flaky)}"))
    if attempt <= flaky:
        raise Failed(types.Failure_Retryable(f"busy (attempt {attempt} of {flaky} set to fail)"))
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise Failed(fatal("greet needs a non-empty string 'name' in its input"))
    blocked = config.get("blocked")
    if isinstance(blocked, list) and name in blocked:
        raise Failed(
            types.Failure_Error(types.TypedError(kind="blocked", message=f"{name} is on the blocked list"))
        )
    return {"greeting": f"hello, {name}"}


def parse(what: str, text: str) -> dict:
    """An empty text is an empty object: a hand-made call may send nothing."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise Failed(fatal(f"{what} is not JSON: {e}")) from None
    if not isinstance(value, dict):
        raise Failed(fatal(f"{what} must be a JSON object"))
    return value


def fatal(message: str) -> types.Failure:
    return types.Failure_Fatal(message)


def said(failure: types.Failure) -> str:
    if isinstance(failure, types.Failure_Error):
        return f"error {failure.value.kind}: {failure.value.message}"
    kind = "retryable" if isinstance(failure, types.Failure_Retryable) else "fatal"
    return f"{kind}: {failure.value}"

"""Ledger adapter, in Python: posts one entry to an account.

Action `post-entry`, input `{"account": str, "amount": number}`, answers
`{"entry", "account", "amount"}` where `entry` is the invocation's idempotency
key: every attempt of one visit of a step names the same entry, so posting it
again changes nothing.

Config: `balance` (default 1000): a larger amount fails with the typed error
`insufficient_funds`; `flaky_attempts` (default 0): attempts up to this number
fail retryably, as a ledger behind a busy database would.

Built into a component by scripts/build-foreign-adapters.sh (componentize-py,
world `adapter` of wit/plugin.wit).
"""

import json
import math

import wit_world
from componentize_py_types import Err
from wit_world.imports import host, types

VERSION = "0.1.0"
DEFAULT_BALANCE = 1000
# How loudly each kind of failure is logged: a typed error is an answer.
LEVELS = {
    types.Failure_Error: host.Level.INFO,
    types.Failure_Retryable: host.Level.WARN,
    types.Failure_Fatal: host.Level.ERROR,
}


class Failed(Exception):
    """A failure to hand back as the `failure` variant."""

    def __init__(self, failure: types.Failure):
        super().__init__(failure)
        self.failure = failure


class WitWorld(wit_world.WitWorld):
    def describe(self) -> types.Manifest:
        return types.Manifest(
            name="ledger",
            version=VERSION,
            actions=[
                types.ActionInfo(
                    name="post-entry",
                    idempotent=True,
                    compensated_by=None,
                    errors=["insufficient_funds"],
                )
            ],
        )

    def invoke(self, inv: types.Invocation) -> types.Outcome:
        try:
            result = json.dumps(run(inv))
        except Failed as e:
            failure = e.failure
        except Exception as e:  # an uncaught exception would trap the instance
            failure = fatal(f"ledger adapter bug: {type(e).__name__}: {e}")
        else:
            host.log(host.Level.INFO, f"{inv.action} attempt {inv.attempt}: done {result}")
            return types.Outcome_Done(result)
        host.log(LEVELS[type(failure)], f"{inv.action} attempt {inv.attempt}: {describe_failure(failure)}")
        raise Err(failure)


def run(inv: types.Invocation) -> dict:
    if inv.action != "post-entry":
        raise Failed(fatal(f"ledger has no action '{inv.action}'"))
    data = parse("input", inv.input)
    config = parse("config", inv.config)

    flaky = setting(config, "flaky_attempts", 0)
    if inv.attempt <= flaky:
        raise Failed(
            types.Failure_Retryable(f"ledger busy (attempt {inv.attempt} of {flaky} set to fail)")
        )

    account = data.get("account")
    amount = data.get("amount")
    if not isinstance(account, str) or not account:
        raise Failed(fatal("post-entry needs a string 'account' in its input"))
    if not is_number(amount) or amount < 0:
        raise Failed(fatal("post-entry needs a non-negative number 'amount' in its input"))
    balance = setting(config, "balance", DEFAULT_BALANCE)
    if amount > balance:
        raise Failed(
            types.Failure_Error(
                types.TypedError(
                    kind="insufficient_funds",
                    message=f"{amount} is more than the {balance} left in {account}",
                )
            )
        )
    return {"entry": inv.idempotency_key, "account": account, "amount": amount}


def parse(what: str, text: str) -> dict:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise Failed(fatal(f"{what} is not JSON: {e}")) from None
    if not isinstance(value, dict):
        raise Failed(fatal(f"{what} must be a JSON object"))
    return value


def setting(config: dict, name: str, default):
    value = config.get(name)
    if value is None:
        return default
    if not is_number(value):
        raise Failed(fatal(f"config '{name}' must be a number, not {json.dumps(value)}"))
    return value


def is_number(value) -> bool:
    # JSON true/false arrive as bool, which Python counts as an int.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fatal(message: str) -> types.Failure:
    return types.Failure_Fatal(message)


def describe_failure(failure: types.Failure) -> str:
    if isinstance(failure, types.Failure_Error):
        return f"error {failure.value.kind}: {failure.value.message}"
    kind = "retryable" if isinstance(failure, types.Failure_Retryable) else "fatal"
    return f"{kind}: {failure.value}"

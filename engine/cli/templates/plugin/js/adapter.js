// The {{name}} adapter, in JavaScript: a WebAssembly component of the
// weft:plugin world in wit/plugin.wit, built by `npm run build`.
//
// Action `greet`, input `{"name": "ada"}`, answers `{"greeting": "hello, ada"}`.
// Config (the binding's `config:`):
// - `blocked`: names that fail with the typed error `blocked`, which a
//   process routes on as `error.blocked`;
// - `flaky_attempts` (default 0): attempts up to this number fail
//   retryably, as a busy service would, so the retry policy is seen working.
//
// A failure is thrown as the WIT `failure` variant ({ tag, val }); any other
// exception would trap the instance, so `invoke` turns it into `fatal`.

import { log } from 'weft:plugin/host@0.1.0';

const VERSION = '0.1.0';
// How loudly each failure is logged: a typed error is an answer, not a fault.
const LEVELS = { error: 'info', retryable: 'warn', fatal: 'error' };

export function describe() {
  return {
    name: '{{name}}',
    version: VERSION,
    actions: [
      {
        name: 'greet',
        // The same input gives the same greeting: safe to run twice.
        idempotent: true,
        compensatedBy: undefined,
        errors: ['blocked'],
      },
    ],
  };
}

export function invoke(inv) {
  let value;
  try {
    value = run(inv);
  } catch (e) {
    const failure = isFailure(e) ? e : fatal(`{{name}} adapter bug: ${e}`);
    log(LEVELS[failure.tag], `${inv.action} attempt ${inv.attempt}: ${said(failure)}`);
    throw failure;
  }
  const text = JSON.stringify(value);
  log('debug', `${inv.action} attempt ${inv.attempt}: done ${text}`);
  // A service that says when to come back (HTTP 429 with Retry-After) would
  // call `retryAfter(millis)` from the same import before failing retryably.
  return { tag: 'done', val: text };
}

function run(inv) {
  const input = parse('input', inv.input);
  const config = parse('config', inv.config);
  switch (inv.action) {
    case 'greet':
      return greet(input, config, inv.attempt);
    default:
      throw fatal(`{{name}} has no action '${inv.action}'`);
  }
}

function greet(input, config, attempt) {
  const flaky = config.flaky_attempts ?? 0;
  if (!Number.isInteger(flaky) || flaky < 0) {
    throw fatal(`config 'flaky_attempts' must be a whole number, not ${JSON.stringify(flaky)}`);
  }
  if (attempt <= flaky) {
    throw { tag: 'retryable', val: `busy (attempt ${attempt} of ${flaky} set to fail)` };
  }
  const name = input.name;
  if (typeof name !== 'string' || name.trim() === '') {
    throw fatal("greet needs a non-empty string 'name' in its input");
  }
  const blocked = Array.isArray(config.blocked) && config.blocked.includes(name);
  if (blocked) {
    throw { tag: 'error', val: { kind: 'blocked', message: `${name} is on the blocked list` } };
  }
  return { greeting: `hello, ${name}` };
}

// An empty text is an empty object: a hand-made call may send nothing.
function parse(what, text) {
  if (text.trim() === '') {
    return {};
  }
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw fatal(`${what} is not JSON: ${e.message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw fatal(`${what} must be a JSON object`);
  }
  return value;
}

function fatal(message) {
  return { tag: 'fatal', val: message };
}

function isFailure(e) {
  return e !== null && typeof e === 'object' && e.tag in LEVELS;
}

function said(failure) {
  return failure.tag === 'error'
    ? `error ${failure.val.kind}: ${failure.val.message}`
    : `${failure.tag}: ${failure.val}`;
}

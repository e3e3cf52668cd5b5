// Risk adapter, in JavaScript: scores a payout before money moves.
//
// Action `score-risk`, input `{ amount, customer }`, answers
// `{ score, customer }` with a score from 0 to 100 that depends only on the
// amount and the customer, so retries and replays see the same number.
//
// Config: `max_amount` (default 10000): a larger amount fails with the typed
// error `too_risky`; `flaky_attempts` (default 0): attempts up to this number
// fail retryably, as a busy risk service would.
//
// Built into a component by scripts/build-foreign-adapters.sh (jco
// componentize, StarlingMonkey, with every optional WASI feature disabled so
// the component imports nothing but the `weft:plugin/host` interface).

import { log } from 'weft:plugin/host@0.1.0';

const VERSION = '0.1.0';
const DEFAULT_MAX_AMOUNT = 10000;
// How loudly each kind of failure is logged: a typed error is an answer.
const LEVELS = { error: 'info', retryable: 'warn', fatal: 'error' };

export function describe() {
  return {
    name: 'risk',
    version: VERSION,
    actions: [
      {
        name: 'score-risk',
        idempotent: true,
        compensatedBy: undefined,
        errors: ['too_risky'],
      },
    ],
  };
}

export function invoke(inv) {
  let answer;
  try {
    answer = { tag: 'done', val: JSON.stringify(run(inv)) };
  } catch (e) {
    // A failure thrown below is already a `failure` variant; anything else is
    // a bug in this file, reported as fatal rather than trapping the instance.
    const failure = e && e.tag in LEVELS ? e : fatal(`risk adapter bug: ${e}`);
    log(LEVELS[failure.tag], `${inv.action} attempt ${inv.attempt}: ${describeFailure(failure)}`);
    throw failure;
  }
  log('info', `${inv.action} attempt ${inv.attempt}: done ${answer.val}`);
  return answer;
}

function run(inv) {
  if (inv.action !== 'score-risk') {
    throw fatal(`risk has no action '${inv.action}'`);
  }
  const input = parse('input', inv.input);
  const config = parse('config', inv.config);

  const flaky = setting(config, 'flaky_attempts', 0);
  if (inv.attempt <= flaky) {
    throw { tag: 'retryable', val: `risk service busy (attempt ${inv.attempt} of ${flaky} set to fail)` };
  }

  const { amount, customer } = input;
  if (typeof amount !== 'number' || !Number.isFinite(amount) || amount < 0) {
    throw fatal("score-risk needs a non-negative number 'amount' in its input");
  }
  if (typeof customer !== 'string' || customer === '') {
    throw fatal("score-risk needs a string 'customer' in its input");
  }
  const max = setting(config, 'max_amount', DEFAULT_MAX_AMOUNT);
  if (amount > max) {
    throw {
      tag: 'error',
      val: { kind: 'too_risky', message: `${amount} for ${customer} is over the limit of ${max}` },
    };
  }
  return { score: score(amount, customer, max), customer };
}

// Up to 60 points for the share of the limit the amount uses, up to 40 for
// who the customer is (a hash of the name stands in for their record).
function score(amount, customer, max) {
  const share = max > 0 ? Math.min(amount / max, 1) : 1;
  return Math.round(share * 60) + (fnv1a(customer) % 41);
}

// 32-bit FNV-1a over the UTF-16 code units: stable across runs and engines.
function fnv1a(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

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

function setting(config, name, fallback) {
  const value = config[name] ?? fallback;
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw fatal(`config '${name}' must be a number, not ${JSON.stringify(value)}`);
  }
  return value;
}

function fatal(message) {
  return { tag: 'fatal', val: message };
}

function describeFailure(failure) {
  return failure.tag === 'error'
    ? `error ${failure.val.kind}: ${failure.val.message}`
    : `${failure.tag}: ${failure.val}`;
}

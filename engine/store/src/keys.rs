//! Key layout (see ARCHITECTURE.md). Everything a commit writes lives in one
//! tree, `journal`, each table under a one-byte prefix, so a whole batch of
//! commits is one atomic `apply_batch`. Fixed-width big-endian numbers keep
//! keys in numeric order; `\0` separates an id from what follows, and ids
//! never contain it.

use weft_model::{InstanceId, Status, Timer, TimerKind};

pub const PROCESSES: &str = "processes";
pub const DEPLOYMENTS: &str = "deployments";
pub const PLUGINS: &str = "plugins";
pub const JOURNAL: &str = "journal";

/// Journal table prefixes.
pub const INSTANCE: u8 = b'i';
pub const STATUS: u8 = b's';
pub const HISTORY: u8 = b'h';
pub const OUTBOX: u8 = b'o';
pub const RESULT: u8 = b'r';
pub const TIMER: u8 = b't';
pub const TOKEN: u8 = b'k';
pub const BUSINESS_KEY: u8 = b'b';
pub const BRANCH: u8 = b'f';
pub const DATA: u8 = b'd';

pub const SCHEDULES: &str = "schedules";
pub const REGISTRY: &str = "registry";
/// The swap log: `seq(u64 BE)` to a `SwapRecord`.
pub const SWAPS: &str = "swaps";

/// `seq(u64 BE)`: one record of the swap log.
pub fn swap(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// `name \0 version(u32 BE)`: one version of a registered plugin; `name`
/// alone holds the newest version number (u32 BE).
pub fn registered(name: &str, version: u32) -> Vec<u8> {
    process(name, version)
}

/// `name \0 version(u32 BE)`
pub fn process(name: &str, version: u32) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// `name \0 version(u32 BE) revision(u32 BE)`: one bindings revision of a
/// process version; the last key under the version's prefix is the newest.
pub fn deployment(name: &str, version: u32, revision: u32) -> Vec<u8> {
    let mut k = process(name, version);
    k.extend_from_slice(&revision.to_be_bytes());
    k
}

/// `name \0 version(u32 BE)`: every bindings revision of a process version.
pub fn deployment_prefix(name: &str, version: u32) -> Vec<u8> {
    process(name, version)
}

/// `name \0`: the prefix of every version of a process.
pub fn process_prefix(name: &str) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.push(0);
    k
}

fn with(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(rest.len() + 1);
    k.push(prefix);
    k.extend_from_slice(rest);
    k
}

/// `i id`
pub fn instance(id: &InstanceId) -> Vec<u8> {
    with(INSTANCE, id.as_str().as_bytes())
}

/// `<table> id \0`: every entry of one instance in a table.
pub fn of_instance(table: u8, id: &InstanceId) -> Vec<u8> {
    let mut k = with(table, id.as_str().as_bytes());
    k.push(0);
    k
}

/// `h id \0 seq(u64 BE)`
pub fn history(id: &InstanceId, seq: u64) -> Vec<u8> {
    let mut k = of_instance(HISTORY, id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `o id \0 step-key`
pub fn outbox(id: &InstanceId, key: &str) -> Vec<u8> {
    let mut k = of_instance(OUTBOX, id);
    k.extend_from_slice(key.as_bytes());
    k
}

/// `d id`: an instance's data, kept apart from its snapshot.
pub fn data(id: &InstanceId) -> Vec<u8> {
    with(DATA, id.as_str().as_bytes())
}

/// `f id \0 fan-key \0`: every branch slot of one fan of an instance.
pub fn branches(id: &InstanceId, fan: &str) -> Vec<u8> {
    let mut k = of_instance(BRANCH, id);
    k.extend_from_slice(fan.as_bytes());
    k.push(0);
    k
}

/// `f id \0 fan-key \0 index(u32 BE)`: one branch slot of a fan, kept apart
/// from the snapshot so a branch's event writes only its own slot.
pub fn branch(id: &InstanceId, fan: &str, index: usize) -> Vec<u8> {
    let mut k = branches(id, fan);
    k.extend_from_slice(&u32::try_from(index).unwrap_or(u32::MAX).to_be_bytes());
    k
}

/// `r step-key`
pub fn result(key: &str) -> Vec<u8> {
    with(RESULT, key.as_bytes())
}

/// `k token`
pub fn token(token: &str) -> Vec<u8> {
    with(TOKEN, token.as_bytes())
}

/// `b process \0 business-key`: the instance started with that key.
pub fn business_key(process: &str, key: &str) -> Vec<u8> {
    let mut k = with(BUSINESS_KEY, process.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// `process \0 index(u32 BE)`: when a schedule last fired.
pub fn schedule(process: &str, index: u32) -> Vec<u8> {
    self::process(process, index)
}

pub fn status_byte(s: Status) -> u8 {
    match s {
        Status::Running => b'r',
        Status::Succeeded => b's',
        Status::Failed => b'f',
        Status::Parked => b'p',
        Status::Cancelled => b'c',
        Status::Waiting => b'w',
    }
}

/// `s status-byte id`
pub fn status(s: Status, id: &InstanceId) -> Vec<u8> {
    let mut k = vec![STATUS, status_byte(s)];
    k.extend_from_slice(id.as_str().as_bytes());
    k
}

/// `t due(u64 BE) id \0 kind-byte step-key`: the first timer key is the next
/// timer due.
pub fn timer(t: &Timer) -> Vec<u8> {
    let mut k = timers_until(t.at.0);
    k.extend_from_slice(t.instance.as_str().as_bytes());
    k.push(0);
    k.push(timer_kind_byte(t.kind));
    k.extend_from_slice(t.key.as_bytes());
    k
}

/// The timer a `t` key names: every field of a [`Timer`] is in its key, so
/// due timers are read from keys alone and a damaged value never stops
/// them. `None` for a key that is not a timer's.
pub fn parse_timer(key: &[u8]) -> Option<Timer> {
    let rest = key.strip_prefix(&[TIMER])?;
    let due = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
    let rest = rest.get(8..)?;
    let split = rest.iter().position(|&b| b == 0)?;
    let instance = std::str::from_utf8(&rest[..split]).ok()?;
    let kind = timer_kind_of(*rest.get(split + 1)?)?;
    let step = std::str::from_utf8(rest.get(split + 2..)?).ok()?;
    Some(Timer {
        instance: InstanceId(instance.to_owned()),
        kind,
        key: step.to_owned(),
        at: weft_model::Millis(due),
    })
}

/// The one byte that stands for a timer kind in keys (and in other
/// backends' columns).
pub fn timer_kind_byte(kind: TimerKind) -> u8 {
    match kind {
        TimerKind::Retry => b'r',
        TimerKind::Timeout => b't',
        TimerKind::Deadline => b'd',
        TimerKind::Heartbeat => b'h',
        TimerKind::Wait => b'w',
        TimerKind::Sla => b's',
    }
}

/// The timer kind `timer_kind_byte` made `b`, if any.
pub fn timer_kind_of(b: u8) -> Option<TimerKind> {
    Some(match b {
        b'r' => TimerKind::Retry,
        b't' => TimerKind::Timeout,
        b'd' => TimerKind::Deadline,
        b'h' => TimerKind::Heartbeat,
        b'w' => TimerKind::Wait,
        b's' => TimerKind::Sla,
        _ => return None,
    })
}

/// `t due(u64 BE)`: timers due before this key are due before `due`.
pub fn timers_until(due: u64) -> Vec<u8> {
    with(TIMER, &due.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_reads_back_from_its_key() {
        let id = InstanceId::new(weft_model::Millis(5), 9);
        for kind in [
            TimerKind::Retry,
            TimerKind::Timeout,
            TimerKind::Deadline,
            TimerKind::Heartbeat,
            TimerKind::Wait,
            TimerKind::Sla,
        ] {
            let t = Timer {
                instance: id.clone(),
                kind,
                key: format!("{id}/s/1/b/x/2"),
                at: weft_model::Millis(1_700_000_000_000),
            };
            assert_eq!(parse_timer(&timer(&t)), Some(t));
        }
        assert_eq!(parse_timer(b"t\0\0"), None);
        assert_eq!(parse_timer(&instance(&id)), None);
    }
}

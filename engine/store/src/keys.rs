//! Key layout (see ARCHITECTURE.md). Fixed-width big-endian numbers keep keys
//! in numeric order; `\0` separates an id from what follows, and ids never
//! contain it.

use weft_model::{InstanceId, Status, Timer, TimerKind};

pub const PROCESSES: &str = "processes";
pub const DEPLOYMENTS: &str = "deployments";
pub const PLUGINS: &str = "plugins";
pub const INSTANCES: &str = "instances";
pub const STATUS: &str = "status";
pub const HISTORY: &str = "history";
pub const OUTBOX: &str = "outbox";
pub const RESULTS: &str = "results";
pub const TIMERS: &str = "timers";
pub const TOKENS: &str = "tokens";

/// `name \0 version(u32 BE)`
pub fn process(name: &str, version: u32) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// `name \0`: the prefix of every version of a process.
pub fn process_prefix(name: &str) -> Vec<u8> {
    let mut k = name.as_bytes().to_vec();
    k.push(0);
    k
}

/// `id \0`
pub fn instance_prefix(id: &InstanceId) -> Vec<u8> {
    let mut k = id.as_str().as_bytes().to_vec();
    k.push(0);
    k
}

/// `id \0 seq(u64 BE)`
pub fn history(id: &InstanceId, seq: u64) -> Vec<u8> {
    let mut k = instance_prefix(id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// `id \0 step-key`
pub fn outbox(id: &InstanceId, key: &str) -> Vec<u8> {
    let mut k = instance_prefix(id);
    k.extend_from_slice(key.as_bytes());
    k
}

pub fn status_byte(s: Status) -> u8 {
    match s {
        Status::Running => b'r',
        Status::Succeeded => b's',
        Status::Failed => b'f',
        Status::Parked => b'p',
        Status::Cancelled => b'c',
    }
}

/// `due(u64 BE) id \0 kind-byte step-key`: the first key is the next timer due.
pub fn timer(t: &Timer) -> Vec<u8> {
    let mut k = t.at.0.to_be_bytes().to_vec();
    k.extend_from_slice(t.instance.as_str().as_bytes());
    k.push(0);
    k.push(match t.kind {
        TimerKind::Retry => b'r',
        TimerKind::Timeout => b't',
        TimerKind::Deadline => b'd',
        TimerKind::Heartbeat => b'h',
    });
    k.extend_from_slice(t.key.as_bytes());
    k
}

/// `status-byte id`
pub fn status(s: Status, id: &InstanceId) -> Vec<u8> {
    let mut k = vec![status_byte(s)];
    k.extend_from_slice(id.as_str().as_bytes());
    k
}

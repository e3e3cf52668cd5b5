//! The conformance suite every store backend runs against itself: the
//! in-memory store here (`tests/conformance.rs`), sled in
//! `weft-store-sled`. A backend's test gives a [`Harness`] that makes a
//! fresh store and, where the store is durable, closes and reopens it, and
//! calls [`run`]. The checks panic on the first difference, naming it.
//! (Test code: `expect` and `assert` are its way of failing.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::json;
use weft_model::{
    Bindings, Failure, Instance, InstanceId, Invoke, Millis, Record, RecordKind, Status, Timer,
    TimerKind,
};

mod fans;
mod registry;
mod transfer;

use crate::{
    Commit, Conflict, Deploy, Deployed, PluginBlob, ProcessRecord, StepResult, Store, TokenRecord,
};

/// Makes a store and, where the store is durable, reopens it.
pub trait Harness {
    fn store(&self) -> Arc<dyn Store>;
    /// Drops the store and opens it again; in-memory stores keep it.
    fn reopen(&mut self);
}

/// Runs every check, each on a fresh harness from `fresh`.
pub fn run(backend: &str, mut fresh: impl FnMut() -> Box<dyn Harness>) {
    for (name, check) in SUITE {
        eprintln!("{backend}: {name}");
        check(&mut *fresh());
    }
}

/// The `n`th test instance id.
pub fn id(n: u128) -> InstanceId {
    InstanceId::new(Millis(1_000 + n as u64), n)
}

/// A test instance of process `order` at `seq`.
pub fn instance(id: &InstanceId, seq: u64, status: Status) -> Instance {
    Instance {
        id: id.clone(),
        process: "order".into(),
        version: 1,
        key: None,
        status,
        state: "reserve".into(),
        data: json!({"n": seq}).into(),
        output: None,
        error: None,
        visits: Default::default(),
        step: None,
        undo: vec![],
        compensating: None,
        timers: vec![],
        parked: None,
        waiting: None,
        fan: None,
        overdue: vec![],
        requests: vec![],
        seq,
        created_at: Millis(1),
        updated_at: Millis(seq),
    }
}

/// A history record numbered `seq`.
pub fn record(seq: u64) -> Record {
    Record {
        branch: None,
        bindings: None,
        plugin: None,
        seq,
        at: Millis(seq),
        kind: RecordKind::Started {
            process: "order".into(),
            version: 1,
            input: json!({}),
        },
    }
}

fn invoke(id: &InstanceId, state: &str) -> Invoke {
    Invoke {
        instance: id.clone(),
        process: "order".into(),
        version: 1,
        state: state.into(),
        action: "act".into(),
        key: format!("{id}/{state}/1"),
        attempt: 1,
        input: json!({}),
        last_heartbeat: None,
        timeout: None,
        heartbeat: None,
    }
}

/// A commit taking `id` from `from` records to `to` records.
pub fn commit(
    id: &InstanceId,
    from: u64,
    to: u64,
    previous: Option<Status>,
    status: Status,
) -> Commit {
    let mut c = Commit::new(instance(id, to, status), previous);
    c.records = (from..to).map(record).collect();
    c
}

fn all_ok(v: Vec<Result<(), Conflict>>) {
    for r in v {
        r.expect("commit applies");
    }
}

fn processes_are_versioned_and_immutable(h: &mut dyn Harness) {
    let s = h.store();
    let p1 = ProcessRecord {
        name: "order".into(),
        version: 1,
        definition: json!({"v": 1}),
        deployed_at: Millis(1),
    };
    let p2 = ProcessRecord {
        version: 2,
        definition: json!({"v": 2}),
        ..p1.clone()
    };
    s.put_process(&p1).expect("io").expect("first put");
    s.put_process(&p1)
        .expect("io")
        .expect("same definition again is fine");
    s.put_process(&p2).expect("io").expect("new version");
    let changed = ProcessRecord {
        definition: json!({"v": "changed"}),
        ..p1.clone()
    };
    assert_eq!(
        s.put_process(&changed).expect("io"),
        Err(Conflict::ProcessVersion {
            name: "order".into(),
            version: 1
        })
    );
    let other = ProcessRecord {
        name: "order-x".into(),
        version: 9,
        ..p1.clone()
    };
    s.put_process(&other).expect("io").expect("other process");
    drop(s);
    h.reopen();
    let s = h.store();
    assert_eq!(s.process("order", 1).expect("io"), Some(p1));
    assert_eq!(
        s.latest_process("order").expect("io").map(|p| p.version),
        Some(2)
    );
    assert_eq!(s.latest_process("nope").expect("io"), None);
    assert_eq!(s.processes().expect("io").len(), 3);
}

pub(super) fn deploy_of(
    version: u32,
    definition: serde_json::Value,
    config: serde_json::Value,
) -> Deploy {
    let mut actions = IndexMap::new();
    actions.insert(
        "charge".to_owned(),
        serde_json::from_value(json!({
            "plugin": "payments", "action": "charge", "config": config,
            "timeout": 1000, "memory": 1024, "grants": {"dirs": [], "env": []}
        }))
        .expect("a binding"),
    );
    Deploy {
        process: ProcessRecord {
            name: "order".into(),
            version,
            definition,
            deployed_at: Millis(3),
        },
        bindings: Bindings {
            plugins: IndexMap::new(),
            actions,
        },
        plugins: vec![PluginBlob {
            name: "payments".into(),
            sha256: "ab12".into(),
            bytes: Arc::from(&b"\0asm bytes"[..]),
        }],
    }
}

fn deploys_are_atomic_and_bindings_are_revisioned_per_version(h: &mut dyn Harness) {
    let s = h.store();
    let v1 = deploy_of(1, json!({"v": 1}), json!({"limit": 1}));
    let first = s.deploy(&v1).expect("io").expect("deploys");
    assert_eq!(
        first,
        Deployed {
            revision: 1,
            new_version: true,
            new_revision: true
        }
    );
    // The same again changes nothing.
    let again = s.deploy(&v1).expect("io").expect("deploys");
    assert_eq!((again.revision, again.new_revision), (1, false));
    // New bindings for the same version: a new revision.
    let swapped = deploy_of(1, json!({"v": 1}), json!({"limit": 2}));
    let second = s.deploy(&swapped).expect("io").expect("deploys");
    assert_eq!((second.revision, second.new_version), (2, false));
    // Version 2 has bindings of its own; version 1's stay.
    let v2 = deploy_of(2, json!({"v": 2}), json!({"limit": 9}));
    assert_eq!(s.deploy(&v2).expect("io").expect("deploys").revision, 1);
    // Another definition under an existing version writes nothing at all.
    let changed = deploy_of(1, json!({"v": "changed"}), json!({"limit": 3}));
    assert_eq!(
        s.deploy(&changed).expect("io"),
        Err(Conflict::ProcessVersion {
            name: "order".into(),
            version: 1
        })
    );
    drop(s);
    h.reopen();
    let s = h.store();
    let newest = s.deployment("order", 1).expect("io").expect("deployed");
    assert_eq!(newest, swapped.deployment(2));
    assert_eq!(
        s.deployment_revision("order", 1, 1).expect("io"),
        Some(v1.deployment(1))
    );
    assert_eq!(
        s.deployment("order", 2).expect("io"),
        Some(v2.deployment(1))
    );
    assert_eq!(s.deployment("order", 3).expect("io"), None);
    assert_eq!(
        s.process("order", 1).expect("io").map(|p| p.definition),
        Some(json!({"v": 1}))
    );
    assert_eq!(
        s.plugin("ab12").expect("io").as_deref(),
        Some(&b"\0asm bytes"[..])
    );
    assert_eq!(s.plugin("cd34").expect("io"), None);
}

fn history_is_append_only_and_gap_free(h: &mut dyn Harness) {
    let s = h.store();
    let a = id(1);
    all_ok(
        s.commit(&[commit(&a, 0, 2, None, Status::Running)])
            .expect("io"),
    );
    all_ok(
        s.commit(&[commit(&a, 2, 3, Some(Status::Running), Status::Running)])
            .expect("io"),
    );
    // Skipping a number, rewriting one, or creating twice are conflicts.
    let gap = s
        .commit(&[commit(&a, 4, 5, Some(Status::Running), Status::Running)])
        .expect("io");
    assert!(
        matches!(
            gap[0],
            Err(Conflict::HistoryGap {
                expected: 3,
                got: 4,
                ..
            })
        ),
        "{gap:?}"
    );
    let rewrite = s
        .commit(&[commit(&a, 1, 3, Some(Status::Running), Status::Running)])
        .expect("io");
    assert!(
        matches!(rewrite[0], Err(Conflict::HistoryGap { got: 1, .. })),
        "{rewrite:?}"
    );
    let again = s
        .commit(&[commit(&a, 0, 1, None, Status::Running)])
        .expect("io");
    assert_eq!(again[0], Err(Conflict::InstanceExists(a.clone())));
    let ghost = s
        .commit(&[commit(
            &id(99),
            0,
            1,
            Some(Status::Running),
            Status::Running,
        )])
        .expect("io");
    assert_eq!(ghost[0], Err(Conflict::NoInstance(id(99))));
    // A commit whose snapshot disagrees with its own records is refused.
    let mut bad = commit(&a, 3, 4, Some(Status::Running), Status::Running);
    bad.instance.seq = 7;
    assert!(s.commit(&[bad]).expect("io")[0].is_err());
    drop(s);
    h.reopen();
    let s = h.store();
    let seqs: Vec<u64> = s
        .history(&a, 0)
        .expect("io")
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert_eq!(s.history(&a, 2).expect("io").len(), 1);
    assert_eq!(s.instance(&a).expect("io").map(|i| i.seq), Some(3));
}

fn a_batch_applies_good_commits_and_skips_conflicting_ones(h: &mut dyn Harness) {
    let s = h.store();
    let ids: Vec<InstanceId> = (10..60).map(id).collect();
    let mut batch: Vec<Commit> = ids
        .iter()
        .map(|i| commit(i, 0, 1, None, Status::Running))
        .collect();
    batch.push(commit(&ids[0], 0, 1, None, Status::Running)); // duplicate create
    let out = s.commit(&batch).expect("io");
    assert_eq!(out.iter().filter(|r| r.is_ok()).count(), ids.len());
    assert_eq!(
        out.last(),
        Some(&Err(Conflict::InstanceExists(ids[0].clone())))
    );
    drop(s);
    h.reopen();
    let s = h.store();
    for i in &ids {
        assert_eq!(s.history(i, 0).expect("io").len(), 1, "{i}");
    }
}

fn outbox_results_and_status_index_move_with_the_instance(h: &mut dyn Harness) {
    let s = h.store();
    let a = id(200);
    let b = id(201);
    let mut c1 = commit(&a, 0, 1, None, Status::Running);
    c1.outbox = vec![invoke(&a, "reserve")];
    let mut c2 = commit(&b, 0, 1, None, Status::Running);
    c2.outbox = vec![invoke(&b, "reserve")];
    all_ok(s.commit(&[c1, c2]).expect("io"));
    assert_eq!(s.outbox().expect("io").len(), 2);
    assert!(s.outbox().expect("io").iter().all(Result::is_ok));
    assert_eq!(
        s.ids_with_status(Status::Running).expect("io"),
        vec![a.clone(), b.clone()]
    );

    let key = format!("{a}/reserve/1");
    let mut done = commit(&a, 1, 2, Some(Status::Running), Status::Succeeded);
    done.settled = vec![key.clone()];
    done.results = vec![(
        key.clone(),
        StepResult::Done {
            output: json!({"ok": true}),
        },
    )];
    let mut failed = commit(&b, 1, 2, Some(Status::Running), Status::Parked);
    let bkey = format!("{b}/reserve/1");
    failed.results = vec![(
        bkey.clone(),
        StepResult::Failed {
            failure: Failure::new("trap", "boom"),
        },
    )];
    all_ok(s.commit(&[done, failed]).expect("io"));
    drop(s);
    h.reopen();
    let s = h.store();
    assert!(s.outbox_of(&a).expect("io").is_empty());
    assert_eq!(
        s.outbox_of(&b).expect("io").len(),
        1,
        "b's command was not settled"
    );
    assert_eq!(
        s.result(&key).expect("io"),
        Some(StepResult::Done {
            output: json!({"ok": true})
        })
    );
    assert!(matches!(
        s.result(&bkey).expect("io"),
        Some(StepResult::Failed { .. })
    ));
    assert_eq!(s.result("no/such/key").expect("io"), None);
    assert!(s.ids_with_status(Status::Running).expect("io").is_empty());
    assert_eq!(s.ids_with_status(Status::Succeeded).expect("io"), vec![a]);
    assert_eq!(s.ids_with_status(Status::Parked).expect("io"), vec![b]);
}

fn timer(id: &InstanceId, kind: TimerKind, at: u64) -> Timer {
    Timer {
        instance: id.clone(),
        kind,
        key: format!("{id}/s/1"),
        at: Millis(at),
    }
}

fn timers_come_back_in_due_order_and_go_with_their_commit(h: &mut dyn Harness) {
    let s = h.store();
    let a = id(300);
    let b = id(301);
    assert_eq!(s.next_timer().expect("io"), None);
    let mut c1 = commit(&a, 0, 1, None, Status::Running);
    c1.timers_armed = vec![
        timer(&a, TimerKind::Retry, 5_000),
        timer(&a, TimerKind::Deadline, 90_000),
    ];
    let mut c2 = commit(&b, 0, 1, None, Status::Running);
    c2.timers_armed = vec![timer(&b, TimerKind::Timeout, 2_000)];
    all_ok(s.commit(&[c1, c2]).expect("io"));
    drop(s);
    h.reopen();
    let s = h.store();
    assert_eq!(
        s.next_timer().expect("io"),
        Some(Millis(2_000)),
        "the earliest, not the first armed"
    );
    let due: Vec<u64> = s
        .due_timers(Millis(5_000), 10)
        .expect("io")
        .iter()
        .map(|t| t.at.0)
        .collect();
    assert_eq!(due, [2_000, 5_000], "due at or before, in order");
    assert_eq!(
        s.next_timer_after(Millis(2_000)).expect("io"),
        Some(Millis(5_000)),
        "strictly after"
    );
    assert_eq!(s.next_timer_after(Millis(90_000)).expect("io"), None);
    assert_eq!(s.due_timers(Millis(5_000), 1).expect("io").len(), 1);
    // A commit cancels one; a spent one is removed directly.
    let mut c3 = commit(&a, 1, 2, Some(Status::Running), Status::Running);
    c3.timers_cancelled = vec![timer(&a, TimerKind::Retry, 5_000)];
    all_ok(s.commit(&[c3]).expect("io"));
    s.remove_timer(&timer(&b, TimerKind::Timeout, 2_000))
        .expect("io");
    drop(s);
    h.reopen();
    let s = h.store();
    assert_eq!(s.next_timer().expect("io"), Some(Millis(90_000)));
}

fn tokens_open_and_close_with_their_commit(h: &mut dyn Harness) {
    let s = h.store();
    let a = id(400);
    let open = TokenRecord {
        instance: a.clone(),
        key: format!("{a}/s/1"),
        opened_at: Millis(1),
        closed_at: None,
    };
    let mut c = commit(&a, 0, 1, None, Status::Running);
    c.tokens = vec![("tok-1".into(), open.clone())];
    all_ok(s.commit(&[c]).expect("io"));
    assert_eq!(s.token("tok-1").expect("io"), Some(open.clone()));
    let closed = TokenRecord {
        closed_at: Some(Millis(9)),
        ..open
    };
    let mut c = commit(&a, 1, 2, Some(Status::Running), Status::Running);
    c.tokens = vec![("tok-1".into(), closed.clone())];
    all_ok(s.commit(&[c]).expect("io"));
    drop(s);
    h.reopen();
    let s = h.store();
    assert_eq!(s.token("tok-1").expect("io"), Some(closed));
    assert_eq!(s.token("tok-2").expect("io"), None);
}

fn a_token_belongs_to_one_step_checked_in_the_commit(h: &mut dyn Harness) {
    let s = h.store();
    let (a, b) = (id(410), id(411));
    let open = |i: &InstanceId| TokenRecord {
        instance: i.clone(),
        key: format!("{i}/s/1"),
        opened_at: Millis(1),
        closed_at: None,
    };
    let mut ca = commit(&a, 0, 1, None, Status::Running);
    ca.tokens = vec![("shared".into(), open(&a))];
    let mut cb = commit(&b, 0, 1, None, Status::Running);
    cb.tokens = vec![("shared".into(), open(&b))];
    // Both in one batch: the first wins, the second is refused.
    let out = s.commit(&[ca, cb.clone()]).expect("io");
    assert_eq!(out[0], Ok(()));
    assert!(
        matches!(&out[1], Err(Conflict::TokenTaken { token, .. }) if token == "shared"),
        "{out:?}"
    );
    assert_eq!(
        s.instance(&b).expect("io"),
        None,
        "nothing of it was written"
    );
    drop(s);
    h.reopen();
    let s = h.store();
    // And against what is stored, after a reopen.
    let out = s.commit(&[cb]).expect("io");
    assert!(
        matches!(&out[0], Err(Conflict::TokenTaken { .. })),
        "{out:?}"
    );
    assert_eq!(s.token("shared").expect("io").map(|t| t.instance), Some(a));
}

type Check = fn(&mut dyn Harness);
fn status_pages_read_in_id_order_after_a_cursor(h: &mut dyn Harness) {
    let waiting: Vec<InstanceId> = (60..65).map(id).collect();
    let running: Vec<InstanceId> = (65..67).map(id).collect();
    let mut batch: Vec<Commit> = waiting
        .iter()
        .map(|w| commit(w, 0, 1, None, Status::Waiting))
        .collect();
    batch.extend(
        running
            .iter()
            .map(|r| commit(r, 0, 1, None, Status::Running)),
    );
    all_ok(h.store().commit(&batch).expect("io"));
    h.reopen();
    let s = h.store();
    let page = |after: Option<&InstanceId>| {
        s.ids_with_status_after(Status::Waiting, after, 2)
            .expect("io")
    };
    assert_eq!(page(None), waiting[..2]);
    assert_eq!(page(Some(&waiting[1])), waiting[2..4]);
    assert_eq!(page(Some(&waiting[3])), waiting[4..]);
    assert!(page(Some(&waiting[4])).is_empty());
    // A cursor that is not in this index still pages from where it sorts.
    assert_eq!(page(Some(&id(59))), waiting[..2]);
    assert_eq!(
        s.ids_with_status_after(Status::Running, Some(&waiting[4]), 10)
            .expect("io"),
        running
    );
}

const SUITE: &[(&str, Check)] = &[
    (
        "a_copy_holds_everything_the_original_had",
        transfer::a_copy_holds_everything_the_original_had,
    ),
    (
        "the_registry_versions_plugins_by_name_and_digest",
        registry::the_registry_versions_plugins_by_name_and_digest,
    ),
    (
        "swaps_write_revisions_log_and_component_at_once",
        registry::swaps_write_revisions_log_and_component_at_once,
    ),
    (
        "racing_deploys_and_swaps_each_take_their_own_revision",
        registry::racing_deploys_and_swaps_each_take_their_own_revision,
    ),
    (
        "status_pages_read_in_id_order_after_a_cursor",
        status_pages_read_in_id_order_after_a_cursor,
    ),
    (
        "data_is_written_when_it_changed",
        fans::data_is_written_when_it_changed,
    ),
    (
        "branches_are_kept_apart_and_written_when_changed",
        fans::branches_are_kept_apart_and_written_when_changed,
    ),
    (
        "processes_are_versioned_and_immutable",
        processes_are_versioned_and_immutable,
    ),
    (
        "deploys_are_atomic_and_bindings_are_revisioned_per_version",
        deploys_are_atomic_and_bindings_are_revisioned_per_version,
    ),
    (
        "history_is_append_only_and_gap_free",
        history_is_append_only_and_gap_free,
    ),
    (
        "a_batch_applies_good_commits_and_skips_conflicting_ones",
        a_batch_applies_good_commits_and_skips_conflicting_ones,
    ),
    (
        "outbox_results_and_status_index_move_with_the_instance",
        outbox_results_and_status_index_move_with_the_instance,
    ),
    (
        "timers_come_back_in_due_order_and_go_with_their_commit",
        timers_come_back_in_due_order_and_go_with_their_commit,
    ),
    (
        "tokens_open_and_close_with_their_commit",
        tokens_open_and_close_with_their_commit,
    ),
    (
        "a_token_belongs_to_one_step_checked_in_the_commit",
        a_token_belongs_to_one_step_checked_in_the_commit,
    ),
    (
        "business_keys_are_unique_per_process",
        business_keys_are_unique_per_process,
    ),
    ("schedule_marks_round_trip", schedule_marks_round_trip),
];

fn business_keys_are_unique_per_process(h: &mut dyn Harness) {
    let s = h.store();
    let keyed = |n: u128, process: &str| {
        let mut c = commit(&id(n), 0, 1, None, Status::Waiting);
        c.instance.key = Some("order-123".into());
        c.instance.process = process.into();
        c
    };
    // Two starts with one key in one batch: the first wins.
    let out = s
        .commit(&[keyed(1, "order"), keyed(2, "order"), keyed(3, "refund")])
        .expect("io");
    assert_eq!(out[0], Ok(()));
    assert_eq!(
        out[1],
        Err(Conflict::KeyTaken {
            process: "order".into(),
            key: "order-123".into(),
            instance: id(1),
        })
    );
    assert_eq!(out[2], Ok(()), "keys are per process");
    assert!(
        s.instance(&id(2)).expect("io").is_none(),
        "nothing of the loser is stored"
    );
    drop(s);
    h.reopen();
    let s = h.store();
    assert_eq!(s.by_key("order", "order-123").expect("io"), Some(id(1)));
    assert_eq!(s.by_key("refund", "order-123").expect("io"), Some(id(3)));
    assert_eq!(s.by_key("order", "order-999").expect("io"), None);
    // A later batch is refused too.
    let out = s.commit(&[keyed(4, "order")]).expect("io");
    assert!(matches!(&out[0], Err(Conflict::KeyTaken { instance, .. }) if *instance == id(1)));
    assert_eq!(
        s.ids_with_status(Status::Waiting).expect("io"),
        vec![id(1), id(3)]
    );
}

fn schedule_marks_round_trip(h: &mut dyn Harness) {
    let s = h.store();
    assert_eq!(s.schedule_mark("report", 0).expect("io"), None);
    s.put_schedule_mark("report", 0, Millis(5_000)).expect("io");
    s.put_schedule_mark("report", 1, Millis(7_000)).expect("io");
    s.put_schedule_mark("report", 0, Millis(6_000)).expect("io");
    drop(s);
    h.reopen();
    let s = h.store();
    assert_eq!(
        s.schedule_mark("report", 0).expect("io"),
        Some(Millis(6_000))
    );
    assert_eq!(
        s.schedule_mark("report", 1).expect("io"),
        Some(Millis(7_000))
    );
    assert_eq!(s.schedule_mark("other", 0).expect("io"), None);
}

//! Copying a store: everything a well-filled in-memory store holds comes
//! out of the backend under test the same, and stays so across a reopen.

use std::sync::Arc;

use serde_json::json;
use weft_model::{Fan, Millis, Status, TimerKind};

use super::fans::slot;
use super::{Harness, commit, id, instance, invoke, timer};
use crate::transfer::{copy, dump};
use crate::{
    Definitions as _, Journal as _, MemStore, ProcessRecord, StepResult, Store, TokenRecord,
};

struct Mem(Arc<MemStore>);

impl Harness for Mem {
    fn store(&self) -> Arc<dyn Store> {
        self.0.clone()
    }
    fn reopen(&mut self) {}
}

/// A store with something in every table.
fn filled() -> Arc<MemStore> {
    let mut h = Mem(Arc::new(MemStore::new()));
    // A deploy, a swap to a registered component, the registry, the log.
    super::registry::swaps_write_revisions_log_and_component_at_once(&mut h);
    let s = h.0.clone();
    let cron = ProcessRecord {
        name: "nightly".into(),
        version: 1,
        definition: json!({"schedules": [{"cron": "0 1 * * *"}, {"cron": "0 2 * * *"}]}),
        deployed_at: Millis(5),
    };
    s.put_process(&cron).expect("io").expect("stored");
    s.put_schedule_mark("nightly", 1, Millis(77)).expect("io");

    // A running instance with everything filed under it.
    let a = id(900);
    let mut running = instance(&a, 3, Status::Running);
    running.key = Some("order-1".into());
    running.data = json!({"items": ["x", "y", "z"], "n": 3}).into();
    running.fan = Some(Box::new(Fan::new(
        format!("{a}/each/1"),
        Millis(1),
        vec![slot("x"), slot("y"), slot("z")],
    )));
    let mut c = commit(&a, 0, 3, None, Status::Running);
    c.branches = running
        .fan
        .as_mut()
        .map(|f| f.take_changes())
        .unwrap_or_default();
    c.instance = running;
    c.outbox = vec![invoke(&a, "charge")];
    c.results = vec![(
        format!("{a}/reserve/1"),
        StepResult::Done {
            output: json!({"ok": true}),
        },
    )];
    c.timers_armed = vec![timer(&a, TimerKind::Retry, 5_000)];
    c.tokens = vec![(
        "tok-a".into(),
        TokenRecord {
            instance: a.clone(),
            key: format!("{a}/ship/1"),
            opened_at: Millis(2),
            closed_at: None,
        },
    )];
    // One that ended.
    let b = id(901);
    let done = commit(&b, 0, 2, None, Status::Succeeded);
    for r in s.commit(&[c, done]).expect("io") {
        r.expect("applies");
    }
    s
}

pub(super) fn a_copy_holds_everything_the_original_had(h: &mut dyn Harness) {
    let from = filled();
    let original = dump(&*from).expect("io");
    assert!(original.len() >= 8, "every kind of row: {original:#?}");
    let to = h.store();
    let copied = copy(&*from, &*to).expect("copies");
    assert_eq!((copied.instances, copied.records), (2, 5));
    assert_eq!(dump(&*to).expect("io"), original);
    let again = copy(&*from, &*to).expect_err("the target is not empty now");
    assert!(again.to_string().contains("not empty"), "{again}");
    drop(to);
    h.reopen();
    assert_eq!(dump(&*h.store()).expect("io"), original, "after a reopen");
}

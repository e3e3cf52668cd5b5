//! The conformance suite against sled, reopening the store between steps.

use std::sync::Arc;

use weft_store::testkit::{self, Harness};
use weft_store::{Error, Store};
use weft_store_sled::SledStore;

struct Sled {
    dir: tempfile::TempDir,
    store: Option<Arc<SledStore>>,
}

impl Harness for Sled {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone().expect("open")
    }
    fn reopen(&mut self) {
        if let Some(store) = self.store.take() {
            Arc::try_unwrap(store)
                .expect("the suite holds no other handle")
                .close()
                .expect("closes");
        }
        self.store = Some(Arc::new(SledStore::open(self.dir.path()).expect("reopens")));
    }
}

fn sled() -> Sled {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Some(Arc::new(SledStore::open(dir.path()).expect("opens")));
    Sled { dir, store }
}

#[test]
fn sled_store_passes_the_conformance_suite_across_reopens() {
    testkit::run("sled", || Box::new(sled()));
}

#[test]
fn sled_store_refuses_a_second_opener() {
    let h = sled();
    match SledStore::open(h.dir.path()) {
        Err(Error::Locked { .. }) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn a_closed_store_reopens_at_once_in_the_same_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    for _ in 0..20 {
        let store = SledStore::open(dir.path()).expect("opens right after the close");
        store.close().expect("closes");
    }
}

#[test]
fn a_damaged_outbox_entry_comes_back_as_its_error_and_hides_no_other() {
    use serde_json::json;
    use weft_model::{InstanceId, Invoke, Millis};
    use weft_store::{Definitions as _, Instances as _};
    let dir = tempfile::tempdir().expect("tempdir");
    let invoke = |n: u128| Invoke {
        instance: InstanceId::new(Millis(1_000), n),
        process: "p".into(),
        version: 1,
        state: "s".into(),
        action: "a".into(),
        key: format!("{}/s/1", InstanceId::new(Millis(1_000), n)),
        attempt: 1,
        input: json!({}),
        last_heartbeat: None,
        timeout: None,
        heartbeat: None,
    };
    {
        // Two entries written as a commit would, one of them then damaged.
        let db = sled::open(dir.path()).expect("sled opens");
        let journal = db.open_tree("journal").expect("tree");
        for n in [1, 2] {
            let inv = invoke(n);
            journal
                .insert(
                    weft_store::keys::outbox(&inv.instance, &inv.key),
                    serde_json::to_vec(&inv).expect("json"),
                )
                .expect("insert");
        }
        let bad = invoke(2);
        journal
            .insert(
                weft_store::keys::outbox(&bad.instance, &bad.key),
                &b"{\"tru"[..],
            )
            .expect("insert");
        db.flush().expect("flush");
    }
    let store =
        SledStore::open_patiently(dir.path(), std::time::Duration::from_secs(10)).expect("opens");
    let entries = store.outbox().expect("io");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].as_ref().expect("readable"), &invoke(1));
    let err = entries[1].as_ref().expect_err("damaged");
    assert!(
        err.to_string().contains(invoke(2).instance.as_str()),
        "the error names the entry: {err}"
    );
    assert_eq!(store.processes().expect("io").len(), 0);
}

/// A snapshot written before the data and branch slots were kept apart
/// (both inline) reads back whole, and the next commit, though it says the
/// data is unchanged and lists no slot, writes both out: nothing is lost.
#[test]
fn a_snapshot_from_before_the_split_reads_whole_and_keeps_its_parts() {
    use serde_json::json;
    use weft_model::{Fan, Instance, InstanceId, Millis, Slot, Status};
    use weft_store::{Commit, Instances as _, Journal as _};
    let dir = tempfile::tempdir().expect("tempdir");
    let id = InstanceId::new(Millis(1_000), 77);
    let slot = |n: &str| Slot {
        name: n.into(),
        input: json!({ "item": n }),
        inst: None,
        outcome: None,
    };
    let old: Instance = serde_json::from_value(json!({
        "id": id, "process": "p", "version": 1, "status": "running", "state": "each",
        "data": { "items": ["a", "b"] }, "seq": 1, "created_at": 1, "updated_at": 1,
        "fan": { "key": format!("{id}/each/1"), "since": 1,
                 "slots": [slot("a"), slot("b")] },
    }))
    .expect("an old snapshot parses");
    {
        let db = sled::open(dir.path()).expect("sled opens");
        let journal = db.open_tree("journal").expect("tree");
        journal
            .insert(
                weft_store::keys::instance(&id),
                serde_json::to_vec(&old).expect("json"),
            )
            .expect("insert");
        journal
            .insert(weft_store::keys::status(Status::Running, &id), &[] as &[u8])
            .expect("insert");
        journal
            .insert(weft_store::keys::history(&id, 0), &b"{}"[..])
            .expect("insert");
        db.flush().expect("flush");
    }
    let store = SledStore::open(dir.path()).expect("opens");
    let mut read = store.instance(&id).expect("io").expect("stored");
    assert_eq!(read, old);
    // The next change (a slot-less, data-less one, as a branch event of
    // another fan would be) still carries both out of the old snapshot.
    let mut c = Commit::new(read.clone(), Some(Status::Running));
    c.branches = read
        .fan
        .as_mut()
        .map(|f: &mut Box<Fan>| f.take_changes())
        .unwrap_or_default();
    c.data_unchanged = true;
    c.instance.seq = 1;
    store.commit(&[c]).expect("io").remove(0).expect("applies");
    store.close().expect("closes");
    let store = SledStore::open(dir.path()).expect("reopens");
    assert_eq!(store.instance(&id).expect("io"), Some(old));
}

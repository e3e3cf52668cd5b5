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

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

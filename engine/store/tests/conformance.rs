//! The conformance suite against the in-memory store.

use std::sync::Arc;

use weft_store::testkit::{self, Harness};
use weft_store::{MemStore, Store};

struct Mem(Arc<MemStore>);

impl Harness for Mem {
    fn store(&self) -> Arc<dyn Store> {
        self.0.clone()
    }
    fn reopen(&mut self) {}
}

#[test]
fn mem_store_passes_the_conformance_suite() {
    testkit::run("mem", || Box::new(Mem(Arc::new(MemStore::new()))));
}

//! The conformance suite against a real PostgreSQL server (started for the
//! test from the distribution's binaries), a fresh database per check,
//! reconnecting between steps.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use weft_store::Store;
use weft_store::testkit::{self, Harness};
use weft_store_postgres::testing::Postgres;
use weft_store_postgres::{Options, PgStore};

struct Pg {
    url: String,
    store: Option<Arc<PgStore>>,
}

fn options() -> Options {
    Options {
        node: "conformance".into(),
        ..Options::default()
    }
}

impl Harness for Pg {
    fn store(&self) -> Arc<dyn Store> {
        self.store.clone().expect("connected")
    }
    fn reopen(&mut self) {
        if let Some(store) = self.store.take() {
            store.release().expect("releases its leases");
        }
        self.store = Some(Arc::new(
            PgStore::connect(&self.url, options()).expect("reconnects"),
        ));
    }
}

#[test]
fn postgres_store_passes_the_conformance_suite_across_reconnects() {
    let pg = Postgres::start().expect("a PostgreSQL server starts");
    let n = AtomicUsize::new(0);
    testkit::run("postgres", || {
        let db = format!("check{}", n.fetch_add(1, Ordering::Relaxed));
        let url = pg.create_db(&db).expect("createdb");
        let store = PgStore::connect(&url, options()).expect("connects");
        assert_eq!(
            store.ownership().held.len(),
            64,
            "a lone node holds every partition"
        );
        Box::new(Pg {
            url,
            store: Some(Arc::new(store)),
        })
    });
}

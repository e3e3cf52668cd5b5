//! Ownership and fencing on a real PostgreSQL server: partitions held on
//! leases by the database's clock, epochs bumped on every takeover, and a
//! node that lost a partition — taken while it held a batch, or its lease
//! run out while it was paused — commits nothing to it. Lease expiry is
//! set in the database, not waited for, so the tests do not sleep.

use weft_model::Status;
use weft_store::testkit::{commit, id};
use weft_store::{Conflict, Instances as _, Journal as _};
use weft_store_postgres::testing::Postgres;
use weft_store_postgres::{Options, PgStore};

fn node(url: &str, name: &str) -> PgStore {
    PgStore::connect(
        url,
        Options {
            node: name.into(),
            keep_leases: false,
            ..Options::default()
        },
    )
    .expect("connects")
}

/// Ends `partition`'s lease now, as if its holder had stopped renewing.
fn expire(pg: &Postgres, db: &str, partition: u32) {
    pg.psql(
        db,
        &format!(
            "UPDATE weft.partitions SET expires = now() - interval '1 second' WHERE p = {partition}"
        ),
    )
    .expect("psql");
}

fn epoch(pg: &Postgres, db: &str, partition: u32) -> (String, i64) {
    let row = pg
        .psql(
            db,
            &format!("SELECT owner || '|' || epoch FROM weft.partitions WHERE p = {partition}"),
        )
        .expect("psql");
    let (owner, epoch) = row.split_once('|').expect("owner|epoch");
    (owner.to_owned(), epoch.parse().expect("a number"))
}

#[test]
fn a_batch_prepared_before_another_node_took_the_partition_commits_nothing() {
    let pg = Postgres::start().expect("PostgreSQL starts");
    let url = pg.create_db("fence").expect("createdb");
    let a = node(&url, "a");
    let x = id(1);
    let p = a.partition(&x);
    assert!(a.ownership().holds(p));
    a.commit(&[commit(&x, 0, 2, None, Status::Running)])
        .expect("io")
        .remove(0)
        .expect("a owns the partition");
    let (_, first) = epoch(&pg, "fence", p);

    // A prepares its next change; meanwhile its lease ends and B takes the
    // partition (and only that one: A's others are live).
    let next = commit(&x, 2, 4, Some(Status::Running), Status::Running);
    expire(&pg, "fence", p);
    let b = node(&url, "b");
    assert_eq!(
        b.ownership().held.keys().copied().collect::<Vec<_>>(),
        vec![p]
    );
    let (owner, taken) = epoch(&pg, "fence", p);
    assert_eq!(
        (owner.as_str(), taken),
        ("b", first + 1),
        "taking bumps the epoch"
    );

    match a.commit(&[next]).expect("io").remove(0) {
        Err(Conflict::Fenced {
            instance,
            partition,
        }) => {
            assert_eq!((instance, partition), (x.clone(), p));
        }
        other => panic!("expected Fenced, got {other:?}"),
    }
    assert!(!a.ownership().holds(p), "a forgets the partition it lost");
    assert_eq!(
        a.history(&x, 0).expect("io").len(),
        2,
        "nothing of a's was written"
    );

    // The new owner continues from what is stored.
    b.commit(&[commit(&x, 2, 3, Some(Status::Running), Status::Succeeded)])
        .expect("io")
        .remove(0)
        .expect("b owns it now");
    assert_eq!(b.instance(&x).expect("io").expect("stored").seq, 3);
    // A's commits to partitions it still holds go through, in the same
    // batch as a fenced one.
    let y = (2..200)
        .map(id)
        .find(|y| a.partition(y) != p)
        .expect("an id in another partition");
    let outcomes = a
        .commit(&[
            commit(&y, 0, 1, None, Status::Running),
            commit(&x, 3, 4, Some(Status::Succeeded), Status::Succeeded),
        ])
        .expect("io");
    assert_eq!(outcomes[0], Ok(()));
    assert!(matches!(outcomes[1], Err(Conflict::Fenced { .. })));
}

#[test]
fn a_node_whose_lease_ran_out_while_paused_commits_nothing_until_it_renews() {
    let pg = Postgres::start().expect("PostgreSQL starts");
    let url = pg.create_db("paused").expect("createdb");
    let a = node(&url, "a");
    let x = id(7);
    let p = a.partition(&x);
    expire(&pg, "paused", p);
    // Nobody took it, but the lease is over: the commit is refused.
    let refused = a
        .commit(&[commit(&x, 0, 1, None, Status::Running)])
        .expect("io")
        .remove(0);
    assert!(
        matches!(refused, Err(Conflict::Fenced { .. })),
        "{refused:?}"
    );
    assert!(a.instance(&x).expect("io").is_none());
    // It takes the partition again (a new epoch) and goes on.
    let (_, before) = epoch(&pg, "paused", p);
    a.tick().expect("takes partitions");
    assert!(a.ownership().holds(p));
    assert_eq!(epoch(&pg, "paused", p), ("a".to_owned(), before + 1));
    a.commit(&[commit(&x, 0, 1, None, Status::Running)])
        .expect("io")
        .remove(0)
        .expect("held again");
}

#[test]
fn the_history_key_is_the_backstop_and_a_failed_batch_writes_nothing() {
    let pg = Postgres::start().expect("PostgreSQL starts");
    let url = pg.create_db("backstop").expect("createdb");
    let a = node(&url, "a");
    let (x, y) = (id(1), id(2));
    a.commit(&[commit(&x, 0, 1, None, Status::Running)])
        .expect("io")
        .remove(0)
        .expect("applies");
    // A row the seq check cannot see (written behind the store's back).
    pg.psql(
        "backstop",
        &format!("INSERT INTO weft.history VALUES ('{x}', 1, '\\x7b7d')"),
    )
    .expect("psql");
    let err = a
        .commit(&[
            commit(&y, 0, 1, None, Status::Running),
            commit(&x, 1, 2, Some(Status::Running), Status::Running),
        ])
        .expect_err("the duplicate history row fails the batch");
    assert!(
        err.to_string().contains("23505"),
        "a unique violation: {err}"
    );
    assert!(
        a.instance(&y).expect("io").is_none(),
        "the whole batch rolled back"
    );
    assert_eq!(a.instance(&x).expect("io").expect("stored").seq, 1);
}

fn held(s: &PgStore) -> usize {
    s.ownership().held.len()
}

#[test]
fn nodes_share_the_partitions_fairly_as_they_join_leave_and_die() {
    let pg = Postgres::start().expect("PostgreSQL starts");
    let url = pg.create_db("share").expect("createdb");
    let a = node(&url, "a");
    assert_eq!(held(&a), 64);
    let b = node(&url, "b");
    assert_eq!(held(&b), 0, "none is free while a's leases are live");
    a.tick().expect("a round");
    assert_eq!(held(&a), 32, "a hands over what is above its share");
    b.tick().expect("a round");
    assert_eq!(held(&b), 32, "b takes what a handed over");

    let c = node(&url, "c");
    a.tick().expect("a round");
    b.tick().expect("a round");
    c.tick().expect("a round");
    assert_eq!((held(&a), held(&b), held(&c)), (22, 22, 20), "thirds");
    let mut all: Vec<u32> = [&a, &b, &c]
        .iter()
        .flat_map(|n| n.ownership().held.into_keys())
        .collect();
    all.sort();
    assert_eq!(all, (0..64).collect::<Vec<_>>(), "each partition held once");

    // c stops gracefully: its partitions are free at once.
    c.release().expect("releases");
    a.tick().expect("a round");
    b.tick().expect("a round");
    assert_eq!((held(&a), held(&b)), (32, 32));

    // b dies: it stops renewing; once its leases (and its liveness) have run
    // out, a takes everything.
    pg.psql(
        "share",
        "UPDATE weft.partitions SET expires = now() - interval '1 second' WHERE owner = 'b'; \
         UPDATE weft.nodes SET seen = now() - interval '1 hour' WHERE node = 'b'",
    )
    .expect("psql");
    a.tick().expect("a round");
    assert_eq!(held(&a), 64, "a takes over a dead node's partitions");
    let epochs = pg
        .psql(
            "share",
            "SELECT min(epoch) FROM weft.partitions WHERE owner = 'a'",
        )
        .expect("psql");
    assert!(epochs.parse::<i64>().expect("a number") >= 1);
}

#[test]
fn the_schema_is_created_checked_and_refused_when_newer() {
    use weft_store_postgres::schema;
    let pg = Postgres::start().expect("PostgreSQL starts");
    let url = pg.create_db("schema").expect("createdb");
    let refused = PgStore::connect(
        &url,
        Options {
            create: false,
            ..Options::default()
        },
    )
    .expect_err("no schema, and not told to create it");
    assert!(
        refused.to_string().contains("weft store migrate-schema"),
        "{refused}"
    );
    let made = PgStore::migrate_schema(&url, 16).expect("creates");
    assert_eq!(
        (made.from, made.to, made.partitions),
        (0, schema::VERSION, 16)
    );
    let again = PgStore::migrate_schema(&url, 64).expect("nothing to do");
    assert_eq!(
        (again.from, again.to, again.partitions),
        (schema::VERSION, schema::VERSION, 16)
    );
    assert_eq!(node(&url, "a").partitions(), 16);
    pg.psql(
        "schema",
        "INSERT INTO weft.schema_version (version) VALUES (99)",
    )
    .expect("psql");
    let newer = PgStore::connect(&url, Options::default()).expect_err("a newer schema");
    assert!(
        newer.to_string().contains("newer than this weft knows"),
        "{newer}"
    );
    let unchanged = PgStore::migrate_schema(&url, 64).expect_err("not downgraded");
    assert!(unchanged.to_string().contains("version 99"), "{unchanged}");
    let bad = PgStore::connect("postgres://weft@127.0.0.1:1/x", Options::default())
        .expect_err("nothing listens");
    assert!(bad.to_string().contains("127.0.0.1:1"), "{bad}");
}

#[test]
fn nodes_starting_together_on_an_empty_database_create_the_schema_once() {
    let pg = Postgres::start().expect("PostgreSQL starts");
    let url = pg.create_db("together").expect("createdb");
    let nodes: Vec<_> = (0..4)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || node(&url, &format!("n{i}")).partitions())
        })
        .collect();
    for n in nodes {
        assert_eq!(n.join().expect("no panic"), 64);
    }
    let versions = pg
        .psql("together", "SELECT count(*) FROM weft.schema_version")
        .expect("psql");
    assert_eq!(versions, "1");
}

#[test]
fn nine_nodes_on_64_partitions_leave_none_without_a_share() {
    let pg = Postgres::start().expect("PostgreSQL starts");
    let url = pg.create_db("nine").expect("createdb");
    let nodes: Vec<PgStore> = (0..9).map(|i| node(&url, &format!("n{i}"))).collect();
    // Rounds, as the keepers would run them, until nothing moves.
    let mut last = Vec::new();
    for _ in 0..10 {
        for n in &nodes {
            n.tick().expect("a round");
        }
        let now: Vec<usize> = nodes.iter().map(held).collect();
        if now == last {
            break;
        }
        last = now;
    }
    assert!(
        last.iter().all(|&h| (7..=8).contains(&h)),
        "every node holds 7 or 8: {last:?}"
    );
    let mut all: Vec<u32> = nodes
        .iter()
        .flat_map(|n| n.ownership().held.into_keys())
        .collect();
    all.sort();
    assert_eq!(all, (0..64).collect::<Vec<_>>(), "each partition held once");
}

#[test]
fn two_nodes_claiming_one_business_key_at_once_get_one_winner_and_a_conflict() {
    let pg = Postgres::start().expect("PostgreSQL starts");
    let url = pg.create_db("keys").expect("createdb");
    let a = std::sync::Arc::new(node(&url, "a"));
    let b = std::sync::Arc::new(node(&url, "b"));
    a.tick().expect("a round");
    b.tick().expect("a round");
    assert_eq!((held(&a), held(&b)), (32, 32));
    let mut ids = (1_000..5_000).map(id);
    for round in 0..20 {
        let key = format!("order-{round}");
        let mut mine = |n: &PgStore| {
            let x = ids
                .find(|i| n.ownership().holds(n.partition(i)))
                .expect("an id");
            let mut c = commit(&x, 0, 1, None, Status::Running);
            c.instance.key = Some(key.clone());
            c
        };
        let (ca, cb) = (mine(&a), mine(&b));
        let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
        let race = |n: std::sync::Arc<PgStore>, c: weft_store::Commit| {
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.wait();
                n.commit(&[c]).expect("no batch fails").remove(0)
            })
        };
        let (ta, tb) = (race(a.clone(), ca.clone()), race(b.clone(), cb.clone()));
        let outcomes = [ta.join().expect("joins"), tb.join().expect("joins")];
        let won: Vec<_> = outcomes.iter().filter(|o| o.is_ok()).collect();
        assert_eq!(won.len(), 1, "round {round}: {outcomes:?}");
        let (winner, loser) = if outcomes[0].is_ok() {
            (&ca, &outcomes[1])
        } else {
            (&cb, &outcomes[0])
        };
        match loser {
            Err(Conflict::KeyTaken { instance, .. }) => {
                assert_eq!(instance, &winner.instance.id, "round {round}");
            }
            other => panic!("round {round}: expected KeyTaken, got {other:?}"),
        }
    }
}

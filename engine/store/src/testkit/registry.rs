//! The plugin registry's part of the conformance suite.

use weft_model::Millis;

use super::Harness;

fn entry(name: &str, bytes: &[u8]) -> crate::PluginEntry {
    // The store keys bytes by the digest it is given; it does not hash.
    crate::PluginEntry {
        name: name.to_owned(),
        version: 0,
        sha256: format!("digest-of-{}", String::from_utf8_lossy(bytes)),
        size: bytes.len() as u64,
        added_at: Millis(10),
        manifest: weft_model::Manifest {
            name: name.to_owned(),
            version: "1.0.0".to_owned(),
            actions: vec![],
        },
    }
}

pub(super) fn the_registry_versions_plugins_by_name_and_digest(h: &mut dyn Harness) {
    let s = h.store();
    assert!(s.registry().expect("io").is_empty());
    let (one, new) = s
        .register_plugin(&entry("payments", b"v1"), b"v1")
        .expect("io");
    assert_eq!((one.version, new), (1, true));
    // The same bytes again: nothing new.
    let again = s
        .register_plugin(&entry("payments", b"v1"), b"v1")
        .expect("io");
    assert_eq!(again, (one.clone(), false));
    let (two, _) = s
        .register_plugin(&entry("payments", b"v2"), b"v2")
        .expect("io");
    assert_eq!(two.version, 2);
    // Back to the first bytes: a new version (the newest differs).
    let (three, _) = s
        .register_plugin(&entry("payments", b"v1"), b"v1")
        .expect("io");
    assert_eq!(
        (three.version, three.sha256.clone()),
        (3, one.sha256.clone())
    );
    s.register_plugin(&entry("inventory", b"inv"), b"inv")
        .expect("io");
    drop(s);
    h.reopen();
    let s = h.store();
    let listed: Vec<(String, u32)> = s
        .registry()
        .expect("io")
        .into_iter()
        .map(|e| (e.name, e.version))
        .collect();
    assert_eq!(
        listed,
        [
            ("inventory".to_owned(), 1),
            ("payments".to_owned(), 1),
            ("payments".to_owned(), 2),
            ("payments".to_owned(), 3),
        ]
    );
    assert_eq!(
        s.plugin(&two.sha256).expect("io").as_deref(),
        Some(&b"v2"[..])
    );
    let (next, _) = s
        .register_plugin(&entry("payments", b"v4"), b"v4")
        .expect("io");
    assert_eq!(next.version, 4, "the newest version survives a reopen");
}

pub(super) fn swaps_write_revisions_log_and_component_at_once(h: &mut dyn Harness) {
    use crate::{SwapKind, SwapRecord, SwapWrite, Target};
    let s = h.store();
    let deploy = super::deploy_of(1, serde_json::json!({"v": 1}), serde_json::json!({}));
    s.deploy(&deploy).expect("io").expect("deploys");
    let mut next = s.deployment("order", 1).expect("io").expect("deployed");
    next.revision = 2;
    next.plugins
        .insert("payments".into(), "digest-of-v2".into());
    let record = SwapRecord {
        seq: 0,
        at: Millis(20),
        target: Target::Plugin("payments".into()),
        kind: SwapKind::Swap,
        sha256: "digest-of-v2".into(),
        plugin: None,
        changes: vec![crate::SwapChange {
            process: "order".into(),
            version: 1,
            revision: 2,
            from: "ab12".into(),
        }],
        reason: None,
        settles: None,
        canary: None,
    };
    let write = SwapWrite {
        record: record.clone(),
        deployments: vec![next.clone()],
        register: Some((entry("payments", b"v2"), std::sync::Arc::from(&b"v2"[..]))),
    };
    let done = s.swap(&write).expect("io").expect("swaps");
    assert_eq!(done.seq, 1);
    assert_eq!(done.plugin.as_deref(), Some("payments@1"));
    // Revision 2 again, with other bytes: it exists, so the write is stale
    // and writes nothing (no second log record, no registry entry).
    let again = SwapWrite {
        register: Some((entry("payments", b"v9"), std::sync::Arc::from(&b"v9"[..]))),
        ..write.clone()
    };
    assert_eq!(
        s.swap(&again).expect("io"),
        Err(crate::Conflict::Stale {
            process: "order".into(),
            version: 1
        })
    );
    // A revision that skips one is stale too.
    let mut skipping = next.clone();
    skipping.revision = 4;
    let skip = SwapWrite {
        deployments: vec![skipping],
        register: None,
        ..write.clone()
    };
    assert!(matches!(
        s.swap(&skip).expect("io"),
        Err(crate::Conflict::Stale { .. })
    ));
    let mut third = next.clone();
    third.revision = 3;
    third.plugins.insert("payments".into(), "ab12".into());
    let back = SwapWrite {
        record: SwapRecord {
            kind: SwapKind::Rollback,
            sha256: "ab12".into(),
            settles: Some(1),
            ..record
        },
        deployments: vec![third.clone()],
        register: None,
    };
    assert_eq!(s.swap(&back).expect("io").expect("swaps").seq, 2);
    drop(s);
    h.reopen();
    let s = h.store();
    let log = s.swaps().expect("io");
    assert_eq!(
        log.iter().map(|r| (r.seq, r.kind)).collect::<Vec<_>>(),
        vec![(1, SwapKind::Swap), (2, SwapKind::Rollback)]
    );
    assert_eq!(log[0], done);
    assert_eq!(s.deployment("order", 1).expect("io"), Some(third));
    assert_eq!(
        s.deployment_revision("order", 1, 2).expect("io"),
        Some(next)
    );
    assert_eq!(
        s.plugin("digest-of-v2").expect("io").as_deref(),
        Some(&b"v2"[..])
    );
    assert_eq!(s.plugin("digest-of-v9").expect("io"), None);
    let reg = s.registry().expect("io");
    assert_eq!(reg.len(), 1);
    assert_eq!(reg[0].sha256, "digest-of-v2");
}

/// Deploys and swaps of one process version racing: each takes a revision
/// of its own, none waits forever, none overwrites another.
pub(super) fn racing_deploys_and_swaps_each_take_their_own_revision(h: &mut dyn Harness) {
    use crate::{SwapKind, SwapRecord, SwapWrite, Target};
    const EACH: usize = 60;
    let s = h.store();
    let first = super::deploy_of(1, serde_json::json!({"v": 1}), serde_json::json!({"n": -1}));
    s.deploy(&first).expect("io").expect("deploys");
    let deployer = {
        let s = s.clone();
        std::thread::spawn(move || {
            for i in 0..EACH {
                let d =
                    super::deploy_of(1, serde_json::json!({"v": 1}), serde_json::json!({"n": i}));
                let done = s.deploy(&d).expect("io").expect("deploys");
                assert!(done.new_revision);
            }
        })
    };
    for i in 0..EACH {
        loop {
            let mut next = s.deployment("order", 1).expect("io").expect("deployed");
            next.revision += 1;
            next.plugins.insert("payments".into(), format!("sha-{i}"));
            let write = SwapWrite {
                record: SwapRecord {
                    seq: 0,
                    at: Millis(30),
                    target: Target::Plugin("payments".into()),
                    kind: SwapKind::Swap,
                    sha256: format!("sha-{i}"),
                    plugin: None,
                    changes: vec![],
                    reason: None,
                    settles: None,
                    canary: None,
                },
                deployments: vec![next],
                register: None,
            };
            match s.swap(&write).expect("io") {
                Ok(_) => break,
                Err(crate::Conflict::Stale { .. }) => continue,
                Err(other) => panic!("{other}"),
            }
        }
    }
    deployer.join().expect("the deploys finish");
    let newest = s.deployment("order", 1).expect("io").expect("deployed");
    assert_eq!(newest.revision as usize, 1 + 2 * EACH);
    let swapped = (1..=newest.revision)
        .filter(|r| {
            s.deployment_revision("order", 1, *r)
                .expect("io")
                .is_some_and(|d| d.plugins["payments"].starts_with("sha-"))
        })
        .count();
    assert_eq!(swapped, EACH, "every swap is a revision of its own");
    assert_eq!(s.swaps().expect("io").len(), EACH);
}

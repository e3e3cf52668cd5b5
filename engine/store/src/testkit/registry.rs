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
    // The same write again: revision 2 exists, so it is stale and writes
    // nothing (no second log record, no registry change).
    assert_eq!(
        s.swap(&write).expect("io"),
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
    let reg = s.registry().expect("io");
    assert_eq!(reg.len(), 1);
    assert_eq!(reg[0].sha256, "digest-of-v2");
}

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

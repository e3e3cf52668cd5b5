//! Branch slots and instance data, kept apart from the snapshot: the
//! conformance suite's part on them.

use serde_json::json;
use weft_model::{Fan, Instance, Millis, Slot, Status};

use super::{Harness, all_ok, commit, id, instance, record};
use crate::Commit;

pub(super) fn slot(name: &str) -> Slot {
    Slot {
        name: name.into(),
        input: json!({ "item": name }),
        inst: None,
        outcome: None,
    }
}

/// `inst` at `seq` with its fan's changes taken into the commit, as the
/// engine writes it.
fn fan_commit(inst: &mut Instance, from: u64, closed: &[&str]) -> Commit {
    let to = inst.seq;
    let branches = inst
        .fan
        .as_mut()
        .map(|f| f.take_changes())
        .unwrap_or_default();
    let mut c = Commit::new(inst.clone(), (from > 0).then_some(Status::Running));
    c.records = (from..to).map(record).collect();
    c.branches = branches;
    c.closed_fans = closed.iter().map(|k| (*k).to_owned()).collect();
    c
}

pub(super) fn branches_are_kept_apart_and_written_when_changed(h: &mut dyn Harness) {
    let a = id(40);
    let key = format!("{a}/each/1");
    let mut inst = instance(&a, 1, Status::Running);
    inst.fan = Some(Box::new(Fan::new(
        key.clone(),
        Millis(1),
        vec![slot("0"), slot("1"), slot("2")],
    )));
    all_ok(
        h.store()
            .commit(&[fan_commit(&mut inst, 0, &[])])
            .expect("io"),
    );
    h.reopen();
    assert_eq!(h.store().instance(&a).expect("io").as_ref(), Some(&inst));

    // Branch 0 starts: only its slot is written.
    let fan = inst.fan.as_mut().expect("fan");
    fan.mark_started();
    fan.slot_mut(0).expect("slot 0").inst = Some(instance(&id(41), 0, Status::Running));
    inst.seq = 2;
    let c = fan_commit(&mut inst, 1, &[]);
    assert_eq!(c.branches.len(), 1, "one slot changed");
    all_ok(h.store().commit(&[c]).expect("io"));
    h.reopen();
    let back = h.store().instance(&a).expect("io").expect("stored");
    assert_eq!(back, inst);
    let fan = back.fan.as_ref().expect("fan");
    assert_eq!((fan.started(), fan.running().count()), (1, 1));

    // A slot changed but not listed is not written: the commit carries
    // exactly what a change touched.
    let mut unlisted = inst.clone();
    unlisted
        .fan
        .as_mut()
        .expect("fan")
        .slot_mut(2)
        .expect("slot 2")
        .input = json!("changed");
    unlisted.seq = 3;
    let mut c = commit(&a, 2, 3, Some(Status::Running), Status::Running);
    c.instance = unlisted;
    all_ok(h.store().commit(&[c]).expect("io"));
    let back = h.store().instance(&a).expect("io").expect("stored");
    let slot2 = back.fan.as_ref().and_then(|f| f.slot(2)).expect("slot 2");
    assert_eq!(slot2.input, json!({ "item": "2" }));

    // The fan closes; a fan of another visit opens and closes within one
    // batch: none of the slots of either outlive them, and a later fan under
    // the same key starts clean.
    inst.fan = None;
    inst.seq = 4;
    let close = fan_commit(&mut inst, 3, &[key.as_str()]);
    let key2 = format!("{a}/each/2");
    let three = vec![slot("0"), slot("1"), slot("2")];
    inst.fan = Some(Box::new(Fan::new(key2.clone(), Millis(4), three)));
    inst.seq = 5;
    let open = fan_commit(&mut inst, 4, &[]);
    inst.fan = None;
    inst.seq = 6;
    let close2 = fan_commit(&mut inst, 5, &[key2.as_str()]);
    all_ok(h.store().commit(&[close, open, close2]).expect("io"));
    h.reopen();
    assert_eq!(h.store().instance(&a).expect("io").as_ref(), Some(&inst));
    for (k, seq) in [(&key, 7), (&key2, 8)] {
        inst.fan = Some(Box::new(Fan::new(k.clone(), Millis(5), vec![slot("x")])));
        inst.seq = seq;
        all_ok(
            h.store()
                .commit(&[fan_commit(&mut inst, seq - 1, &[])])
                .expect("io"),
        );
        h.reopen();
        let back = h.store().instance(&a).expect("io").expect("stored");
        assert_eq!(back.fan.as_ref().map(|f| f.len()), Some(1), "{k}: {back:?}");
        assert_eq!(back, inst);
        inst.fan = None;
        inst.seq = seq;
    }
}

pub(super) fn data_is_written_when_it_changed(h: &mut dyn Harness) {
    let a = id(50);
    let mut c = commit(&a, 0, 1, None, Status::Running);
    c.instance.data = json!({ "items": [1, 2, 3] }).into();
    all_ok(h.store().commit(&[c]).expect("io"));
    // The engine compared: the data is the stored data, so it may be skipped.
    let mut same = commit(&a, 1, 2, Some(Status::Running), Status::Running);
    same.instance.data = json!({ "items": [1, 2, 3] }).into();
    same.data_unchanged = true;
    all_ok(h.store().commit(&[same.clone()]).expect("io"));
    h.reopen();
    assert_eq!(h.store().instance(&a).expect("io"), Some(same.instance));
    let mut changed = commit(&a, 2, 3, Some(Status::Running), Status::Waiting);
    changed.instance.data = json!({ "items": [] }).into();
    all_ok(h.store().commit(&[changed.clone()]).expect("io"));
    h.reopen();
    assert_eq!(h.store().instance(&a).expect("io"), Some(changed.instance));
}

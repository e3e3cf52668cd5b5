#![allow(clippy::unwrap_used)]

//! A map's branch event costs in proportion to the branches running, not to
//! all of them: it touches its own slot and the slot it starts, whatever
//! the number of items, and the fan's indexes survive a store round trip.

use serde_json::{Value, json};
use weft_model::interpret::{self, Applied};
use weft_model::{Command, Event, Instance, InstanceId, Millis, NoDefaults, Process, Status};

const MAP: &str = r#"
process: each
version: 1
start: all
states:
  all:
    type: map
    items: .items
    max_concurrency: 4
    output: .results
    branch:
      start: work
      states:
        work: { action: work, input: .item, output: .out, on: { done: ok } }
        ok: { type: succeed, output: .out }
    on: { done: end }
  end: { type: succeed, output: .results }
"#;

fn invokes(a: &Applied) -> Vec<String> {
    a.commands
        .iter()
        .filter_map(|c| match c {
            Command::Invoke(i) => Some(i.key.clone()),
            _ => None,
        })
        .collect()
}

fn slot_changes(inst: &mut Instance) -> Vec<usize> {
    inst.fan
        .as_mut()
        .map(|f| f.take_changes().into_iter().map(|(i, _)| i).collect())
        .unwrap_or_default()
}

#[test]
fn each_branch_event_touches_at_most_two_slots_at_any_size() {
    let p: Process = weft_model::parse_process("each.yaml", MAP).unwrap_or_else(|d| panic!("{d}"));
    let items: usize = 1_000;
    let now = Millis(1_000);
    let started = interpret::start(
        &p,
        &NoDefaults,
        InstanceId::new(now, 1),
        json!({ "items": (0..items).collect::<Vec<usize>>() }),
        now,
    );
    let mut queue = invokes(&started);
    let mut inst = started.instance;
    assert_eq!(
        slot_changes(&mut inst).len(),
        items,
        "entering writes every slot once"
    );
    assert_eq!(queue.len(), 4, "max_concurrency branches start");
    let fan_key = inst.fan.as_ref().map(|f| f.key.clone()).unwrap_or_default();

    let mut done = 0;
    while let Some(key) = queue.first().cloned() {
        queue.remove(0);
        let item: u64 = key
            .strip_prefix(&format!("{fan_key}/"))
            .and_then(|rest| rest.split('/').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{key} is not a branch step"));
        let event = Event::StepDone {
            key,
            output: json!(item * 10),
        };
        let mut applied = interpret::apply(&p, &NoDefaults, &inst, &event, now)
            .unwrap_or_else(|r| panic!("rejected: {r}"));
        done += 1;
        queue.extend(invokes(&applied));
        if done < items {
            let touched = slot_changes(&mut applied.instance);
            assert!(
                touched.len() <= 2,
                "event {done} touched slots {touched:?}: the ended one and the one it starts"
            );
        }
        if done < items && done % 97 == 0 {
            // What a store reads back after a restart drives on the same.
            let stored: Instance =
                serde_json::from_value(serde_json::to_value(&applied.instance).unwrap()).unwrap();
            assert_eq!(stored, applied.instance);
            let fan = stored.fan.as_ref().unwrap();
            let live = applied.instance.fan.as_ref().unwrap();
            assert_eq!(fan.started(), live.started());
            assert_eq!(fan.running().map(|(i, _)| i).collect::<Vec<_>>(), {
                let mut r: Vec<usize> = live.running().map(|(i, _)| i).collect();
                r.sort_unstable();
                r
            });
        }
        if done == items {
            assert_eq!(applied.closed_fans, vec![fan_key.clone()]);
        } else {
            assert!(applied.closed_fans.is_empty());
        }
        inst = applied.instance;
    }
    assert_eq!(done, items);
    assert_eq!(inst.status, Status::Succeeded);
    let expected: Vec<Value> = (0..items as u64).map(|i| json!(i * 10)).collect();
    assert_eq!(inst.output, Some(Value::Array(expected)));
}

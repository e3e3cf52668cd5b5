//! `weft validate`: every problem with a process and its bindings, or "valid".

use crate::args::Definition;
use crate::{exit, load, render};

pub async fn validate(def: &Definition) -> anyhow::Result<u8> {
    let runtime = super::runtime(None)?;
    match load::definition(&runtime, &def.process, &def.bindings).await {
        Ok(loaded) => {
            let p = &loaded.process;
            render::say(format_args!(
                "{}: process '{}' v{} is valid: {} states, {} actions bound to {} plugins",
                def.process.display(),
                p.name,
                p.version,
                p.states.len(),
                p.actions().len(),
                loaded.plugins.len()
            ));
            Ok(exit::OK)
        }
        Err(diags) => {
            for d in diags.iter() {
                eprintln!("{d}");
            }
            let n = diags.len();
            eprintln!("{n} problem{} found", if n == 1 { "" } else { "s" });
            Ok(exit::ERROR)
        }
    }
}

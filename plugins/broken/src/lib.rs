//! A component that cannot describe itself: `describe` panics, so the
//! engine sees a trap before it would ever route work to it. Tests use it
//! to show such a component is refused (by `weft plugin add`, a deploy, a
//! swap) and the component live before keeps serving.

use weft_plugin_sdk::{Adapter, Call, Failure, Manifest, Reply};

struct Broken;

impl Adapter for Broken {
    fn manifest() -> Manifest {
        panic!("this adapter's describe is broken on purpose")
    }

    fn invoke(call: Call) -> Result<Reply, Failure> {
        Ok(Reply::done(call.input))
    }
}

weft_plugin_sdk::adapter!(Broken);

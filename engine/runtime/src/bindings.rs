//! The host side of `wit/plugin.wit`, generated once for the crate. Host
//! imports are `trappable` so a host failure stays apart from the WIT values a
//! guest sees.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "adapter",
    imports: { default: trappable },
    exports: { default: async },
});

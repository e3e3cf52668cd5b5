// Loaded with `node --import` before jco runs. jco 1.35 reads the WIT files
// through the WASI shim it runs wasm-tools on, and that shim (preview2-shim
// 0.26) starts with no preopened directories, so `jco componentize` fails with
// "failed to get path metadata: No such file or directory". Giving the shim
// the host's root, as older shims did by default, lets it read them. This
// affects the build tool only, never the component it writes.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const here = createRequire(import.meta.url);
const transpile = createRequire(here.resolve('@bytecodealliance/jco-transpile'));
const shim = await import(pathToFileURL(transpile.resolve('@bytecodealliance/preview2-shim/filesystem')));
shim._setPreopens({ '/': '/' });

// Loaded with `node --import` before jco runs (see build.mjs). jco 1.35 reads
// the WIT files through the WASI shim it runs wasm-tools on, and that shim
// starts with no preopened directories, so `jco componentize` fails with
// "failed to get path metadata: No such file or directory". Giving it the
// host's root lets it read them. This affects the build tool only, never the
// component it writes.
//
// The shim is found from the jco being run (the script node was given), so
// this works for the jco in ./node_modules and for one named by $JCO.
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const jco = createRequire(realpathSync(process.argv[1]));
const transpile = createRequire(jco.resolve('@bytecodealliance/jco-transpile'));
const shim = await import(pathToFileURL(transpile.resolve('@bytecodealliance/preview2-shim/filesystem')));
shim._setPreopens({ '/': '/' });

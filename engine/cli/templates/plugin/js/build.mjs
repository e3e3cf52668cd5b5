// `npm run build`: {{name}}.js into the component {{name}}.wasm, with jco
// componentize (StarlingMonkey). Every optional WASI feature is disabled, so
// the component imports nothing but weft:plugin/host.
//
// Uses the jco in ./node_modules (`npm ci`), or the one $JCO names (its
// node_modules/.bin/jco or dist/jco.js), so several projects can share one.
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const jco = process.env.JCO || join(here, 'node_modules', '.bin', 'jco');
if (!existsSync(jco)) {
  console.error(`build: no jco at ${jco}: run \`npm ci\` first, or set JCO to a jco 1.35 binary`);
  process.exit(1);
}
const source = join(here, '{{name}}.js');
// componentize-js reports a syntax error without its place; node names it.
const checked = spawnSync(process.execPath, ['--check', source], { stdio: 'inherit' });
if (checked.status !== 0) {
  process.exit(1);
}
const out = join(here, '{{name}}.wasm');
const partial = `${out}.partial`;
const started = Date.now();
const jcoArgs = ['componentize', source, '--wit', join(here, 'wit'),
  '--world-name', 'adapter', '--disable', 'all', '--out', partial];
const built = spawnSync(process.execPath,
  ['--import', pathToFileURL(join(here, 'preopens.mjs')).href, realpathSync(jco), ...jcoArgs],
  { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
if (built.error || built.status !== 0) {
  rmSync(partial, { force: true });
  process.stderr.write(built.stdout ?? '');
  console.error(`build: jco componentize failed (${built.error ?? `exit ${built.status}`})`);
  process.exit(1);
}
// Written aside and moved into place: a failed build leaves the last good one.
renameSync(partial, out);
const mib = (statSync(out).size / 1048576).toFixed(1);
console.log(`built {{name}}.wasm (${mib} MiB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);

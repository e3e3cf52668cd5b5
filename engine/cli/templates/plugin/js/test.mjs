// `npm test` (after the build): calls {{name}}.wasm through `weft plugin call`,
// as the engine would run it, and checks each outcome. `weft` is $WEFT, or
// the one on PATH.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const weft = process.env.WEFT || 'weft';
const wasm = join(here, '{{name}}.wasm');

const cases = [
  {
    what: 'a name is greeted',
    args: ['--input', '{"name":"ada"}'],
    code: 0,
    says: 'done: {"greeting":"hello, ada"}',
  },
  {
    what: 'a blocked name fails with the typed error',
    args: ['--input', '{"name":"mallory"}', '--config', '{"blocked":["mallory"]}'],
    code: 1,
    says: 'failed: blocked: ',
  },
  {
    what: 'a flaky attempt fails retryably',
    args: ['--input', '{"name":"ada"}', '--config', '{"flaky_attempts":1}'],
    code: 1,
    says: 'failed: retryable: ',
  },
];

let failed = 0;
for (const c of cases) {
  const run = spawnSync(weft, ['plugin', 'call', wasm, 'greet', ...c.args], { encoding: 'utf8' });
  if (run.error) {
    console.error(`cannot run ${weft}: ${run.error.message} (set WEFT to the weft binary)`);
    process.exit(2);
  }
  const out = run.stdout.trim();
  if (run.status === c.code && out.startsWith(c.says)) {
    console.log(`ok - ${c.what}`);
  } else {
    failed += 1;
    console.log(`not ok - ${c.what}: expected exit ${c.code} and "${c.says}...", got exit ${run.status}: ${out}`);
    if (run.stderr.trim()) {
      console.log(run.stderr.trim());
    }
  }
}
console.log(failed ? `${failed} of ${cases.length} failed` : `all ${cases.length} passed`);
process.exit(failed ? 1 : 0);

#!/usr/bin/env bash
# The JSON Schemas in schema/ checked with an independent validator (the
# reference Python implementation, `jsonschema`, pinned, in a venv under
# target/), not with weft's own parser. Files are read with ruamel.yaml, a
# YAML 1.2 reader like weft's and editors' (PyYAML reads YAML 1.1, where
# `on:` is the boolean true). Every example's process and
# bindings file, and the process fixtures of the end-to-end suite, must
# validate; files with an unknown field, a wrong type or an unknown state
# type must not.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/schema-venv
if ! "$venv/bin/python" -c 'import jsonschema, ruamel.yaml; assert jsonschema.__version__ == "4.26.0"' 2>/dev/null; then
    echo "installing jsonschema 4.26.0 and ruamel.yaml 0.19.1 into $venv (once)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "jsonschema==4.26.0" "ruamel.yaml==0.19.1"
fi

"$venv/bin/python" - <<'PY'
import glob, json, sys
import jsonschema
from ruamel.yaml import YAML

yaml = YAML(typ="safe", pure=True)

def load(path):
    with open(path) as f:
        return json.load(f) if path.endswith(".json") else yaml.load(f)

schemas = {k: json.load(open(f"schema/{k}.schema.json")) for k in ("process", "bindings")}
for s in schemas.values():
    jsonschema.Draft202012Validator.check_schema(s)
validators = {k: jsonschema.Draft202012Validator(s) for k, s in schemas.items()}

good = [(f, "process") for f in sorted(glob.glob("examples/*/process.yaml"))]
good += [(f, "bindings") for f in sorted(glob.glob("examples/*/bindings.yaml"))]
good += [(f, "process") for f in sorted(glob.glob("tests/fixtures/*.yaml"))]
bad = [
    ("engine/model/tests/invalid/unknown-field.yaml", "process"),
    ("engine/model/tests/invalid/unknown-top-field.yaml", "process"),
    ("engine/model/tests/invalid/wrong-type.yaml", "process"),
    ("engine/model/tests/invalid/unknown-state-type.yaml", "process"),
]
failed = 0
for path, kind in good:
    errors = sorted(validators[kind].iter_errors(load(path)), key=lambda e: list(e.path))
    for e in errors:
        failed += 1
        print(f"{path}: {'/'.join(map(str, e.path))}: {e.message}")
    if path.startswith("examples/"):
        first = open(path).readline()
        if f"$schema=../../schema/{kind}.schema.json" not in first:
            failed += 1
            print(f"{path}: the first line does not point editors at schema/{kind}.schema.json")
for path, kind in bad:
    if validators[kind].is_valid(load(path)):
        failed += 1
        print(f"{path}: the {kind} schema accepts it, but weft refuses it")
if failed:
    sys.exit(f"{failed} schema problem(s)")
print(f"schemas: {len(good)} files validate, {len(bad)} invalid ones are refused")
PY

#!/bin/sh
# Build the wheel, install it into a scratch venv (light dependencies only) and check that the
# built-in profiles and the converters package are found from the installed wheel, not the source tree.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$ROOT/.venv/bin/python" -m build --wheel --outdir "$TMP/dist" "$ROOT" >/dev/null
python3 -m venv "$TMP/venv"
"$TMP/venv/bin/pip" install --quiet typer==0.29.2 rich pydantic==2.14.3 tomli-w==1.2.0 numpy
"$TMP/venv/bin/pip" install --quiet --no-deps "$TMP"/dist/edgebuild-*.whl
cd "$TMP"
"$TMP/venv/bin/edgebuild" targets
"$TMP/venv/bin/python" -c "import importlib.util as u, edgebuild; assert u.find_spec('edgebuild.converters.ptq'), 'converters missing'; print('converters found in', edgebuild.__file__)"
"$TMP/venv/bin/python" -c "
import importlib.util as u, importlib.resources as r
for name in ('edgebuild.stages.steps', 'edgebuild.runtime.tflm', 'edgebuild.firmware.stage', 'edgebuild.device.ssh',
             'edgebuild.converters.pruning.surgery', 'edgebuild.api.building', 'edgebuild.compare.thresholds',
             'edgebuild.report_html.page', 'edgebuild.quant_debug.analysis', 'edgebuild.firmware.outputs'):
    assert u.find_spec(name), name + ' missing from the wheel'
assert r.files('edgebuild.targets').joinpath('boards/mps2-an386.toml').is_file(), 'board profile missing'
assert r.files('edgebuild.firmware').joinpath('templates/edgebuild_runner.cc').is_file(), 'firmware template missing'
print('every package and data file is in the wheel')"

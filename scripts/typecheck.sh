#!/bin/sh
# mypy over the package as it is installed: `edgebuild` from src/edgebuild plus `edgebuild.converters` from
# converters/ and `edgebuild.targets` from targets/ (the wheel's layout, [tool.setuptools.package-dir]).
# mypy cannot follow setuptools' editable-install finder, so this lays that package out with symlinks in
# build/typecheck, checks it with the [tool.mypy] settings in pyproject.toml, and prints paths as they are
# in the checkout.
set -eu
cd "$(dirname "$0")/.."
MYPY=${MYPY:-.venv/bin/mypy}
tree=build/typecheck
mkdir -p "$tree/edgebuild"
find "$tree" -type l ! -exec test -e {} \; -delete  # links to files that are gone
for entry in src/edgebuild/*; do
  case "$entry" in *__pycache__) continue ;; esac
  ln -sfn "$PWD/$entry" "$tree/edgebuild/"
done
ln -sfn "$PWD/converters" "$tree/edgebuild/converters"
ln -sfn "$PWD/targets" "$tree/edgebuild/targets"
status=0
MYPYPATH="$tree" "$MYPY" -p edgebuild >"$tree.out" 2>&1 || status=$?
sed -e "s#^$tree/edgebuild/converters/#converters/#" -e "s#^$tree/edgebuild/targets/#targets/#" \
    -e "s#^$tree/edgebuild/#src/edgebuild/#" "$tree.out"
exit "$status"

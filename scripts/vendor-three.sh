#!/usr/bin/env bash
# Re-create the web UI's vendored three.js (src/depthlite/server/static/vendor/three/) from the
# npm registry, so the page needs no CDN. Usage: scripts/vendor-three.sh [VERSION]
#
# `npm pack` checks the tarball against the registry's integrity hash; the script then copies
# only the modules the 3D view imports (and what they import) plus the licence, and writes
# VERSION with the version, licence, tarball integrity and a sha256 of every file copied.
set -euo pipefail

VERSION="${1:-0.187.0}" # the vendored version: bump it here (and re-run) to upgrade
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/src/depthlite/server/static/vendor/three"
# source path in the npm package -> path under $DEST (the import map in index.html uses these;
# no "build/" folder here: the repository's .gitignore ignores every folder of that name)
FILES=(
  "build/three.module.js:three.module.js"
  "build/three.core.js:three.core.js"
  "examples/jsm/controls/OrbitControls.js:addons/controls/OrbitControls.js"
  "examples/jsm/loaders/PLYLoader.js:addons/loaders/PLYLoader.js"
  "LICENSE:LICENSE"
)

command -v npm >/dev/null || { echo "vendor-three.sh: needs npm (apt-get install npm)" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent --json "three@$VERSION" >pack.json)
tarball="$work/$(node -p "require('$work/pack.json')[0].filename")"
integrity="$(node -p "require('$work/pack.json')[0].integrity")"
tar -xzf "$tarball" -C "$work"
licence="$(node -p "require('$work/package/package.json').license")"
got="$(node -p "require('$work/package/package.json').version")"
[ "$got" = "$VERSION" ] || { echo "vendor-three.sh: npm gave three $got, not $VERSION" >&2; exit 1; }

rm -rf "$DEST"
for pair in "${FILES[@]}"; do
  src="${pair%%:*}" dst="${pair#*:}"
  [ -f "$work/package/$src" ] || { echo "vendor-three.sh: three@$VERSION has no $src" >&2; exit 1; }
  install -D -m 0644 "$work/package/$src" "$DEST/$dst"
done

{
  echo "three.js $VERSION (npm package \"three\", https://www.npmjs.com/package/three)"
  echo "Licence: $licence (see LICENSE in this folder)"
  echo "Tarball: https://registry.npmjs.org/three/-/three-$VERSION.tgz"
  echo "Integrity: $integrity"
  echo "Re-create with: scripts/vendor-three.sh $VERSION"
  echo
  echo "sha256 of the vendored files:"
  (cd "$DEST" && find . -type f ! -name VERSION | sort | sed 's|^\./||' | xargs sha256sum)
} >"$DEST/VERSION"
echo "vendored three.js $VERSION ($licence) into ${DEST#"$ROOT"/}"

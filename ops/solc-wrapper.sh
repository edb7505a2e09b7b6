#!/usr/bin/env bash
# Makes solcjs (npm `solc`) look like the native solc that forge drives: forge only calls
# `solc --version` and `solc --standard-json` (input on stdin, output on stdout).
set -euo pipefail
here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
tools=${VERINFER_TOOLS:-$(cd "$here/.." && pwd)}
solc_js="$tools/npm/node_modules/solc"
# forge adds --allow-paths/--base-path/--include-path before --standard-json: pick the mode from
# any argument (imports resolve against the working directory, which forge sets to the root).
mode=""
for a in "$@"; do
  case "$a" in --version|--standard-json) mode=$a ;; esac
done
case "$mode" in
  --version)
    ver=$(node -e "console.log(require('$solc_js/package.json').version)")
    long=$(node -e "console.log(require('$solc_js').version())")
    echo "solc, the solidity compiler commandline interface"
    echo "Version: $long"
    ;;
  --standard-json)
    node -e "
      const solc = require('$solc_js');
      let input = '';
      process.stdin.on('data', d => input += d);
      process.stdin.on('end', () => {
        const fs = require('fs');
        const path = require('path');
        const base = process.cwd();
        const findImports = p => {
          for (const cand of [p, path.join(base, p)]) {
            try { return { contents: fs.readFileSync(cand, 'utf8') }; } catch (e) {}
          }
          return { error: 'File not found: ' + p };
        };
        process.stdout.write(solc.compile(input, { import: findImports }));
      });
    "
    ;;
  *)
    echo "solc wrapper: only --version and --standard-json are supported (got: $*)" >&2
    exit 2
    ;;
esac

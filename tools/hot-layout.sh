#!/usr/bin/env bash
# Regenerates link/hot-text.ld, the order in which the linker places the code a cold start
# runs (docs/performance.md, "Cold start"). Run it (`make hot-layout`) after a dependency or
# toolchain update: the file names functions by their symbols, which such an update changes,
# and `linking::the_release_bootstraps_startup_code_is_laid_out_together` fails until then.
#
# Both release builds users and CI make are profiled: `cargo build --release` and `cargo
# lambda build --release` (what `sam build` and `make bench` run; cargo gives its symbols
# other names). Each is built with symbols, runs one cold start and one invocation of one
# record with the ledger and outcomes off and on under callgrind (driven by voice-bench as
# under Lambda), and what it executed is listed. About ten minutes on 2 cores. The voice fake
# speaks plain HTTP: the TLS handshake's code, which a deployed first invocation runs, is
# not profiled and stays where it was.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in nm python3; do
  command -v "$tool" >/dev/null || { echo "hot-layout needs $tool" >&2; exit 1; }
done
command -v valgrind >/dev/null || {
  echo "installing valgrind from Debian's packages (root)" >&2
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
}
: "${CARGO_LAMBDA:=cargo-lambda}"
work="$PWD/target/hot-layout"
rm -rf "$work"
mkdir -p "$work"

cargo build --release -p voice-bench
VOICE_DISPATCH_SYMBOLS=1 cargo build --release --bin bootstrap
cp target/release/bootstrap "$work/cargo"
VOICE_DISPATCH_SYMBOLS=1 "$CARGO_LAMBDA" lambda build --release --bin bootstrap
cp target/lambda/bootstrap/bootstrap "$work/lambda"

runs=()
for build in cargo lambda; do
  cat >"$work/run-$build" <<EOT
#!/bin/sh
exec valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/$build.%p.cg" "$work/$build" "\$@"
EOT
  chmod +x "$work/run-$build"
  target/release/voice-bench --bootstrap "$work/run-$build" --cold-only --cold-starts 1 >/dev/null
  runs+=("$work/$build:$(ls "$work"/$build.*.cg | paste -sd, -)")
done
python3 tools/hot_layout.py link/hot-text.ld "${runs[@]}"
# The unstripped binaries are not what ships: build the release ones again, with the layout.
cargo build --release --bin bootstrap
"$CARGO_LAMBDA" lambda build --release --bin bootstrap

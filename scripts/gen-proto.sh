#!/usr/bin/env bash
# Regenerates shared/proto/src/generated/ from shared/proto/proto/*.proto.
#
# The generated Rust is checked in so that building Lockplane needs cargo alone (no protoc,
# no build script). This script builds a small throwaway generator (tonic-prost-build with
# protox, a pure-Rust proto compiler) under target/, outside the workspace, and runs it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
gen="$root/target/proto-gen"
mkdir -p "$gen/src"
cat >"$gen/Cargo.toml" <<'TOML'
[package]
name = "proto-gen"
version = "0.0.0"
edition = "2024"
publish = false

[workspace]

[dependencies]
tonic-prost-build = "=0.14.5"
protox = "0.10"
TOML
cat >"$gen/src/main.rs" <<'RS'
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (proto_dir, out, files) = (&args[1], &args[2], &args[3..]);
    let descriptors = protox::compile(files, [proto_dir]).expect("protos compile");
    tonic_prost_build::configure()
        .out_dir(out)
        .compile_fds(descriptors)
        .expect("code generates");
}
RS
cargo build --quiet --release --manifest-path "$gen/Cargo.toml"
cd "$root/shared/proto/proto"
"$gen/target/release/proto-gen" . "$root/shared/proto/src/generated" *.proto
echo "regenerated shared/proto/src/generated"

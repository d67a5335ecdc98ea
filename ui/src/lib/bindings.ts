// Generated from the Rust types by `make bindings`; do not edit.
// A test fails when this file and the Rust types disagree.

export type AppInfo = { productName: string, version: string, dataDir: string, };

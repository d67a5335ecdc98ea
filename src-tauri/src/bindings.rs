//! TypeScript declarations of every type that crosses the IPC boundary, and
//! the names of every command and event, generated from the Rust types and
//! lists and committed as `ui/src/lib/bindings.ts`.
//! The test below fails when the committed file drifts from the Rust types;
//! `make bindings` rewrites it.

use ts_rs::{Config, TS};

use wa_device_core::{
    Device, DeviceList, DeviceState, ErrorCode, HistoryAction, HistoryEntry, LoginPhase,
    LogoutOutcome, Outcome, PairingCode, PendingRevocation, QrCode, RevocationTry, ServiceError,
    StateReason,
};

use crate::api_setting::{ApiSettingsUpdate, ApiStatus};
use crate::command_names::COMMANDS;
use crate::commands::AppInfo;
use crate::events::{DeviceRemovedEvent, EVENTS, NoticeEvent, RevocationRemovedEvent};
use wa_device_core::webhooks::{Webhook, WebhookEvent};

/// The committed file, relative to the repository root.
pub const BINDINGS_PATH: &str = "ui/src/lib/bindings.ts";

/// Renders the whole bindings file.
pub fn render() -> String {
    // Timestamps and counters fit in a JS number; `bigint` would not survive JSON.
    let cfg = Config::new().with_large_int("number");
    let declarations = [
        AppInfo::decl(&cfg),
        Device::decl(&cfg),
        DeviceList::decl(&cfg),
        DeviceState::decl(&cfg),
        StateReason::decl(&cfg),
        LoginPhase::decl(&cfg),
        ServiceError::decl(&cfg),
        ErrorCode::decl(&cfg),
        QrCode::decl(&cfg),
        PairingCode::decl(&cfg),
        LogoutOutcome::decl(&cfg),
        HistoryEntry::decl(&cfg),
        HistoryAction::decl(&cfg),
        Outcome::decl(&cfg),
        PendingRevocation::decl(&cfg),
        RevocationTry::decl(&cfg),
        RevocationRemovedEvent::decl(&cfg),
        DeviceRemovedEvent::decl(&cfg),
        NoticeEvent::decl(&cfg),
        ApiStatus::decl(&cfg),
        ApiSettingsUpdate::decl(&cfg),
        Webhook::decl(&cfg),
        WebhookEvent::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from the Rust types by `make bindings`; do not edit.\n\
         // A test fails when this file and the Rust types disagree.\n",
    );
    for declaration in declarations {
        out.push_str("\nexport ");
        out.push_str(&declaration);
        out.push('\n');
    }
    out.push_str(&names());
    out
}

/// The command and event names, as constants `backend.ts` calls and listens by.
fn names() -> String {
    let mut out = String::from(
        "\n/** Every command of the shell (`src-tauri/src/command_names.rs`). */\n\
         export const COMMANDS = [\n",
    );
    for command in COMMANDS {
        out.push_str(&format!("  \"{command}\",\n"));
    }
    out.push_str(
        "] as const;\n\n\
         export type Command = (typeof COMMANDS)[number];\n\n\
         /** Every event the shell emits (`src-tauri/src/events.rs`). */\n\
         export const EVENTS = {\n",
    );
    for (name, event) in EVENTS {
        out.push_str(&format!("  {name}: \"{event}\",\n"));
    }
    out.push_str("} as const;\n");
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn committed_bindings_match_the_rust_types() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(super::BINDINGS_PATH);
        let expected = super::render();
        if std::env::var_os("WA_UPDATE_BINDINGS").is_some() {
            std::fs::write(&path, &expected).expect("write the bindings");
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == expected,
            "{} is out of date: run `make bindings` and commit the result",
            super::BINDINGS_PATH
        );
    }
}

//! A stderr logger for the `wa-sim` binary, off unless `WA_SIM_LOG` names a
//! level (`error`, `warn`, `info`, `debug`, `trace`). What the simulator logs
//! follows the events' rule: stages, reasons, JIDs, never keys, QR payloads
//! or codes.

use std::io::Write as _;

/// The variable that turns the logger on.
pub const LOG_ENV: &str = "WA_SIM_LOG";

struct StderrLogger {
    level: log::LevelFilter,
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level && metadata.target().starts_with("wa_sim")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let _ = writeln!(
                std::io::stderr().lock(),
                "wa-sim {} {}: {}",
                record.level(),
                record.target(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

/// Installs the logger if `WA_SIM_LOG` is set; an unknown level is an error
/// (a typo must not silently turn logging off).
pub fn init_from_env() -> Result<(), String> {
    let Some(value) = std::env::var_os(LOG_ENV) else {
        return Ok(());
    };
    let value = value.to_string_lossy();
    let level: log::LevelFilter = value.parse().map_err(|_| {
        format!("{LOG_ENV}={value} is not a log level (error, warn, info, debug, trace)")
    })?;
    let logger = Box::leak(Box::new(StderrLogger { level }));
    log::set_logger(logger).map_err(|e| format!("cannot install the logger: {e}"))?;
    log::set_max_level(level);
    Ok(())
}

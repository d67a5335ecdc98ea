//! Command-line options of the `wa-device-admin` binary.

use std::path::PathBuf;

use clap::Parser;

/// Administer WhatsApp linked-device sessions.
#[derive(Debug, Parser)]
#[command(name = "wa-device-admin", version, about)]
pub struct Cli {
    /// Folder for the app's data (databases, session stores). Defaults to the
    /// OS's per-user app-data folder; `WA_DEVICE_ADMIN_DATA_DIR` sets it too.
    #[arg(long, env = "WA_DEVICE_ADMIN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Connect to this WhatsApp simulator (`ws://127.0.0.1:PORT/ws/chat`)
    /// instead of WhatsApp. Only in builds with the `simulator` feature.
    #[cfg(feature = "simulator")]
    #[arg(long, value_name = "WS_URL")]
    pub simulator_url: Option<String>,

    /// Divides the WhatsApp client's waits and timeouts (tests only: the
    /// simulator then links a device in about a second instead of ten).
    #[cfg(feature = "simulator")]
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub client_time_factor: u32,

    /// Light or dark window instead of the desktop's preference.
    #[arg(long, value_enum, value_name = "THEME")]
    pub theme: Option<Theme>,
}

/// A window colour scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Theme {
    Light,
    Dark,
}

impl From<Theme> for tauri::Theme {
    fn from(theme: Theme) -> tauri::Theme {
        match theme {
            Theme::Light => tauri::Theme::Light,
            Theme::Dark => tauri::Theme::Dark,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_dir_is_optional() {
        let cli = Cli::try_parse_from(["wa-device-admin"]).expect("no arguments parse");
        assert!(cli.data_dir.is_none() || std::env::var_os("WA_DEVICE_ADMIN_DATA_DIR").is_some());
    }

    #[test]
    fn data_dir_is_taken_from_the_flag() {
        let cli =
            Cli::try_parse_from(["wa-device-admin", "--data-dir", "/tmp/x"]).expect("flag parses");
        assert_eq!(cli.data_dir, Some(PathBuf::from("/tmp/x")));
    }

    #[cfg(not(feature = "simulator"))]
    #[test]
    fn builds_without_the_simulator_feature_have_no_simulator_flag() {
        let error = Cli::try_parse_from(["wa-device-admin", "--simulator-url", "ws://127.0.0.1:1"])
            .expect_err("the flag must not exist");
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
    }

    #[test]
    fn theme_is_light_or_dark() {
        let cli = Cli::try_parse_from(["wa-device-admin", "--theme", "dark"]).expect("parses");
        assert_eq!(cli.theme, Some(Theme::Dark));
        let error =
            Cli::try_parse_from(["wa-device-admin", "--theme", "blue"]).expect_err("unknown theme");
        assert_eq!(error.kind(), clap::error::ErrorKind::InvalidValue);
    }

    #[test]
    fn unknown_flags_are_refused() {
        let error = Cli::try_parse_from(["wa-device-admin", "--frobnicate"])
            .expect_err("unknown flag must fail");
        assert_eq!(error.kind(), clap::error::ErrorKind::UnknownArgument);
    }
}

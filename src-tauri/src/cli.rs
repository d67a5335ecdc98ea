//! Command-line options of the `wa-device-admin` binary.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Administer WhatsApp linked-device sessions.
#[derive(Debug, Parser)]
#[command(name = "wa-device-admin", version, about)]
pub struct Cli {
    /// Folder for the app's data (databases, session stores). Defaults to the
    /// OS's per-user app-data folder; `WA_DEVICE_ADMIN_DATA_DIR` sets it too.
    #[arg(
        long,
        global = true,
        env = "WA_DEVICE_ADMIN_DATA_DIR",
        value_name = "DIR"
    )]
    pub data_dir: Option<PathBuf>,

    /// Connect to this WhatsApp simulator (`ws://127.0.0.1:PORT/ws/chat`)
    /// instead of WhatsApp. Only in builds with the `simulator` feature.
    #[cfg(feature = "simulator")]
    #[arg(long, global = true, value_name = "WS_URL")]
    pub simulator_url: Option<String>,

    /// Divides the WhatsApp client's waits and timeouts (tests only: the
    /// simulator then links a device in about a second instead of ten).
    #[cfg(feature = "simulator")]
    #[arg(long, global = true, value_name = "N", default_value_t = 1)]
    pub client_time_factor: u32,

    /// Light or dark window instead of the desktop's preference.
    #[arg(long, value_enum, value_name = "THEME")]
    pub theme: Option<Theme>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the REST API without opening a window (until Ctrl-C or SIGTERM).
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = wa_device_api::DEFAULT_LISTEN, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,

    /// Allow a non-loopback `--listen` address (the API is then reachable
    /// from the network; use strong passwords).
    #[arg(long)]
    pub allow_remote: bool,

    /// The URL clients reach the API at (`http(s)://host[:port][/prefix]`),
    /// for links in answers such as `qr_link`; by default `http://` and the
    /// listen address. Set it behind a reverse proxy or with
    /// `--listen 0.0.0.0:PORT`.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,

    /// Accepted `user:password` pair(s) for HTTP Basic auth; repeat the flag
    /// or separate pairs with commas. `APP_BASIC_AUTH` sets them too.
    #[arg(
        long = "basic-auth",
        env = "APP_BASIC_AUTH",
        hide_env_values = true,
        value_name = "USER:PASSWORD"
    )]
    pub basic_auth: Vec<String>,

    /// Read a password from standard input, store it in the OS keyring as the
    /// API password of `--user`, and exit.
    #[arg(long)]
    pub set_password: bool,

    /// Which log lines to write to stderr: a level (`error`, `warn`,
    /// `info`, `debug`, `trace`) or `RUST_LOG`-style directives
    /// (`wa_device_core=debug,info`). Default: `RUST_LOG`, else `info`.
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,

    /// How log lines are written.
    #[arg(long, value_enum, default_value_t, value_name = "FORMAT")]
    pub log_format: crate::logging::LogFormat,

    /// The user name of the password stored with `--set-password`.
    #[arg(long, default_value = wa_device_api::auth::DEFAULT_USER, requires = "set_password")]
    pub user: String,
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
        assert!(cli.command.is_none());
    }

    #[test]
    fn data_dir_is_taken_from_the_flag() {
        let cli =
            Cli::try_parse_from(["wa-device-admin", "--data-dir", "/tmp/x"]).expect("flag parses");
        assert_eq!(cli.data_dir, Some(PathBuf::from("/tmp/x")));
    }

    #[test]
    fn serve_takes_its_options_and_the_global_ones() {
        let cli = Cli::try_parse_from([
            "wa-device-admin",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--basic-auth",
            "a:b",
            "--basic-auth",
            "c:d,e:f",
            "--data-dir",
            "/tmp/y",
        ])
        .expect("serve parses");
        assert_eq!(cli.data_dir, Some(PathBuf::from("/tmp/y")));
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve subcommand expected")
        };
        assert_eq!(args.listen, "127.0.0.1:0".parse().expect("addr"));
        assert!(!args.allow_remote);
        assert_eq!(args.public_url, None);
        assert!(args.basic_auth.contains(&"a:b".to_owned()));
    }

    #[test]
    fn serve_takes_a_public_url() {
        let cli = Cli::try_parse_from([
            "wa-device-admin",
            "serve",
            "--public-url",
            "https://wa.example.org/admin",
        ])
        .expect("serve parses");
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve subcommand expected")
        };
        assert_eq!(
            args.public_url.as_deref(),
            Some("https://wa.example.org/admin")
        );
    }

    #[test]
    fn serve_listens_on_loopback_3000_by_default() {
        let cli = Cli::try_parse_from(["wa-device-admin", "serve"]).expect("serve parses");
        let Some(Command::Serve(args)) = cli.command else {
            panic!("serve subcommand expected")
        };
        assert_eq!(args.listen, "127.0.0.1:3000".parse().expect("addr"));
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

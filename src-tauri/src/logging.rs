//! Log lines for operators: `serve` writes them to stderr, the window to a
//! size-capped file in its data folder.
//!
//! Which lines: `--log-level` (a level or `RUST_LOG`-style directives), else
//! `RUST_LOG`, else `info`. Lines of other crates than ours are kept only at
//! `warn` and above, whatever the filter says: a library's debug output may
//! hold what this app never logs (keys, QR payloads, pairing codes), and
//! secrets never reach a log line.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The window's log file, under the data folder.
pub const LOG_FILE: &str = "logs/wa-device-admin.log";

/// The window's log file is started afresh (the old one kept as `.1`) once
/// it reaches this size, so at most twice this is ever kept.
pub const LOG_FILE_CAP: u64 = 5 * 1024 * 1024;

/// Whether a line of `target` at `level` may be written (see the module
/// documentation).
fn allowed(target: &str, level: &Level) -> bool {
    target.starts_with("wa_device") || *level <= Level::WARN
}

/// The filter: `level` when given, else `RUST_LOG`, else `info`.
fn filter(level: Option<&str>) -> Result<EnvFilter, String> {
    let directives = match level {
        Some(level) => level.to_owned(),
        None => std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
    };
    EnvFilter::builder().parse(&directives).map_err(|_| {
        format!(
            "{directives:?} is not a log level or filter (try info, debug or wa_device_core=trace)"
        )
    })
}

fn install<W>(level: Option<&str>, format: LogFormat, writer: W, ansi: bool) -> Result<(), String>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let ceiling = filter_fn(|meta| allowed(meta.target(), meta.level()));
    let lines = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_ansi(ansi)
            .with_filter(ceiling)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(writer)
            .with_filter(ceiling)
            .boxed(),
    };
    Registry::default()
        .with(filter(level)?)
        .with(lines)
        .try_init()
        .map_err(|_| "a logger is installed already".to_owned())
}

/// Log lines of `serve`, to stderr.
pub fn for_serve(level: Option<&str>, format: LogFormat) -> Result<(), String> {
    install(level, format, io::stderr, false)
}

/// Log lines of the window, to [`LOG_FILE`] in `data_dir`.
pub fn for_window(data_dir: &Path) -> Result<(), String> {
    let file = CappedFile::open(data_dir.join(LOG_FILE), LOG_FILE_CAP)
        .map_err(|e| format!("cannot open the log file: {e}"))?;
    install(None, LogFormat::Text, file, false)
}

/// A log file that starts afresh at `cap` bytes, keeping the previous one
/// as `<name>.1`. Created readable by the owner only.
#[derive(Clone)]
pub struct CappedFile {
    state: Arc<Mutex<CappedState>>,
}

struct CappedState {
    path: PathBuf,
    cap: u64,
    file: File,
    written: u64,
}

impl CappedFile {
    pub fn open(path: PathBuf, cap: u64) -> io::Result<CappedFile> {
        if let Some(dir) = path.parent() {
            wa_device_core::files::create_private_dir(dir)
                .map_err(|e| io::Error::other(e.message))?;
        }
        let file = open_private(&path)?;
        let written = file.metadata()?.len();
        Ok(CappedFile {
            state: Arc::new(Mutex::new(CappedState {
                path,
                cap,
                file,
                written,
            })),
        })
    }
}

fn open_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

impl CappedState {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written > 0 && self.written + buf.len() as u64 > self.cap {
            let mut old = self.path.clone().into_os_string();
            old.push(".1");
            fs::rename(&self.path, &old)?;
            self.file = open_private(&self.path)?;
            self.written = 0;
        }
        self.file.write_all(buf)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }
}

/// One line's writer: holds the file's lock for one `write`.
pub struct CappedWriter(Arc<Mutex<CappedState>>);

impl Write for CappedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .file
            .flush()
    }
}

impl<'w> MakeWriter<'w> for CappedFile {
    type Writer = CappedWriter;

    fn make_writer(&'w self) -> CappedWriter {
        CappedWriter(Arc::clone(&self.state))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn other_crates_lines_are_kept_only_from_warn_up() {
        assert!(allowed("wa_device_core::service", &Level::TRACE));
        assert!(allowed("wa_device_api", &Level::DEBUG));
        assert!(!allowed("whatsapp_rust::client", &Level::INFO));
        assert!(!allowed("hyper", &Level::TRACE));
        assert!(allowed("whatsapp_rust::client", &Level::WARN));
        assert!(allowed("hyper", &Level::ERROR));
    }

    #[test]
    fn a_bad_level_is_told_in_words() {
        assert!(filter(Some("debug")).is_ok());
        assert!(filter(Some("wa_device_core=trace,info")).is_ok());
        let err = filter(Some("very=loud=please")).unwrap_err();
        assert!(err.contains("not a log level"), "{err}");
    }

    #[test]
    fn the_log_file_starts_afresh_at_its_cap_and_keeps_one_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/app.log");
        let file = CappedFile::open(path.clone(), 100).unwrap();
        let line = [b'x'; 40];
        for _ in 0..7 {
            file.make_writer().write_all(&line).unwrap();
        }
        let current = fs::metadata(&path).unwrap().len();
        let old = fs::metadata(dir.path().join("logs/app.log.1"))
            .unwrap()
            .len();
        assert!(current <= 100 && old <= 100, "{current} {old}");
        assert_eq!(current + old, 40 * 3, "the rest went with the older file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "owner only: {mode:o}");
        }
    }
}

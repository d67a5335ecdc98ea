//! `wa-sim`: the WhatsApp server and phone simulator as a process.
//!
//! ```text
//! wa-sim --listen 127.0.0.1:0 --control 127.0.0.1:0 [--max-companions N]
//! ```
//! Prints one JSON line when ready:
//! `{"ws_url":"ws://127.0.0.1:PORT/ws/chat","control_url":"http://127.0.0.1:PORT","cert_root_key":"<base64>"}`
//! and runs until SIGTERM or SIGINT. `WA_SIM_LOG=info` (or `debug`, ..)
//! logs to stderr.

use std::net::SocketAddr;
use std::process::ExitCode;

use wa_sim::{SimConfig, Simulator, serve};

struct Options {
    listen: SocketAddr,
    control: SocketAddr,
    max_companions: usize,
}

const USAGE: &str =
    "usage: wa-sim --listen 127.0.0.1:PORT --control 127.0.0.1:PORT [--max-companions N]";

fn parse_options() -> Result<Options, String> {
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut options = Options {
        listen: loopback,
        control: loopback,
        max_companions: SimConfig::default().max_companions,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--listen" => options.listen = parse_addr(&value()?)?,
            "--control" => options.control = parse_addr(&value()?)?,
            "--max-companions" => {
                options.max_companions = value()?
                    .parse()
                    .map_err(|_| "--max-companions needs a number".to_string())?;
            }
            "--help" | "-h" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(options)
}

fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    let addr: SocketAddr = text
        .parse()
        .map_err(|_| format!("{text} is not an address like 127.0.0.1:0"))?;
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!(
            "{text} is not a loopback address; wa-sim only listens on loopback"
        ))
    }
}

fn main() -> ExitCode {
    if let Err(message) = wa_sim::logger::init_from_env() {
        eprintln!("{message}");
        return ExitCode::from(2);
    }
    let options = match parse_options() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(options))
}

async fn run(options: Options) -> ExitCode {
    let sim = Simulator::new(SimConfig {
        max_companions: options.max_companions,
        ..SimConfig::default()
    });
    let endpoints = match serve(sim, options.listen, options.control).await {
        Ok(endpoints) => endpoints,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "ws_url": endpoints.ws_url,
            "control_url": endpoints.control_url,
            "cert_root_key": endpoints.cert_root_key,
        })
    );
    if let Err(e) = wait_for_stop_signal().await {
        eprintln!("cannot listen for signals: {e}");
    }
    endpoints.shutdown().await;
    ExitCode::SUCCESS
}

async fn wait_for_stop_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

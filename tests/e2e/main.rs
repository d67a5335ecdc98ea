//! End-to-end tests: the real built app in a real window, driven over WebDriver
//! (tauri-driver in front of WebKitWebDriver). Run them inside a desktop
//! session: `tests/desktop-session.sh cargo nextest run --test e2e --features
//! simulator`, which provides Xvfb, a D-Bus session bus and an unlocked Secret
//! Service. The device flows need the app built with the `simulator` feature
//! (`make test` does so). `serve_limits`, `serve_stop` and `serve_logs` run
//! the app as the REST API server alone, without a window.

// The device flows use most of the harness; the window tests only a part.
mod api_setting;
#[cfg_attr(not(feature = "simulator"), allow(dead_code))]
mod harness;
#[cfg_attr(not(feature = "simulator"), allow(dead_code))]
mod selectors;
mod serve_limits;
mod serve_stop;
mod window;

#[cfg(feature = "simulator")]
mod devices;
#[cfg(feature = "simulator")]
mod screen_qr;
#[cfg(feature = "simulator")]
mod serve_logs;

/// Without the feature the device flows would silently not run: say so.
#[cfg(not(feature = "simulator"))]
#[test]
fn device_flows_need_the_simulator_feature() {
    panic!(
        "the end-to-end device flows need the app built with the simulator feature: \
         run `cargo nextest run -p wa-device-admin --features simulator` (make test does)"
    );
}

//! End-to-end tests: an unmodified whatsapp-rust 0.7.0 client against the
//! simulator, each flow both in process and over the `wa-sim` binary's
//! loopback WebSocket. One test binary (link time matters on small machines).

mod binary;
mod flows;
mod harness;
mod in_process;

/// Runs `flows::$flow` in process and over the binary.
macro_rules! both_ways {
    ($($flow:ident),* $(,)?) => {$(
        mod $flow {
            use crate::harness::Target;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn in_process() {
                crate::flows::$flow(&Target::in_process()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn over_websocket() {
                crate::flows::$flow(&Target::binary().await).await;
            }
        }
    )*};
}

both_ways!(
    qr_pairing,
    pairing_code,
    wrong_pairing_code,
    reconnect_with_ik,
    pre_keys_uploaded_once,
    reconnect_after_server_key_change,
    logout,
    logout_answered_with_error,
    logout_not_answered,
    device_removed_from_phone,
    stream_replaced,
    temporary_ban,
    client_outdated,
    service_unavailable_then_recovery,
    dropped_connection_reconnects,
    stalled_server_reconnects,
    qr_refs_exhausted,
    fifth_device_refused,
    own_device_list_synced,
);

//! The simulator as a `TransportFactory`: the client's bytes go through
//! in-memory channels instead of a socket.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::mpsc;
use wacore::net::{DisconnectReason, Transport, TransportEvent, TransportFactory};

use crate::session::{Link, LinkOut};
use crate::sim::Simulator;

/// Hand to `Bot::builder().with_transport_factory(..)`; each connect attempt
/// opens a new simulated connection.
#[derive(Clone)]
pub struct InProcessTransportFactory {
    sim: Simulator,
}

impl InProcessTransportFactory {
    pub(crate) fn new(sim: Simulator) -> Self {
        Self { sim }
    }
}

struct InProcessTransport {
    /// Taken on disconnect: dropping it is how the session learns the
    /// client has gone.
    to_server: Mutex<Option<mpsc::UnboundedSender<Bytes>>>,
}

#[async_trait]
impl Transport for InProcessTransport {
    async fn send(&self, data: Bytes) -> Result<(), anyhow::Error> {
        let guard = self
            .to_server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match guard.as_ref() {
            Some(tx) => tx
                .send(data)
                .map_err(|_| anyhow::anyhow!("simulated connection closed")),
            None => Err(anyhow::anyhow!("simulated connection closed")),
        }
    }

    async fn disconnect(&self) {
        self.to_server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

#[async_trait]
impl TransportFactory for InProcessTransportFactory {
    async fn create_transport(
        &self,
    ) -> Result<(Arc<dyn Transport>, async_channel::Receiver<TransportEvent>), anyhow::Error> {
        let (to_server, inbound) = mpsc::unbounded_channel();
        let (outbound, mut from_server) = mpsc::unbounded_channel();
        let (events, events_rx) = async_channel::unbounded();
        let _ = events.try_send(TransportEvent::Connected);
        self.sim.accept(Link { inbound, outbound });
        tokio::spawn(async move {
            while let Some(out) = from_server.recv().await {
                match out {
                    LinkOut::Data(bytes) => {
                        if events.send(TransportEvent::DataReceived(bytes)).await.is_err() {
                            return;
                        }
                    }
                    LinkOut::Close { abrupt } => {
                        let reason = if abrupt {
                            DisconnectReason::ReadError("connection reset by simulator".into())
                        } else {
                            DisconnectReason::StreamEnded
                        };
                        let _ = events.send(TransportEvent::Disconnected(reason)).await;
                        return;
                    }
                }
            }
        });
        Ok((
            Arc::new(InProcessTransport {
                to_server: Mutex::new(Some(to_server)),
            }),
            events_rx,
        ))
    }
}

//! The request path. pingora is the server platform (listeners, socket hand-over on upgrade,
//! shutdown); each accepted connection is served by hyper — HTTP/1.1, or over TLS (flowgate's
//! own handshake, `h2`) HTTP/2 when ALPN picks it — on the thread that accepted it: one listening service per core, one thread each, so a connection, its
//! requests and its upstream connections never cross threads.

pub mod admission;
pub mod body;
pub mod click;
mod click_through;
mod client_hello;
mod conn;
mod forward;
mod h2;
mod handle;
pub mod headers;
mod postback;
pub mod proxy_protocol;
mod replay;
mod respond;
mod tunnel;
mod upstream;

use std::sync::Arc;

use async_trait::async_trait;
use pingora::apps::ServerApp;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;

use crate::events::LiveEvents;
use crate::lifecycle::InFlightCounter;
use crate::metrics::Metrics;
use crate::snapshot::Live;

/// What every request of every thread shares.
pub struct Gateway {
    /// The snapshot, and with it the settings each connection keeps (`Live::settings`).
    pub live: Arc<Live>,
    pub events: Arc<LiveEvents>,
    pub metrics: Arc<Metrics>,
    pub in_flight: InFlightCounter,
    pub admission: Arc<admission::Admission>,
    /// Listeners whose connections open with a PROXY protocol header.
    pub proxy_protocol: Vec<crate::config::Listen>,
    /// Listeners whose connections begin with a TLS handshake.
    pub tls: crate::tls::Listeners,
    /// The click store, visitor index and caps: the process's, kept across reloads.
    pub state: Arc<crate::state::State>,
    /// Forwards attributed conversions to their clicks' traffic sources.
    pub postbacks: Arc<crate::postbacks::Forwarder>,
}

impl Gateway {
    fn count_upstream_error(&self, upstream: &str, kind: &str) {
        self.metrics
            .upstream_errors
            .with_label_values(&[upstream, kind])
            .inc();
    }
}

/// The pingora application of one listening service.
pub struct App(pub Arc<Gateway>);

#[async_trait]
impl ServerApp for App {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        conn::serve(self.0.clone(), stream, shutdown).await;
        // hyper owned the connection and its keep-alive; nothing comes back to pingora.
        None
    }
}

//! The Prometheus side of a process: the text it serves on `GET /metrics`, and the
//! histogram buckets every Lockplane latency uses (so that dashboards can put any two side
//! by side).
//!
//! Each component that measures something (a node, a gateway, a consumer, the process
//! itself: [`crate::process`]) owns a [`prometheus::Registry`]: several nodes in one test
//! process keep apart, and `lockplane dev` serves its gateway's, its node's and its
//! process's figures on one endpoint.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Registry, TextEncoder};
use tokio::net::TcpListener;

/// Bounds (seconds) of every request and proposal latency histogram: 0.1 ms to 30 s.
pub const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 30.0,
];

/// Bounds (seconds) of hold and wait durations: 1 ms to an hour.
pub const DURATION_BUCKETS_SECONDS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// What a `/metrics` listener answers, built on each scrape.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The Prometheus text exposition of every metric in `registries`, in order. Their
/// metric names must not overlap.
pub fn render(registries: &[&Registry]) -> String {
    let mut text = String::new();
    let encoder = TextEncoder::new();
    for registry in registries {
        if let Err(error) = encoder.encode_utf8(&registry.gather(), &mut text) {
            tracing::warn!(%error, "a metric could not be written out");
        }
    }
    text
}

/// Serves `GET /metrics` (what `render` builds on each scrape) on `listener` until
/// `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    render: Render,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let render = Arc::clone(&render);
            async move { answer(off_the_runtime(render).await) }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Runs `render` on a blocking thread: it reads locks and files, and must not hold up
/// the runtime's workers (which carry Raft's heartbeats) while it does.
pub async fn off_the_runtime(render: Render) -> String {
    tokio::task::spawn_blocking(move || render())
        .await
        .unwrap_or_else(|e| format!("# the metrics could not be read: {e}\n"))
}

/// A `/metrics` answer: the text with Prometheus' content type.
pub fn answer(text: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_registry_in_order() {
        let (first, second) = (Registry::new(), Registry::new());
        let counter = prometheus::IntCounter::new("lockplane_test_total", "A test.").unwrap();
        first.register(Box::new(counter.clone())).unwrap();
        counter.inc_by(3);
        let gauge = prometheus::IntGauge::new("lockplane_test_gauge", "A test.").unwrap();
        second.register(Box::new(gauge.clone())).unwrap();
        gauge.set(-2);
        let text = render(&[&first, &second]);
        let counted = text.find("lockplane_test_total 3").unwrap();
        let gauged = text.find("lockplane_test_gauge -2").unwrap();
        assert!(counted < gauged, "{text}");
    }

    #[tokio::test]
    async fn serves_what_render_builds() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            listener,
            Arc::new(|| "lockplane_up 1\n".to_string()),
            async move {
                let _ = stopped.await;
            },
        ));
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("text/plain; version=0.0.4"), "{answer}");
        assert!(answer.ends_with("lockplane_up 1\n"), "{answer}");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}

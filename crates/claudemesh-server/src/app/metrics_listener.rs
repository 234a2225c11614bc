//! `GET /metrics` on the address `--metrics-bind` names, apart from the
//! public listener: what it shows (route names, counts, pool use) is for
//! operators, and a default deployment exposes none of it.

use crate::db::pool::Db;
use crate::metrics::{CONTENT_TYPE, METRICS};
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use std::future::Future;
use tokio::net::TcpListener;

/// Serves `/metrics` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    db: Db,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new().route("/metrics", get(scrape)).with_state(db);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn scrape(State(db): State<Db>) -> impl IntoResponse {
    // The pool's state is read when asked, not tracked on every checkout.
    let size = i64::from(db.pool.size());
    let idle = i64::try_from(db.pool.num_idle()).unwrap_or(i64::MAX);
    METRICS
        .db_connections
        .with_label_values(&["idle"])
        .set(idle);
    METRICS
        .db_connections
        .with_label_values(&["in_use"])
        .set((size - idle).max(0));
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], METRICS.render())
}

//! Building and running the server: store, router, listener.

use crate::app::config::Config;
use crate::app::state::{AppState, Settings};
use crate::app::{metrics_listener, probes};
use crate::auth::address_limits::AddressLimits;
use crate::auth::request_limit::RequestLimit;
use crate::auth::wakeups::Wakeups;
use crate::auth::{accounts, device_codes, oauth, tokens};
use crate::broker::{Broker, BrokerSettings};
use crate::clock::Clock;
use crate::db::pool::{Db, DbError};
use crate::http::openapi::ApiDoc;
use crate::http::request::{MAX_BODY_BYTES, log_requests};
use crate::http::write_stall::StallGuardedListener;
use crate::meshes::{governance, grants, invites, log as mesh_log, log_api, mesh};
use crate::telemetry;
use crate::text::mail::Mailer;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::serve::ListenerExt;
use axum::{Json, Router, middleware};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::time::Instant;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Mail(#[from] crate::text::mail::MailConfigError),
    #[error(transparent)]
    Bus(#[from] crate::broker::BusError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server stopped: {0}")]
    Serve(std::io::Error),
}

/// A built server: store open and migrated, listener bound.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    local_addr: SocketAddr,
    /// Days telemetry events are kept (0: forever).
    telemetry_retention_days: u32,
    /// How long in-flight requests get once told to stop.
    shutdown_grace: Duration,
    /// Days mesh log entries are kept (0: forever).
    mesh_log_retention_days: u32,
    /// Where `/metrics` is served, when asked for.
    metrics_listener: Option<TcpListener>,
    /// How long a connection's write may wait without progress.
    write_stall: Duration,
}

impl Application {
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        let mailer = Mailer::new(
            config.smtp_url.as_deref(),
            &config.mail_from,
            config.data_dir.join("outbox"),
        )?;
        let db = Db::open(
            config.database_url.as_deref(),
            &config.data_dir,
            config.db_pool_size,
        )
        .await?;
        let listener =
            TcpListener::bind(&config.bind)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.bind.clone(),
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(StartError::Serve)?;
        let metrics_listener = match &config.metrics_bind {
            Some(addr) => {
                Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(|source| StartError::Bind {
                            addr: addr.clone(),
                            source,
                        })?,
                )
            }
            None => None,
        };
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local_addr}"));
        let broker = Broker::start(
            &db,
            config.database_url.as_deref(),
            config.bus.as_deref(),
            Arc::clone(&clock),
            BrokerSettings::from_config(&config),
        )
        .await
        .map_err(|err| match err {
            crate::broker::StartError::Db(source) => StartError::Db(DbError::Connect {
                engine: db.engine.name(),
                source,
            }),
            crate::broker::StartError::Bus(err) => StartError::Bus(err),
        })?;
        let wakeups = Wakeups::start(db.engine, config.database_url.as_deref()).await;
        let state = AppState::new(
            db,
            clock,
            Settings {
                telemetry_batches_per_minute: config.telemetry_batches_per_minute,
                ..Settings::new(&public_url, config.trust_proxy)
            },
            mailer,
            broker,
            RequestLimit::new(config.token_requests_per_minute),
            AddressLimits::from_config(&config),
            wakeups,
        );
        let router = router(state.clone());
        Ok(Self {
            listener,
            router,
            state,
            local_addr,
            telemetry_retention_days: config.telemetry_retention_days,
            shutdown_grace: Duration::from_secs(config.shutdown_grace),
            mesh_log_retention_days: config.mesh_log_retention_days,
            metrics_listener,
            write_stall: Duration::from_secs(config.write_stall_timeout),
        })
    }

    /// Where `/metrics` is served, if `--metrics-bind` asked for it.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref()?.local_addr().ok()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn public_url(&self) -> &str {
        &self.state.settings.public_url
    }

    /// Where mail goes (SMTP or the outbox directory).
    pub fn mail_transport(&self) -> String {
        self.state.mailer.describe()
    }

    pub fn engine_name(&self) -> &'static str {
        self.state.db.engine.name()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then stops taking connections,
    /// closes broker sessions (1001, "connect again": clients reconnect,
    /// through a load balancer to another instance) and answers waiting
    /// polls at once, and lets in-flight requests finish, for at most
    /// `--shutdown-grace` seconds: then it returns anyway, and the requests
    /// still running end with the process.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let service = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        // WebSockets outlive the HTTP connections that upgraded them, and a
        // waiting device-code poll would hold its connection up to 20 s: end
        // both when the server is told to stop.
        let broker = self.state.broker.clone();
        let wakeups = self.state.wakeups.clone();
        let (told, stopping) = oneshot::channel::<Instant>();
        let (metrics_stop, metrics_stopping) = oneshot::channel::<()>();
        let metrics = self.metrics_listener.map(|listener| {
            let stopped = async move {
                let _ = metrics_stopping.await;
            };
            tokio::spawn(metrics_listener::serve(
                listener,
                self.state.db.clone(),
                stopped,
            ))
        });
        let shutdown = async move {
            shutdown.await;
            let _ = told.send(Instant::now());
            let _ = metrics_stop.send(());
            broker.shut_down();
            wakeups.close();
        };
        let grace = self.shutdown_grace;
        let out_of_time = async move {
            match stopping.await {
                Ok(since) => {
                    tracing::info!(
                        grace_secs = grace.as_secs(),
                        "stopping: no new connections; finishing in-flight requests"
                    );
                    tokio::time::sleep_until(since + grace).await;
                }
                // The server stopped on its own (an error): nothing to time.
                Err(_) => std::future::pending().await,
            }
        };
        let retention =
            telemetry::spawn_retention(self.state.clone(), self.telemetry_retention_days);
        let log_check = mesh_log::spawn_startup_check(self.state.pool().clone());
        let log_retention = mesh_log::spawn_retention(
            self.state.pool().clone(),
            std::sync::Arc::clone(&self.state.clock),
            self.mesh_log_retention_days,
        );
        // Nagle's algorithm holds a small write back until the previous one
        // is acknowledged: for a broker frame or a short JSON answer that is
        // a wait of up to the peer's delayed-ACK timer (40 ms on Linux).
        // Clients already turn it off; accepted sockets need it too (see
        // bench/README.md for the broker latency before and after).
        let listener = self.listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "cannot set TCP_NODELAY on an accepted socket");
            }
        });
        // A client that stops reading is dropped, not waited on for ever.
        // (The outer `tap_io` adds nothing but the impl that gives handlers
        // the client's address, which axum has for `TapIo` listeners.)
        let listener = StallGuardedListener::new(listener, self.write_stall).tap_io(|_io| {});
        let served = tokio::select! {
            served = axum::serve(listener, service).with_graceful_shutdown(shutdown) => {
                served.map_err(StartError::Serve)
            }
            () = out_of_time => {
                tracing::warn!(
                    grace_secs = grace.as_secs(),
                    "stopping with requests still in flight after the shutdown grace"
                );
                Ok(())
            }
        };
        for task in retention.into_iter().chain(log_retention) {
            task.abort();
        }
        log_check.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        served
    }
}

/// The whole HTTP surface, assembled in one place.
pub fn router(state: AppState) -> Router {
    // A telemetry event's `endpoint` must be one of the API's route
    // templates, known once every route is in.
    let templates = telemetry::RouteTemplates::default();
    let (api, openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(accounts::routes())
        .merge(device_codes::routes())
        .merge(tokens::routes())
        .merge(oauth::routes())
        .merge(mesh::routes())
        .merge(invites::routes())
        .merge(governance::routes())
        .merge(grants::routes())
        .merge(log_api::routes())
        .merge(telemetry::routes(
            templates.clone(),
            state.settings.telemetry_batches_per_minute,
        ))
        .split_for_parts();
    templates.learn(&openapi);
    let mut openapi = openapi;
    telemetry::document_events(&mut openapi);
    let openapi = Arc::new(openapi);
    api.route(
        "/api/openapi.json",
        get(move || {
            let openapi = Arc::clone(&openapi);
            async move { Json(openapi.as_ref().clone()) }
        }),
    )
    .route("/healthz", get(probes::healthz))
    .route("/readyz", get(probes::readyz))
    .merge(crate::broker::routes())
    .merge(crate::pages::routes())
    // Unknown paths and wrong methods: JSON under /api and /oauth, an HTML
    // page (with the pages' security headers) everywhere else.
    .fallback(crate::pages::fallback::fallback)
    .method_not_allowed_fallback(crate::pages::fallback::method_not_allowed)
    .layer(middleware::from_fn(log_requests))
    .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
    .with_state(state)
}

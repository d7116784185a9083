//! Building and running the server: `App::build` binds the listener first (so tests can ask
//! for port 0 and read the real one), then `run_until` serves until the shutdown future fires,
//! finishing in-flight requests and their history before it returns.

use crate::auth::{Authenticator, LoginThrottle, SessionSettings, TrustedProxies};
use crate::clock::SharedClock;
use crate::config::{Config, MetricsListen};
use crate::credentials::Credentials;
use crate::credentials::admins::{Admins, Bootstrap};
use crate::history::{Recorder, RecorderTask};
use crate::http::{AppState, HttpLimits, Services, router};
use crate::serve::Drain;
use crate::store::{self, ConnectOptions, Db};
use crate::telemetry::metrics::Metrics;
use crate::webhooks::alerts::Alert;
use crate::webhooks::{Alerts, BurstSettings, Deliverer, Detector, SealingKey, Webhooks};
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};

pub struct App {
    listener: TcpListener,
    router: crate::http::api::Entry,
    /// `/metrics` on a listener of its own, when configured.
    metrics: Option<(TcpListener, Router)>,
    state: AppState,
    recorder: RecorderTask,
    deliverer: Deliverer,
    alerts: mpsc::Receiver<Alert>,
    retention: time::Duration,
    first_admin: Option<Bootstrap>,
}

/// Finished deliveries, dead letters and raised alerts are kept this long.
const WEBHOOK_RETENTION: time::Duration = time::Duration::days(30);

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Router(#[from] crate::http::RouterError),
    #[error("cannot create the first admin user: {0}")]
    Bootstrap(#[from] crate::credentials::admins::AdminError),
}

/// The server's listening sockets: the main one, and the metrics' own if it has one.
struct Listeners {
    main: TcpListener,
    metrics: Option<TcpListener>,
}

impl Listeners {
    async fn bind(config: &Config) -> Result<Self, StartError> {
        let main = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.listen,
                source,
            })?;
        let metrics = match config.metrics_listen {
            MetricsListen::Addr(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?,
            ),
            MetricsListen::Main | MetricsListen::Off => None,
        };
        Ok(Self { main, metrics })
    }
}

impl App {
    pub async fn build(config: &Config, clock: SharedClock) -> Result<Self, StartError> {
        let options = ConnectOptions {
            sync_full: config.sync_full,
            migrate: if config.auto_migrate {
                store::OnOpen::Apply
            } else {
                store::OnOpen::Require
            },
            watch_changes: true,
            checkpoint_in_background: true,
            ..ConnectOptions::default()
        };
        // The addresses first: a start that cannot listen leaves no new database behind.
        let listeners = Listeners::bind(config).await?;
        let db = store::connect(&config.database_url, &options).await?;
        Self::build_on(config, db, clock, listeners).await
    }

    pub async fn build_with(
        config: &Config,
        db: Db,
        clock: SharedClock,
    ) -> Result<Self, StartError> {
        let listeners = Listeners::bind(config).await?;
        Self::build_on(config, db, clock, listeners).await
    }

    async fn build_on(
        config: &Config,
        db: Db,
        clock: SharedClock,
        Listeners {
            main: listener,
            metrics: metrics_listener,
        }: Listeners,
    ) -> Result<Self, StartError> {
        let metrics = Metrics::new(config.metrics_listen);
        let admins = Admins::new(db.clone(), clock.clone());
        let first_admin = admins.bootstrap(config.admin_password.clone()).await?;
        let sessions = SessionSettings {
            idle_timeout: config.session_idle_timeout.0,
            lifetime: config.session_lifetime.0,
        };
        let throttle = LoginThrottle::new(
            config.login_failures_per_ip,
            config.login_failures_per_username,
        )
        .counted_by(metrics.login_throttled("api"));
        let auth =
            Arc::new(Authenticator::new(db.clone(), clock.clone(), sessions, throttle).await?);
        let wake = Arc::new(Notify::new());
        let key = SealingKey::resolve(config.webhook_key.as_ref(), &config.database_url);
        if let Err(error) = &key {
            tracing::warn!(%error, "webhooks cannot be added or sent until this is fixed");
        }
        let key = Arc::new(key);
        let (raise, alerts) = mpsc::channel(1024);
        let detector = Arc::new(Detector::new(
            BurstSettings {
                threshold: config.refusal_burst_threshold,
                window: config.refusal_burst_window.0,
            },
            raise,
        ));
        let (recorder, recorder_task) =
            Recorder::start(db.clone(), metrics.history_commit(), Some(detector.clone()))?;
        let deliverer = Deliverer::new(db.clone(), clock.clone(), key.clone(), wake.clone());
        let console = crate::console::ConsoleSettings {
            idle_timeout: config.console_idle_timeout.0,
            lifetime: time::Duration::hours(12),
            cookie_secure: config.cookie_secure,
            throttle: LoginThrottle::new(
                config.login_failures_per_ip,
                config.login_failures_per_username,
            )
            .counted_by(metrics.login_throttled("console")),
        };
        let state = AppState::new(Services {
            console,
            credentials: Credentials::new(db.clone(), clock.clone()),
            webhooks: Webhooks::new(db.clone(), clock.clone(), key, wake.clone()),
            alerts: Alerts::new(db.clone(), clock.clone(), wake),
            detector,
            leak_limit: crate::auth::AddressLimit::new(config.leak_reports_per_minute),
            admins,
            db,
            clock,
            auth,
            recorder,
            limits: HttpLimits {
                max_body_bytes: config.max_body_bytes,
                request_timeout: config.request_timeout(),
            },
            metrics,
        });
        let sealed_elsewhere = match state.webhooks.list().await {
            Ok(webhooks) => state.webhooks.sealed_under_another_key(&webhooks).await,
            Err(error) => Err(error),
        };
        match sealed_elsewhere {
            Ok(ids) if !ids.is_empty() => tracing::warn!(
                webhooks = ?ids.iter().map(|id| id.0).collect::<Vec<_>>(),
                "these webhooks' signing secrets do not open with the webhook key in effect (was \
                 it changed?): their deliveries fail until the key is restored or their secrets \
                 are rolled (keyward webhook roll-secret ID)"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "the webhooks' signing secrets could not be checked"
            ),
        }
        let router = router(
            state.clone(),
            TrustedProxies::new(config.trusted_proxies.clone(), config.forwarded_header),
        )?;
        let metrics = metrics_listener.map(|l| (l, crate::http::metrics_router(state.clone())));
        Ok(Self {
            listener,
            router,
            metrics,
            state,
            recorder: recorder_task,
            deliverer,
            alerts,
            retention: config.history_retention.0,
            first_admin,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Where `/metrics` is served when it has a listener of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The admin user made on this first run, with its password if it was generated.
    pub fn take_first_admin(&mut self) -> Option<Bootstrap> {
        self.first_admin.take()
    }

    /// Serves until `shutdown` resolves, then waits for open connections for as long as
    /// [`drain_limit`] allows or until `cut` resolves (a second signal), and for every call
    /// that changes something however long it takes, and writes what they left behind.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
        cut: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let follow = tokio::spawn(follow_changes(self.state.clone(), stopped.clone()));
        let (stop_alerts, alerts_stopped) = watch::channel(false);
        let upkeep = tokio::spawn(upkeep(self.state.clone(), self.retention, stopped.clone()));
        let deliverer = tokio::spawn(self.deliverer.run(stopped));
        let raiser = tokio::spawn(self.state.alerts.clone().run(self.alerts, alerts_stopped));
        let header_timeout = self.state.limits.request_timeout;
        // The metrics listener outlives the main one, so the drain can be watched.
        let metrics = self.metrics.map(|(listener, router)| {
            let mut stopped = stop.subscribe();
            tokio::spawn(crate::serve::serve(
                listener,
                router,
                header_timeout,
                async move {
                    let _ = stopped.changed().await;
                },
                Drain {
                    limit: METRICS_DRAIN,
                    cut: std::future::pending(),
                },
            ))
        });
        let drain = Drain {
            limit: drain_limit(self.state.limits.request_timeout),
            cut,
        };
        let served =
            crate::serve::serve(self.listener, self.router, header_timeout, shutdown, drain).await;
        // Connections may have been left; calls that change something never are.
        let changing = self.state.recorder.changes_done();
        tokio::pin!(changing);
        if tokio::time::timeout(Duration::from_millis(100), &mut changing)
            .await
            .is_err()
        {
            tracing::warn!(
                "waiting for the calls under way that change something to record their rows"
            );
            changing.await;
        }
        // Every request is answered; now write what they left behind.
        let _ = stop.send(true);
        let _ = upkeep.await;
        if let Some(metrics) = metrics {
            match metrics.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, "the metrics listener failed"),
                Err(error) => tracing::warn!(%error, "the metrics listener ended abnormally"),
            }
        }
        let _ = follow.await;
        // Nothing retries after this one: a failure is the operator's to hear of.
        let usage_written = flush_usage(&self.state).await;
        if !usage_written {
            tracing::error!("last use of the final seconds was not written and is lost");
        }
        self.recorder.finish().await;
        // The last history batch may have raised alerts: store them for the next start.
        let _ = stop_alerts.send(true);
        let _ = raiser.await;
        // A delivery cut short keeps its lease and goes out again after it.
        let sending = deliverer.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), deliverer)
            .await
            .is_err()
        {
            sending.abort();
            tracing::info!("stopped sending webhooks mid-delivery; they are sent again later");
        }
        let stats = self.state.recorder.stats();
        let batches = stats.batches.load(std::sync::atomic::Ordering::Relaxed);
        let rows = stats.rows.load(std::sync::atomic::Ordering::Relaxed);
        let micros = stats
            .commit_micros
            .load(std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            rows,
            batches,
            rows_per_batch = rows.checked_div(batches).unwrap_or(0),
            commit_us = micros.checked_div(batches).unwrap_or(0),
            "history written"
        );
        self.state.db.close().await;
        tracing::info!("stopped");
        served?;
        if usage_written {
            Ok(())
        } else {
            Err(std::io::Error::other(
                "last use of the final seconds could not be written",
            ))
        }
    }
}

/// Keeps the credential cache in step with the change log: at once when the store announces
/// a change (PostgreSQL's notifications), and on a timer regardless, as a safety net for a lost
/// signal (every second; more often while PostgreSQL's listener is down).
async fn follow_changes(state: AppState, mut stopped: watch::Receiver<bool>) {
    let mut failing = false;
    loop {
        let every = state.db.change_poll_interval();
        let synced = tokio::select! {
            _ = stopped.changed() => return,
            () = state.db.change_announced() => state.auth.refresh().await,
            () = tokio::time::sleep(every) => state.auth.sync().await,
        };
        match synced {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("credential sync works again");
            }
            Ok(()) => {}
            // Once, not at every poll: while the database is down every request says so too.
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(
                    error = &error as &dyn std::error::Error,
                    "credential sync failed; retrying"
                );
            }
            Err(_) => {}
        }
    }
}

/// Background work: writing last use, counting sessions for the metrics, and the hourly
/// clean-up.
async fn upkeep(state: AppState, retention: time::Duration, mut stopped: watch::Receiver<bool>) {
    let mut second = tokio::time::interval(Duration::from_secs(1));
    let mut usage = tokio::time::interval(Duration::from_secs(5));
    for timer in [&mut second, &mut usage] {
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    // The hourly clean-up follows the application's clock, so a clock moved
    // forward (in tests, or after a suspend) cleans up at once.
    let mut last_clean_up: Option<OffsetDateTime> = None;
    let mut next_count = Instant::now();
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            _ = second.tick() => {
                state.metrics.upkeep();
                let now = state.clock.now();
                if last_clean_up.is_none_or(|last| now - last >= time::Duration::HOUR) {
                    last_clean_up = Some(now);
                    clean_up(&state, now, retention).await;
                }
            }
            _ = usage.tick() => {
                flush_usage(&state).await;
                // Right after last use is written, so idle sessions are seen as such.
                let started = Instant::now();
                if started >= next_count && count_sessions(&state).await {
                    next_count = started + rest_after_count(started.elapsed());
                }
            }
        }
    }
}

/// Forgets what can never be used again: expired sessions and idempotency
/// keys, throttle entries, history past its retention, old deliveries; and raises the
/// `key.expiring` alerts.
async fn clean_up(state: &AppState, now: OffsetDateTime, retention: time::Duration) {
    state.auth.throttle().tidy();
    state.console.throttle.tidy();
    state.leak_limit.tidy();
    state.detector.tidy(now);
    if let Err(error) = state.alerts.scan_expiring().await {
        tracing::warn!(
            error = &error as &dyn std::error::Error,
            "looking for expiring keys failed"
        );
    }
    if let Err(error) = state.db.prune_webhooks(now, now - WEBHOOK_RETENTION).await {
        tracing::warn!(
            error = &error as &dyn std::error::Error,
            "pruning old webhook deliveries failed"
        );
    }
    if let Err(error) = state.db.purge_expired(now).await {
        tracing::warn!(
            error = &error as &dyn std::error::Error,
            "purging expired sessions failed"
        );
    }
    match state.db.prune_history(now - retention, &|_| {}).await {
        Ok(0) => {}
        Ok(rows) => tracing::info!(rows, "pruned API history past its retention"),
        Err(error) => tracing::warn!(
            error = &error as &dyn std::error::Error,
            "pruning history failed"
        ),
    }
}

/// Writes last use; whether it was written (if not, it is kept for the next try).
async fn flush_usage(state: &AppState) -> bool {
    let usage = state.auth.usage().take();
    match state.db.record_usage(&usage).await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "writing last use failed; will retry"
            );
            state.auth.usage().restore(usage);
            false
        }
    }
}

/// How long the active-sessions count rests after one that took `took`: until the next
/// tick, unless the count was slow (a million sessions took 180 ms); then a hundred times as
/// long as it took, so that it takes at most 1 % of the database's time, and at most 5 min.
fn rest_after_count(took: Duration) -> Duration {
    if took < Duration::from_millis(50) {
        return Duration::ZERO;
    }
    (took * 100).min(Duration::from_secs(300))
}

/// The active-sessions gauge: one count in the database, which holds for every node. Whether
/// it counted (a failed count is tried again at the next tick).
async fn count_sessions(state: &AppState) -> bool {
    if !state.metrics.is_enabled() {
        return false;
    }
    match state.db.count_active_sessions(state.clock.now()).await {
        Ok(sessions) => {
            state.metrics.set_active_sessions(sessions);
            true
        }
        Err(error) => {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "counting active sessions failed"
            );
            false
        }
    }
}

/// How long a stop waits for open connections: every call ends within `request_timeout` (its
/// answer then waits only for its history row), so a connection still open well after that
/// is a client not reading its answers.
pub fn drain_limit(request_timeout: Duration) -> Duration {
    request_timeout + Duration::from_secs(5)
}

/// The metrics listener's drain, once the calls are done: a scrape takes milliseconds.
const METRICS_DRAIN: Duration = Duration::from_secs(5);

/// The signals that stop the server: Ctrl-C (SIGINT), SIGTERM, and SIGHUP (a closed terminal or
/// ssh session; there is nothing to reload; unless it was ignored at start, as `nohup` does),
/// counted as they come. The first stops gracefully; a second SIGINT or SIGTERM stops waiting
/// for open connections, or a start-up that hangs.
pub struct StopSignals(watch::Receiver<u32>);

impl StopSignals {
    /// Starts listening; `Err` when the signal handlers cannot be installed.
    pub fn listen() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let (count, counted) = watch::channel(0u32);
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        // Under `nohup` SIGHUP is ignored, and stays so: a handler would stop the server when
        // its operator logs out.
        let mut hangup = if hangup_ignored() {
            None
        } else {
            Some(signal(SignalKind::hangup())?)
        };
        tokio::spawn(async move {
            loop {
                let hung_up = async {
                    match &mut hangup {
                        Some(hangup) => hangup.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let name = tokio::select! {
                    Some(()) = interrupt.recv() => "SIGINT",
                    Some(()) = terminate.recv() => "SIGTERM",
                    Some(()) = hung_up => "SIGHUP",
                    else => return,
                };
                let mut seen = 0;
                count.send_modify(|n| {
                    // A closing terminal may send SIGHUP twice: it stops, and never hurries.
                    if name != "SIGHUP" || *n == 0 {
                        *n += 1;
                    }
                    seen = *n;
                });
                if seen == 1 {
                    tracing::info!(
                        signal = name,
                        "shutting down: finishing in-flight requests (a second SIGINT or \
                         SIGTERM stops waiting for open connections)"
                    );
                }
            }
        });
        Ok(Self(counted))
    }

    /// Resolves once `n` signals have come.
    pub fn nth(&self, n: u32) -> impl Future<Output = ()> + Send + 'static {
        let mut counted = self.0.clone();
        async move {
            let _ = counted.wait_for(|count| *count >= n).await;
        }
    }
}

/// Whether SIGHUP was ignored when the process started (`nohup`), from the kernel's own account
/// of the process.
pub fn hangup_ignored() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let mask = status.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
            u64::from_str_radix(mask.trim(), 16).ok()
        })
        .is_some_and(|ignored| ignored & 1 == 1)
}

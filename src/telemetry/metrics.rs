//! Prometheus metrics, served as text at `/metrics`.
//!
//! Each `App` has a recorder of its own (none is installed globally), so servers in one process
//! — the tests — never mix their figures. Every label is bounded: a route template declared in
//! the OpenAPI description (or `unmatched`), a method declared for it (or `other`), an outcome
//! from the fixed set, a status class. No username, key, token, address or raw path is ever a
//! label or a value.
//!
//! The hot path does no allocation and takes no lock: a call's counter and histogram are found
//! by index in tables built at start-up, and registered with the recorder on first use only.

use crate::config::MetricsListen;
use crate::domain::history::Outcome;
use ::metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit,
};
use axum::http::Method;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub const CALLS: &str = "keyward_api_calls_total";
pub const CALL_DURATION: &str = "keyward_api_call_duration_seconds";
pub const AUTH_DURATION: &str = "keyward_auth_duration_seconds";
pub const RATE_LIMITED: &str = "keyward_rate_limited_total";
pub const LOGIN_THROTTLED: &str = "keyward_login_throttled_total";
pub const HISTORY_QUEUE: &str = "keyward_history_queue_depth";
pub const HISTORY_COMMIT: &str = "keyward_history_commit_duration_seconds";
pub const HISTORY_ROWS: &str = "keyward_history_rows_committed_total";
pub const HISTORY_BATCHES: &str = "keyward_history_batches_committed_total";
pub const HISTORY_FAILURES: &str = "keyward_history_commit_failures_total";
pub const ACTIVE_SESSIONS: &str = "keyward_active_sessions";
pub const BUILD_INFO: &str = "keyward_build_info";

/// The content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The route label of a call that matched no declared route.
pub const UNMATCHED: &str = "unmatched";
/// The method label of a method the route does not declare.
pub const OTHER_METHOD: &str = "other";

const CALL_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.000_75, 0.001, 0.002, 0.003, 0.005, 0.007_5, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const AUTH_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
    0.01, 0.05, 0.25, 1.0,
];
const COMMIT_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

const META: Metadata<'static> = Metadata::new("keyward", ::metrics::Level::INFO, None);

const OUTCOMES: usize = Outcome::ALL.len();
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// What the history writer has done, read when `/metrics` is scraped.
#[derive(Debug, Clone, Copy, Default)]
pub struct HistoryFigures {
    pub queue_depth: usize,
    pub rows: u64,
    pub batches: u64,
    pub failures: u64,
}

/// The application's metrics; cheap to clone. Switched off, every handle it gives is a no-op.
#[derive(Clone)]
pub struct Metrics(Option<Arc<Registry>>);

struct Registry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    on_main_listener: bool,
    history_queue: Gauge,
    history_rows: Counter,
    history_batches: Counter,
    history_failures: Counter,
    active_sessions: Gauge,
    rate_limited: Counter,
    auth_ok: Histogram,
    auth_refused: Histogram,
}

impl Registry {
    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels), &META)
    }

    fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels), &META)
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels), &META)
    }
}

impl Metrics {
    pub fn new(listen: MetricsListen) -> Self {
        if listen == MetricsListen::Off {
            return Self::off();
        }
        let recorder = build_recorder();
        describe(&recorder);
        let handle = recorder.handle();
        let key = |name: &'static str| Key::from_name(name);
        let result = |name: &'static str, value: &'static str| {
            Key::from_parts(name, vec![Label::from_static_parts("result", value)])
        };
        let registry = Registry {
            history_queue: recorder.register_gauge(&key(HISTORY_QUEUE), &META),
            history_rows: recorder.register_counter(&key(HISTORY_ROWS), &META),
            history_batches: recorder.register_counter(&key(HISTORY_BATCHES), &META),
            history_failures: recorder.register_counter(&key(HISTORY_FAILURES), &META),
            active_sessions: recorder.register_gauge(&key(ACTIVE_SESSIONS), &META),
            rate_limited: recorder.register_counter(&key(RATE_LIMITED), &META),
            auth_ok: recorder.register_histogram(&result(AUTH_DURATION, "ok"), &META),
            auth_refused: recorder.register_histogram(&result(AUTH_DURATION, "refused"), &META),
            on_main_listener: listen == MetricsListen::Main,
            handle,
            recorder,
        };
        registry
            .gauge(
                BUILD_INFO,
                vec![Label::from_static_parts(
                    "version",
                    env!("CARGO_PKG_VERSION"),
                )],
            )
            .set(1.0);
        Self(Some(Arc::new(registry)))
    }

    /// Measures nothing and serves nothing.
    pub fn off() -> Self {
        Self(None)
    }

    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `/metrics` belongs on the main listener.
    pub fn on_main_listener(&self) -> bool {
        self.0.as_ref().is_some_and(|r| r.on_main_listener)
    }

    /// The counter of failed logins refused by a throttle; `surface` is `api` or `console`.
    pub fn login_throttled(&self, surface: &'static str) -> Counter {
        match &self.0 {
            Some(r) => r.counter(
                LOGIN_THROTTLED,
                vec![Label::from_static_parts("surface", surface)],
            ),
            None => Counter::noop(),
        }
    }

    /// The histogram of history commits, one sample per batch.
    pub fn history_commit(&self) -> Histogram {
        match &self.0 {
            Some(r) => r.histogram(HISTORY_COMMIT, Vec::new()),
            None => Histogram::noop(),
        }
    }

    /// Times one pass through the auth checks.
    pub fn observe_auth(&self, allowed: bool, elapsed: Duration) {
        if let Some(r) = &self.0 {
            let histogram = if allowed { &r.auth_ok } else { &r.auth_refused };
            histogram.record(elapsed.as_secs_f64());
        }
    }

    /// The table of API call metrics for these routes (template and declared methods).
    pub fn calls<'a>(
        &self,
        routes: impl IntoIterator<Item = (&'a str, Vec<Method>)>,
    ) -> CallMetrics {
        match &self.0 {
            Some(r) => CallMetrics::new(r.clone(), routes),
            None => CallMetrics::off(),
        }
    }

    pub fn set_active_sessions(&self, sessions: u64) {
        if let Some(r) = &self.0 {
            r.active_sessions.set(sessions as f64);
        }
    }

    /// Folds recorded samples into their histograms, so memory stays flat between scrapes.
    pub fn upkeep(&self) {
        if let Some(r) = &self.0 {
            r.handle.run_upkeep();
        }
    }

    /// The scrape, in the Prometheus text format; `None` when metrics are off.
    pub fn render(&self, history: HistoryFigures) -> Option<String> {
        let r = self.0.as_ref()?;
        r.history_queue.set(history.queue_depth as f64);
        r.history_rows.absolute(history.rows);
        r.history_batches.absolute(history.batches);
        r.history_failures.absolute(history.failures);
        Some(r.handle.render())
    }
}

fn build_recorder() -> PrometheusRecorder {
    let buckets = [
        (CALL_DURATION, CALL_BUCKETS),
        (AUTH_DURATION, AUTH_BUCKETS),
        (HISTORY_COMMIT, COMMIT_BUCKETS),
    ];
    let builder =
        buckets
            .into_iter()
            .try_fold(PrometheusBuilder::new(), |builder, (name, values)| {
                builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), values)
            });
    match builder {
        Ok(builder) => builder.build_recorder(),
        // Only empty bucket lists are refused, and ours are constants; summaries would do.
        Err(error) => {
            tracing::error!(%error, "histogram buckets refused; exporting summaries");
            PrometheusBuilder::new().build_recorder()
        }
    }
}

fn describe(recorder: &PrometheusRecorder) {
    let seconds = Some(Unit::Seconds);
    let all: [(&'static str, Option<Unit>, &'static str); 12] = [
        (
            CALLS,
            None,
            "API calls by route template, method, outcome (ok or the refusal reason) and status class",
        ),
        (
            CALL_DURATION,
            seconds,
            "Time from receiving an API call to its answer, history commit included",
        ),
        (
            AUTH_DURATION,
            seconds,
            "Time spent in the auth pipeline (credentials, status, IP, scope, rate limit)",
        ),
        (
            RATE_LIMITED,
            None,
            "API calls refused for being over their user's rate limit",
        ),
        (
            LOGIN_THROTTLED,
            None,
            "Login attempts refused because of earlier failed logins from the address or for the username",
        ),
        (
            HISTORY_QUEUE,
            None,
            "History rows handed to the writer and not yet committed",
        ),
        (
            HISTORY_COMMIT,
            seconds,
            "Time to commit one batch of history rows",
        ),
        (HISTORY_ROWS, None, "History rows committed"),
        (HISTORY_BATCHES, None, "History batches committed"),
        (
            HISTORY_FAILURES,
            None,
            "History batches that could not be committed (their calls were answered 503)",
        ),
        (
            ACTIVE_SESSIONS,
            None,
            "Open API sessions, counted in the database every few seconds",
        ),
        (BUILD_INFO, None, "The running version of Keyward"),
    ];
    for (name, unit, help) in all {
        let (name, help) = (KeyName::from_const_str(name), SharedString::const_str(help));
        if name.as_str().ends_with("_total") {
            recorder.describe_counter(name, unit, help);
        } else if unit.is_some() {
            recorder.describe_histogram(name, unit, help);
        } else {
            recorder.describe_gauge(name, unit, help);
        }
    }
}

/// A route and method, as the labels of a call's metrics.
#[derive(Debug, Clone, Copy)]
pub struct Target(usize);

struct RouteSlots {
    methods: Vec<(Method, usize)>,
    other: usize,
}

/// Calls and their durations by route and method, and calls by outcome and status class.
pub struct CallMetrics {
    registry: Option<Arc<Registry>>,
    routes: HashMap<Box<str>, RouteSlots>,
    unmatched: RouteSlots,
    /// Route and method labels of each target.
    targets: Vec<(Box<str>, &'static str)>,
    /// Per target × outcome × status class.
    calls: Box<[OnceLock<Counter>]>,
    /// Per target.
    durations: Box<[OnceLock<Histogram>]>,
}

/// Methods an unmatched path is counted under; any other is `other`.
const COMMON_METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

impl CallMetrics {
    fn new<'a>(
        registry: Arc<Registry>,
        routes: impl IntoIterator<Item = (&'a str, Vec<Method>)>,
    ) -> Self {
        let mut targets = Vec::new();
        let mut slots = |route: &str, methods: Vec<Method>| {
            let mut declared = Vec::with_capacity(methods.len() + 1);
            for method in methods {
                declared.push((method.clone(), targets.len()));
                targets.push((Box::from(route), method_label(&method)));
            }
            let other = targets.len();
            targets.push((Box::from(route), OTHER_METHOD));
            RouteSlots {
                methods: declared,
                other,
            }
        };
        let mut table = HashMap::new();
        for (route, mut methods) in routes {
            // axum answers HEAD with the GET handler.
            if methods.contains(&Method::GET) && !methods.contains(&Method::HEAD) {
                methods.push(Method::HEAD);
            }
            let route_slots = slots(route, methods);
            table.insert(Box::from(route), route_slots);
        }
        let unmatched = slots(UNMATCHED, COMMON_METHODS.to_vec());
        let cells = targets.len() * OUTCOMES * CLASSES.len();
        Self {
            calls: (0..cells).map(|_| OnceLock::new()).collect(),
            durations: (0..targets.len()).map(|_| OnceLock::new()).collect(),
            registry: Some(registry),
            routes: table,
            unmatched,
            targets,
        }
    }

    fn off() -> Self {
        Self {
            registry: None,
            routes: HashMap::new(),
            unmatched: RouteSlots {
                methods: Vec::new(),
                other: 0,
            },
            targets: Vec::new(),
            calls: Box::new([]),
            durations: Box::new([]),
        }
    }

    /// The labels a call of `method` on `route` (a template, `None` when none matched) counts under.
    pub fn target(&self, route: Option<&str>, method: &Method) -> Target {
        let slots = route
            .and_then(|route| self.routes.get(route))
            .unwrap_or(&self.unmatched);
        let index = slots
            .methods
            .iter()
            .find(|(m, _)| m == method)
            .map_or(slots.other, |(_, index)| *index);
        Target(index)
    }

    /// Counts one answered (or abandoned) call.
    pub fn record(&self, target: Target, outcome: Outcome, status: u16, elapsed: Duration) {
        let Some(registry) = &self.registry else {
            return;
        };
        let Some((route, method)) = self.targets.get(target.0) else {
            return;
        };
        let method: &'static str = method;
        let class = usize::from(status / 100).clamp(1, CLASSES.len()) - 1;
        let cell = (target.0 * OUTCOMES + outcome as usize) * CLASSES.len() + class;
        let labels = || {
            vec![
                Label::new("route", route.to_string()),
                Label::from_static_parts("method", method),
            ]
        };
        if let Some(counter) = self.calls.get(cell) {
            counter
                .get_or_init(|| {
                    let mut labels = labels();
                    labels.push(Label::from_static_parts("outcome", outcome.as_str()));
                    labels.push(Label::from_static_parts("status_class", CLASSES[class]));
                    registry.counter(CALLS, labels)
                })
                .increment(1);
        }
        if let Some(histogram) = self.durations.get(target.0) {
            histogram
                .get_or_init(|| registry.histogram(CALL_DURATION, labels()))
                .record(elapsed.as_secs_f64());
        }
        if outcome == Outcome::RateLimited {
            registry.rate_limited.increment(1);
        }
    }
}

fn method_label(method: &Method) -> &'static str {
    COMMON_METHODS
        .iter()
        .find(|m| *m == method)
        .map_or(OTHER_METHOD, |m| match *m {
            Method::GET => "GET",
            Method::HEAD => "HEAD",
            Method::POST => "POST",
            Method::PUT => "PUT",
            Method::PATCH => "PATCH",
            Method::DELETE => "DELETE",
            _ => "OPTIONS",
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(metrics: &Metrics) -> String {
        metrics.render(HistoryFigures::default()).expect("enabled")
    }

    #[test]
    fn calls_count_under_their_route_template_method_outcome_and_class() {
        let metrics = Metrics::new(MetricsListen::Main);
        let calls = metrics.calls([("/api/v1/products/{id}", vec![Method::GET, Method::PATCH])]);
        let show = calls.target(Some("/api/v1/products/{id}"), &Method::GET);
        calls.record(show, Outcome::Ok, 200, Duration::from_millis(2));
        calls.record(show, Outcome::Ok, 200, Duration::from_millis(3));
        calls.record(show, Outcome::InsufficientScope, 403, Duration::ZERO);
        let text = scrape(&metrics);
        assert!(
            text.contains(
                "keyward_api_calls_total{route=\"/api/v1/products/{id}\",method=\"GET\",outcome=\"ok\",status_class=\"2xx\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains("outcome=\"insufficient_scope\",status_class=\"4xx\"} 1"));
        assert!(text.contains(
            "keyward_api_call_duration_seconds_count{route=\"/api/v1/products/{id}\",method=\"GET\"} 3"
        ));
    }

    #[test]
    fn paths_and_methods_nobody_declared_share_bounded_labels() {
        let metrics = Metrics::new(MetricsListen::Main);
        let calls = metrics.calls([("/api/v1/me", vec![Method::GET])]);
        let raw = calls.target(Some("/api/v1/kw_secret"), &Method::GET);
        calls.record(raw, Outcome::NotFound, 404, Duration::ZERO);
        let odd = calls.target(None, &Method::from_bytes(b"BREW").expect("method"));
        calls.record(odd, Outcome::NotFound, 405, Duration::ZERO);
        let head = calls.target(Some("/api/v1/me"), &Method::HEAD);
        calls.record(head, Outcome::Ok, 200, Duration::ZERO);
        let text = scrape(&metrics);
        assert!(!text.contains("kw_secret"), "{text}");
        assert!(!text.contains("BREW"), "{text}");
        assert!(text.contains("route=\"unmatched\",method=\"GET\",outcome=\"not_found\""));
        assert!(text.contains("route=\"unmatched\",method=\"other\",outcome=\"not_found\""));
        assert!(text.contains("route=\"/api/v1/me\",method=\"HEAD\",outcome=\"ok\""));
    }

    #[test]
    fn rate_limited_calls_have_a_counter_of_their_own() {
        let metrics = Metrics::new(MetricsListen::Main);
        let calls = metrics.calls([("/api/v1/me", vec![Method::GET])]);
        let me = calls.target(Some("/api/v1/me"), &Method::GET);
        calls.record(me, Outcome::RateLimited, 429, Duration::ZERO);
        assert!(scrape(&metrics).contains("keyward_rate_limited_total 1"));
    }

    #[test]
    fn switched_off_nothing_is_kept_or_served() {
        let metrics = Metrics::new(MetricsListen::Off);
        let calls = metrics.calls([("/api/v1/me", vec![Method::GET])]);
        let me = calls.target(Some("/api/v1/me"), &Method::GET);
        calls.record(me, Outcome::Ok, 200, Duration::ZERO);
        assert!(metrics.render(HistoryFigures::default()).is_none());
        assert!(!metrics.on_main_listener());
    }

    #[test]
    fn every_outcome_and_status_has_a_cell() {
        let metrics = Metrics::new(MetricsListen::Main);
        let calls = metrics.calls([("/api/v1/me", vec![Method::GET])]);
        let me = calls.target(Some("/api/v1/me"), &Method::GET);
        for outcome in Outcome::ALL {
            for status in [0, 100, 200, 302, 499, 503, 999, u16::MAX] {
                calls.record(me, outcome, status, Duration::MAX);
            }
        }
        assert!(scrape(&metrics).contains("outcome=\"error\",status_class=\"5xx\"} 3"));
    }
}

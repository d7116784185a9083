//! Noticing bursts of refusals and addresses not on the list, from the history rows the
//! writer has just committed: in memory, off the requests' path, with no query of its own.
//! What it notices goes to `Alerts` through a bounded channel.
//!
//! Each node counts the calls it served. On a cluster a burst spread evenly over N nodes
//! needs N times the threshold before one of them notices; the database claim keeps the
//! alert to one per window whichever node raises it.

use super::alerts::{Alert, IP_ALERT_QUIET, Refusal};
use crate::domain::history::{HistoryEntry, Outcome};
use crate::domain::ids::ApiUserId;
use crate::history::CallObserver;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use time::{Duration, OffsetDateTime};
use tokio::sync::mpsc;

/// Past this many users or addresses a map is emptied rather than grown.
const MAX_ENTRIES: usize = 100_000;

/// When refusals make a burst: `threshold` refusals for one API user within `window`.
#[derive(Debug, Clone, Copy)]
pub struct BurstSettings {
    pub threshold: u32,
    pub window: Duration,
}

#[derive(Default)]
struct Burst {
    /// The latest refusals, at most `threshold`, oldest first.
    recent: VecDeque<Refusal>,
    alerted_at: Option<OffsetDateTime>,
}

#[derive(Default)]
struct Seen {
    bursts: HashMap<ApiUserId, Burst>,
    /// When each (user, address) was last alerted.
    addresses: HashMap<(ApiUserId, String), OffsetDateTime>,
}

pub struct Detector {
    settings: BurstSettings,
    seen: Mutex<Seen>,
    alerts: mpsc::Sender<Alert>,
}

impl Detector {
    pub fn new(settings: BurstSettings, alerts: mpsc::Sender<Alert>) -> Self {
        Self {
            settings,
            seen: Mutex::default(),
            alerts,
        }
    }

    /// Forgets what can no longer make an alert.
    pub fn tidy(&self, now: OffsetDateTime) {
        let window = self.settings.window;
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        seen.bursts.retain(|_, burst| {
            burst.recent.back().is_some_and(|r| now - r.at < window)
                || burst.alerted_at.is_some_and(|t| now - t < window)
        });
        seen.addresses.retain(|_, at| now - *at < IP_ALERT_QUIET);
    }

    fn burst(
        &self,
        seen: &mut Seen,
        user: ApiUserId,
        username: &str,
        refusal: Refusal,
    ) -> Option<Alert> {
        let BurstSettings { threshold, window } = self.settings;
        if seen.bursts.len() >= MAX_ENTRIES && !seen.bursts.contains_key(&user) {
            seen.bursts.clear();
        }
        let burst = seen.bursts.entry(user).or_default();
        let at = refusal.at;
        burst.recent.push_back(refusal);
        while burst.recent.len() > threshold as usize
            || burst.recent.front().is_some_and(|r| at - r.at >= window)
        {
            burst.recent.pop_front();
        }
        let quiet = burst.alerted_at.is_some_and(|t| at - t < window);
        if burst.recent.len() < threshold as usize || quiet {
            return None;
        }
        burst.alerted_at = Some(at);
        Some(Alert::RefusalsBurst {
            api_user_id: user,
            username: username.to_owned(),
            refusals: burst.recent.iter().cloned().collect(),
            window,
        })
    }

    fn address(
        seen: &mut Seen,
        user: ApiUserId,
        username: &str,
        ip: &str,
        at: OffsetDateTime,
    ) -> Option<Alert> {
        if seen.addresses.len() >= MAX_ENTRIES {
            seen.addresses.clear();
        }
        let key = (user, ip.to_owned());
        if seen
            .addresses
            .get(&key)
            .is_some_and(|t| at - *t < IP_ALERT_QUIET)
        {
            return None;
        }
        seen.addresses.insert(key, at);
        Some(Alert::IpNotAllowed {
            api_user_id: user,
            username: username.to_owned(),
            ip: ip.to_owned(),
            at,
        })
    }
}

impl CallObserver for Detector {
    fn observe(&self, rows: &[HistoryEntry]) {
        let mut raised = Vec::new();
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            for row in rows {
                let (Some(user), true) = (row.api_user_id, row.outcome.is_auth_refusal()) else {
                    continue;
                };
                let username = row.username.as_deref().unwrap_or_default();
                let refusal = Refusal {
                    at: row.date_added,
                    outcome: row.outcome,
                    ip: row.ip.clone(),
                };
                raised.extend(self.burst(&mut seen, user, username, refusal));
                if row.outcome == Outcome::IpNotAllowed {
                    raised.extend(Self::address(
                        &mut seen,
                        user,
                        username,
                        &row.ip,
                        row.date_added,
                    ));
                }
            }
        }
        for alert in raised {
            if self.alerts.try_send(alert).is_err() {
                tracing::warn!("too many alerts at once: one was dropped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn row(user: i64, outcome: Outcome, ip: &str, at: OffsetDateTime) -> HistoryEntry {
        HistoryEntry {
            api_user_id: Some(ApiUserId(user)),
            username: Some(Arc::from("erp")),
            key_hint: None,
            session_id: None,
            call: "GET /api/v1/me".into(),
            ip: ip.into(),
            status: 403,
            outcome,
            date_added: at,
            date_modified: at,
            request_id: String::new(),
            refused_status: 401,
        }
    }

    fn detector() -> (Detector, mpsc::Receiver<Alert>) {
        let (tx, rx) = mpsc::channel(100);
        let settings = BurstSettings {
            threshold: 3,
            window: Duration::minutes(5),
        };
        (Detector::new(settings, tx), rx)
    }

    fn drain(rx: &mut mpsc::Receiver<Alert>) -> Vec<Alert> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn a_burst_alerts_once_per_window() {
        let (detector, mut rx) = detector();
        let t0 = OffsetDateTime::now_utc();
        let refused = |n: i64, at: OffsetDateTime| -> Vec<HistoryEntry> {
            (0..n)
                .map(|i| {
                    row(
                        1,
                        Outcome::WrongKey,
                        "203.0.113.1",
                        at + Duration::seconds(i),
                    )
                })
                .collect()
        };
        detector.observe(&refused(2, t0));
        assert!(drain(&mut rx).is_empty(), "below the threshold");
        detector.observe(&refused(1, t0 + Duration::seconds(10)));
        assert!(
            matches!(drain(&mut rx).as_slice(), [Alert::RefusalsBurst { refusals, .. }] if refusals.len() == 3)
        );
        detector.observe(&refused(10, t0 + Duration::seconds(20)));
        assert!(drain(&mut rx).is_empty(), "one alert per window");
        detector.observe(&refused(3, t0 + Duration::minutes(6)));
        assert_eq!(drain(&mut rx).len(), 1, "the next window alerts again");
    }

    #[test]
    fn refusals_spread_thinner_than_the_window_never_alert() {
        let (detector, mut rx) = detector();
        let t0 = OffsetDateTime::now_utc();
        for i in 0..10 {
            detector.observe(&[row(
                1,
                Outcome::WrongKey,
                "203.0.113.1",
                t0 + Duration::minutes(3 * i),
            )]);
        }
        assert!(drain(&mut rx).is_empty());
        let ok = HistoryEntry {
            outcome: Outcome::Ok,
            ..row(1, Outcome::Ok, "203.0.113.1", t0)
        };
        detector.observe(&[ok.clone(), ok.clone(), ok]);
        assert!(drain(&mut rx).is_empty(), "answered calls are no refusals");
    }

    #[test]
    fn an_address_not_on_the_list_alerts_once_an_hour_per_user() {
        let (detector, mut rx) = detector();
        let t0 = OffsetDateTime::now_utc();
        detector.observe(&[row(1, Outcome::IpNotAllowed, "198.51.100.7", t0)]);
        detector.observe(&[row(
            1,
            Outcome::IpNotAllowed,
            "198.51.100.7",
            t0 + Duration::minutes(30),
        )]);
        detector.observe(&[row(
            2,
            Outcome::IpNotAllowed,
            "198.51.100.7",
            t0 + Duration::minutes(31),
        )]);
        let alerts = drain(&mut rx);
        assert_eq!(
            alerts
                .iter()
                .filter(|a| matches!(a, Alert::IpNotAllowed { .. }))
                .count(),
            2
        );
        detector.observe(&[row(
            1,
            Outcome::IpNotAllowed,
            "198.51.100.7",
            t0 + Duration::minutes(61),
        )]);
        let again = drain(&mut rx);
        assert_eq!(
            again
                .iter()
                .filter(|a| matches!(a, Alert::IpNotAllowed { .. }))
                .count(),
            1
        );
        detector.tidy(t0 + Duration::hours(3));
        assert!(detector.seen.lock().expect("lock").addresses.is_empty());
    }
}

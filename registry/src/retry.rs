//! Retries of transient failures: transport errors and the statuses a busy or
//! restarting registry answers (429, 500, 502, 503, 504), with exponential backoff.

use std::time::Duration;

use reqwest::Response;
use reqwest::header::RETRY_AFTER;

use crate::error::ErrorKind;

/// How often and how patiently a request that failed transiently is tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included; 1 disables retries.
    pub attempts: u32,
    /// The wait before the second try; it doubles for each further one.
    pub base_delay: Duration,
    /// The longest wait, also for a server's Retry-After.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try `attempt` (1-based): the server's hint when it
    /// gave one, else the backoff, capped either way.
    fn delay(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        let backoff = self.base_delay.saturating_mul(1 << (attempt - 1).min(16));
        hint.unwrap_or(backoff).min(self.max_delay)
    }
}

/// The tries of one operation: `Err(e)` → [`Backoff::wait`] → try again.
pub(crate) struct Backoff<'a> {
    policy: &'a RetryPolicy,
    attempt: u32,
}

impl<'a> Backoff<'a> {
    pub(crate) fn new(policy: &'a RetryPolicy) -> Self {
        Self { policy, attempt: 1 }
    }

    /// Sleeps before the next try when `err` is transient and tries remain;
    /// otherwise returns the error to report, saying how many tries it took.
    pub(crate) async fn wait(&mut self, err: ErrorKind, what: &str) -> Result<(), ErrorKind> {
        // A permanent error is returned as it is, so callers can still match it.
        let Some(hint) = transient(&err) else {
            return Err(err);
        };
        if self.attempt >= self.policy.attempts.max(1) {
            return Err(self.give_up(err));
        }
        let delay = self.policy.delay(self.attempt, hint);
        tracing::warn!(
            attempt = self.attempt,
            "{what}: {err}; retrying in {}ms",
            delay.as_millis()
        );
        tokio::time::sleep(delay).await;
        self.attempt += 1;
        Ok(())
    }

    fn give_up(&self, err: ErrorKind) -> ErrorKind {
        if self.attempt == 1 {
            return err;
        }
        ErrorKind::Attempts {
            attempts: self.attempt,
            last: Box::new(err),
        }
    }
}

/// `Some(server's hint)` when `err` is worth another try.
fn transient(err: &ErrorKind) -> Option<Option<Duration>> {
    match err {
        ErrorKind::Http { .. } => Some(None),
        ErrorKind::Status {
            status: 429 | 500 | 502 | 503 | 504,
            retry_after,
            ..
        } => Some(*retry_after),
        _ => None,
    }
}

/// A Retry-After of delay-seconds (the HTTP-date form is rare from registries and
/// is ignored: the backoff applies).
pub(crate) fn retry_after(resp: &Response) -> Option<Duration> {
    resp.headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_and_are_capped() {
        let p = RetryPolicy {
            attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let ms = |a, h| p.delay(a, h).as_millis();
        assert_eq!([ms(1, None), ms(2, None), ms(3, None)], [100, 200, 400]);
        assert_eq!(ms(5, None), 1000);
        assert_eq!(ms(40, None), 1000);
        assert_eq!(ms(1, Some(Duration::from_millis(700))), 700);
        assert_eq!(ms(1, Some(Duration::from_secs(120))), 1000);
    }

    fn status(status: u16) -> ErrorKind {
        ErrorKind::Status {
            what: "layer x".into(),
            url: "http://r/v2/".into(),
            status,
            detail: String::new(),
            retry_after: None,
        }
    }

    #[tokio::test]
    async fn only_transient_errors_are_retried_and_the_count_is_reported() {
        let p = RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(1),
        };
        let mut b = Backoff::new(&p);
        let err = b.wait(status(400), "x").await.unwrap_err();
        assert!(
            matches!(err, ErrorKind::Status { status: 400, .. }),
            "{err}"
        );

        let mut b = Backoff::new(&p);
        b.wait(status(503), "x").await.unwrap();
        b.wait(status(429), "x").await.unwrap();
        let err = b.wait(status(502), "x").await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "layer x: http://r/v2/ answered 502 (after 3 attempts)"
        );

        // A permanent error after a transient one stays matchable.
        let mut b = Backoff::new(&p);
        b.wait(status(500), "x").await.unwrap();
        let err = b.wait(status(404), "x").await.unwrap_err();
        assert!(
            matches!(err, ErrorKind::Status { status: 404, .. }),
            "{err}"
        );

        let single = RetryPolicy {
            attempts: 1,
            ..p.clone()
        };
        let err = Backoff::new(&single)
            .wait(status(503), "x")
            .await
            .unwrap_err();
        assert!(
            matches!(err, ErrorKind::Status { status: 503, .. }),
            "{err}"
        );
    }
}

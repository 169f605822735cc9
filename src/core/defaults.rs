//! The binary's defaults, defined once: the engine's settings and the configuration both
//! start from here, and the README's configuration table is checked against it.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// `MAX_CONCURRENCY`.
    pub max_concurrency: usize,
    /// `DEADLINE_SAFETY_MS`.
    pub deadline_safety: Duration,
    /// `SEND_ATTEMPT_TIMEOUT_MS`.
    pub send_attempt_timeout: Duration,
    /// `MESSAGE_TTL_SECONDS`.
    pub message_ttl: Duration,
    /// `SEND_MAX_ATTEMPTS`.
    pub max_attempts: u32,
    /// `CIRCUIT_BREAKER_THRESHOLD`.
    pub breaker_threshold: u32,
    /// `CIRCUIT_BREAKER_OPEN_SECONDS`.
    pub breaker_open_for: Duration,
    /// The longest the breaker stays open: the backoff's cap.
    pub breaker_max_open: Duration,
    /// The longest wait before the first retry in place (full jitter), doubling after that.
    pub retry_base: Duration,
    /// `METRICS_NAMESPACE`.
    pub metrics_namespace: &'static str,
    /// `RETRY_BACKOFF_MAX_SECONDS` when backoff is on and it is not set.
    pub backoff_max_seconds: u32,
    /// `IDEMPOTENCY_TTL_SECONDS`: 14 days, SQS's longest retention, so an entry outlives
    /// every redelivery of its message.
    pub idempotency_ttl: Duration,
}

pub const DEFAULTS: Defaults = Defaults {
    max_concurrency: 10,
    deadline_safety: Duration::from_millis(1_000),
    send_attempt_timeout: Duration::from_millis(5_000),
    message_ttl: Duration::from_secs(3_600),
    max_attempts: 3,
    breaker_threshold: 5,
    breaker_open_for: Duration::from_secs(30),
    breaker_max_open: Duration::from_secs(900),
    retry_base: Duration::from_millis(250),
    metrics_namespace: "VoiceDispatch",
    backoff_max_seconds: 900,
    idempotency_ttl: Duration::from_secs(1_209_600),
};

//! Redial's settings: `REDIAL_ON` (after which statuses; empty, the default, is off),
//! `REDIAL_MAX_CALLS` (calls in all, at most 5), `REDIAL_INTERVAL_SECONDS` (from a call's
//! final event to the next call) and `CALL_QUEUE_URL` (where the status path puts a redial).
//! Redial needs the ledger (the body and each call's key), delivery outcomes (the status
//! path that sees the final events) and a standard call queue.

use std::time::Duration;

use super::{outcomes::OUTCOME_EVENT_BUS_NAME, queue_url, ranged, seconds, ConfigError};
use super::{IDEMPOTENCY_TABLE_NAME, MESSAGE_TTL_SECONDS};
use crate::core::redial::{RedialOn, RedialPolicy, DEFAULT_INTERVAL, MAX_CALLS};

pub const REDIAL_ON: &str = "REDIAL_ON";
pub const REDIAL_MAX_CALLS: &str = "REDIAL_MAX_CALLS";
pub const REDIAL_INTERVAL_SECONDS: &str = "REDIAL_INTERVAL_SECONDS";
pub const CALL_QUEUE_URL: &str = "CALL_QUEUE_URL";

/// The template's bound on `RedialIntervalSeconds` (a body's longest time to live).
const MAX_INTERVAL_SECONDS: u32 = 259_200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedialConfig {
    /// The function's policy: a message's `Redial` overrides it.
    pub defaults: RedialPolicy,
    /// The call queue; `None`: no redial, whatever a message asks.
    pub call_queue_url: Option<String>,
}

impl RedialConfig {
    /// The policy the call path keeps requests under, when it can redial at all.
    pub fn available(&self) -> Option<&RedialPolicy> {
        self.call_queue_url.as_ref().map(|_| &self.defaults)
    }
}

/// Reads the four variables; `message_ttl` bounds the interval.
pub(super) fn read_redial(
    get: &impl Fn(&str) -> Option<String>,
    message_ttl: Duration,
) -> Result<RedialConfig, ConfigError> {
    let on = read_on(get(REDIAL_ON).as_deref().unwrap_or_default())?;
    let max_calls = ranged(
        REDIAL_MAX_CALLS,
        get(REDIAL_MAX_CALLS),
        1..=u64::from(MAX_CALLS),
        1,
    )? as u8;
    // Bounded by the time to live only when redial is on: the template passes its default
    // interval (120 s) whatever the time to live, which may be as short as 5 s.
    let longest = if on.is_empty() {
        MAX_INTERVAL_SECONDS
    } else {
        u32::try_from(message_ttl.as_secs()).unwrap_or(u32::MAX)
    };
    let interval = seconds(
        REDIAL_INTERVAL_SECONDS,
        get(REDIAL_INTERVAL_SECONDS),
        1..=longest,
        DEFAULT_INTERVAL.min(message_ttl),
    )
    .map_err(|error| ConfigError {
        problem: format!(
            "{} (at most {MESSAGE_TTL_SECONDS}: no call starts past the time to live)",
            error.problem
        ),
        ..error
    })?;
    let call_queue_url = get(CALL_QUEUE_URL)
        .map(|url| queue_url(CALL_QUEUE_URL, url.trim()))
        .transpose()?;
    check_needs(get, &on, call_queue_url.as_deref())?;
    Ok(RedialConfig {
        defaults: RedialPolicy {
            on,
            max_calls,
            interval,
        },
        call_queue_url,
    })
}

/// Redial needs the ledger, outcomes and a standard call queue.
fn check_needs(
    get: &impl Fn(&str) -> Option<String>,
    on: &[RedialOn],
    call_queue_url: Option<&str>,
) -> Result<(), ConfigError> {
    let needs = |what: &str, why: &str| {
        Err(ConfigError {
            variable: REDIAL_ON,
            problem: format!("needs {what}: {why}"),
        })
    };
    if call_queue_url.is_some_and(|url| url.ends_with(".fifo")) {
        return Err(ConfigError {
            variable: CALL_QUEUE_URL,
            problem: "redial cannot use a FIFO queue: a redial kept until its time would hold its whole message group".into(),
        });
    }
    let available = call_queue_url.is_some() || !on.is_empty();
    if available && get(IDEMPOTENCY_TABLE_NAME).is_none() {
        return needs(
            IDEMPOTENCY_TABLE_NAME,
            "each call's key and the body a redial needs are kept in the ledger",
        );
    }
    if available && get(OUTCOME_EVENT_BUS_NAME).is_none() {
        return needs(
            OUTCOME_EVENT_BUS_NAME,
            "the status path that sees each call's final event makes the redial",
        );
    }
    if !on.is_empty() && call_queue_url.is_none() {
        return needs(CALL_QUEUE_URL, "the queue a redial is put back on");
    }
    Ok(())
}

fn read_on(raw: &str) -> Result<Vec<RedialOn>, ConfigError> {
    let mut on = Vec::new();
    for word in raw
        .split(',')
        .map(str::trim)
        .filter(|word| !word.is_empty())
    {
        let parsed = RedialOn::parse(word).ok_or_else(|| ConfigError {
            variable: REDIAL_ON,
            problem: "expected a comma list of BUSY, NO_ANSWER, FAILED (empty: off)".into(),
        })?;
        if !on.contains(&parsed) {
            on.push(parsed);
        }
    }
    Ok(on)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::outcomes::STATUS_QUEUE_URL;
    use crate::config::tests::config;
    use crate::config::{DEAD_LETTER_QUEUE_URL, IDEMPOTENCY_TTL_SECONDS};

    const CALLS: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/calls";

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let on = [
            (OUTCOME_EVENT_BUS_NAME, "outcomes"),
            (
                STATUS_QUEUE_URL,
                "https://sqs.us-east-1.amazonaws.com/123456789012/status",
            ),
            (IDEMPOTENCY_TABLE_NAME, "ledger"),
            (IDEMPOTENCY_TTL_SECONDS, "86400"),
            (
                DEAD_LETTER_QUEUE_URL,
                "https://sqs.us-east-1.amazonaws.com/123456789012/dlq",
            ),
            (CALL_QUEUE_URL, CALLS),
        ];
        let mut vars: Vec<_> = on
            .into_iter()
            .filter(|(name, _)| !extra.iter().any(|(n, _)| n == name))
            .collect();
        vars.extend(extra.iter().filter(|(_, value)| !value.is_empty()));
        vars
    }

    #[test]
    fn redial_is_off_by_default_and_reads_its_policy() {
        let off = config(&[]).unwrap();
        assert_eq!(off.redial.available(), None);
        assert_eq!(off.redial.defaults, RedialPolicy::default());
        let on = config(&with(&[
            (REDIAL_ON, "BUSY, NO_ANSWER,BUSY"),
            (REDIAL_MAX_CALLS, "3"),
            (REDIAL_INTERVAL_SECONDS, "300"),
        ]))
        .unwrap();
        assert_eq!(
            on.redial.available(),
            Some(&RedialPolicy {
                on: vec![RedialOn::Busy, RedialOn::NoAnswer],
                max_calls: 3,
                interval: Duration::from_secs(300),
            })
        );
    }

    #[test]
    fn every_value_the_template_accepts_reads_and_nothing_past_it() {
        for calls in ["1", "5"] {
            assert!(config(&with(&[(REDIAL_ON, "FAILED"), (REDIAL_MAX_CALLS, calls)])).is_ok());
        }
        for calls in ["0", "6"] {
            let refused = config(&with(&[(REDIAL_MAX_CALLS, calls)])).unwrap_err();
            assert_eq!(refused.variable, REDIAL_MAX_CALLS);
        }
        // Up to the time to live (MESSAGE_TTL_SECONDS, 3600 by default), not past it.
        assert!(config(&with(&[
            (REDIAL_ON, "BUSY"),
            (REDIAL_INTERVAL_SECONDS, "3600")
        ]))
        .is_ok());
        let past = config(&with(&[
            (REDIAL_ON, "BUSY"),
            (REDIAL_INTERVAL_SECONDS, "3601"),
        ]))
        .unwrap_err();
        assert_eq!(past.variable, REDIAL_INTERVAL_SECONDS);
        assert!(past.problem.contains(MESSAGE_TTL_SECONDS), "{past}");
        // Redial off: the template's default interval reads whatever the time to live.
        assert!(config(&with(&[
            (MESSAGE_TTL_SECONDS, "60"),
            (REDIAL_INTERVAL_SECONDS, "120")
        ]))
        .is_ok());
        let short = config(&with(&[
            (REDIAL_ON, "BUSY"),
            (MESSAGE_TTL_SECONDS, "60"),
            (REDIAL_INTERVAL_SECONDS, "120"),
        ]))
        .unwrap_err();
        assert_eq!(short.variable, REDIAL_INTERVAL_SECONDS);
        let word = config(&with(&[(REDIAL_ON, "RINGING")])).unwrap_err();
        assert_eq!(word.variable, REDIAL_ON);
    }

    #[test]
    fn init_refuses_redial_without_the_ledger_outcomes_or_a_standard_call_queue() {
        let no_ledger = config(&[(REDIAL_ON, "BUSY")]).unwrap_err();
        assert_eq!(no_ledger.variable, REDIAL_ON);
        assert!(
            no_ledger.problem.contains(IDEMPOTENCY_TABLE_NAME),
            "{no_ledger}"
        );
        let no_outcomes = config(&[
            (REDIAL_ON, "BUSY"),
            (IDEMPOTENCY_TABLE_NAME, "ledger"),
            (CALL_QUEUE_URL, CALLS),
        ])
        .unwrap_err();
        assert!(
            no_outcomes.problem.contains(OUTCOME_EVENT_BUS_NAME),
            "{no_outcomes}"
        );
        let no_queue = config(&with(&[(REDIAL_ON, "BUSY"), (CALL_QUEUE_URL, "")])).unwrap_err();
        assert!(no_queue.problem.contains(CALL_QUEUE_URL), "{no_queue}");
        let fifo = config(&with(&[
            (REDIAL_ON, "BUSY"),
            (
                CALL_QUEUE_URL,
                "https://sqs.us-east-1.amazonaws.com/123456789012/calls.fifo",
            ),
        ]))
        .unwrap_err();
        assert_eq!(fifo.variable, CALL_QUEUE_URL);
        assert!(fifo.problem.contains("FIFO"), "{fifo}");
    }
}

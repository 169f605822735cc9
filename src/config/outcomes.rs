//! Delivery outcomes' settings: `OUTCOME_EVENT_BUS_NAME` turns them on, and needs the
//! ledger (where calls and outcomes are recorded) and `STATUS_QUEUE_URL` (where the outcome
//! timers wait and the events arrive).

use std::time::Duration;

use super::{
    queue_url, seconds, ConfigError, DEAD_LETTER_QUEUE_URL, IDEMPOTENCY_TABLE_NAME,
    MESSAGE_TTL_SECONDS,
};
use crate::core::outcome_timer::DEFAULT_OUTCOME_WAIT;

pub const OUTCOME_EVENT_BUS_NAME: &str = "OUTCOME_EVENT_BUS_NAME";
pub const STATUS_QUEUE_URL: &str = "STATUS_QUEUE_URL";
pub const OUTCOME_WAIT_SECONDS: &str = "OUTCOME_WAIT_SECONDS";

/// The longest wait: carriers can report up to 72 hours late.
pub const MAX_OUTCOME_WAIT_SECONDS: u32 = 259_200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomesConfig {
    /// The EventBridge bus (name or ARN) the outcome events go to.
    pub event_bus: String,
    /// The status queue: timers are armed there.
    pub status_queue_url: String,
}

/// Reads `OUTCOME_EVENT_BUS_NAME` and `STATUS_QUEUE_URL` (both or neither), and
/// `OUTCOME_WAIT_SECONDS`.
pub(super) fn read_outcomes(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<(Option<OutcomesConfig>, Duration), ConfigError> {
    let wait = seconds(
        OUTCOME_WAIT_SECONDS,
        get(OUTCOME_WAIT_SECONDS),
        1..=MAX_OUTCOME_WAIT_SECONDS,
        DEFAULT_OUTCOME_WAIT,
    )?;
    let bus = get(OUTCOME_EVENT_BUS_NAME).map(|bus| bus.trim().to_owned());
    let status = get(STATUS_QUEUE_URL)
        .map(|url| queue_url(STATUS_QUEUE_URL, url.trim()))
        .transpose()?;
    let outcomes = match (bus, status) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(ConfigError {
                variable: STATUS_QUEUE_URL,
                problem: format!("{OUTCOME_EVENT_BUS_NAME} needs {STATUS_QUEUE_URL}: the queue its outcome timers wait on"),
            })
        }
        (None, Some(_)) => {
            return Err(ConfigError {
                variable: STATUS_QUEUE_URL,
                problem: format!("set without {OUTCOME_EVENT_BUS_NAME}: outcomes are off"),
            })
        }
        (Some(event_bus), Some(status_queue_url)) => {
            if status_queue_url.ends_with(".fifo") {
                return Err(ConfigError {
                    variable: STATUS_QUEUE_URL,
                    problem: "a FIFO queue cannot delay one message (the timers) nor take SNS standard topics' events: use a standard queue".into(),
                });
            }
            if get(IDEMPOTENCY_TABLE_NAME).is_none() {
                return Err(ConfigError {
                    variable: OUTCOME_EVENT_BUS_NAME,
                    problem: format!("needs {IDEMPOTENCY_TABLE_NAME}: calls and outcomes are recorded in the ledger"),
                });
            }
            // A request the function ends without a call gets its outcome once the DLQ holds
            // it; without one, SQS's redrive moves it unseen.
            if get(DEAD_LETTER_QUEUE_URL).is_none() {
                return Err(ConfigError {
                    variable: OUTCOME_EVENT_BUS_NAME,
                    problem: format!("needs {DEAD_LETTER_QUEUE_URL}: a request dead-lettered by SQS's redrive alone would get no outcome"),
                });
            }
            Some(OutcomesConfig {
                event_bus,
                status_queue_url,
            })
        }
    };
    Ok((outcomes, wait))
}

/// A ledger entry that lapsed before its request's outcome could be fixed would lose it.
pub(super) fn check_ledger_ttl(
    ledger_ttl: Duration,
    message_ttl: Duration,
    wait: Duration,
) -> Result<(), ConfigError> {
    if ledger_ttl < message_ttl + wait {
        return Err(ConfigError {
            variable: super::IDEMPOTENCY_TTL_SECONDS,
            problem: format!(
                "must be at least {MESSAGE_TTL_SECONDS} + {OUTCOME_WAIT_SECONDS} ({} s) with outcomes on, or a call's record could lapse before its outcome",
                (message_ttl + wait).as_secs()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::config;
    use crate::config::IDEMPOTENCY_TTL_SECONDS;

    const STATUS: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/status";
    const DLQ: &str = "https://sqs.us-east-1.amazonaws.com/123456789012/dlq";

    #[test]
    fn outcomes_are_off_unless_the_bus_is_named() {
        let off = config(&[]).unwrap();
        assert_eq!(off.outcomes, None);
        assert_eq!(off.outcome_wait, DEFAULT_OUTCOME_WAIT);
        let on = config(&[
            (OUTCOME_EVENT_BUS_NAME, "outcomes"),
            (STATUS_QUEUE_URL, STATUS),
            (IDEMPOTENCY_TABLE_NAME, "ledger"),
            (DEAD_LETTER_QUEUE_URL, DLQ),
            (OUTCOME_WAIT_SECONDS, "600"),
        ])
        .unwrap();
        assert_eq!(
            on.outcomes,
            Some(OutcomesConfig {
                event_bus: "outcomes".into(),
                status_queue_url: STATUS.into()
            })
        );
        assert_eq!(on.outcome_wait, Duration::from_secs(600));
    }

    #[test]
    fn init_refuses_outcomes_without_the_ledger_or_the_status_queue_naming_both() {
        let no_ledger = config(&[
            (OUTCOME_EVENT_BUS_NAME, "outcomes"),
            (STATUS_QUEUE_URL, STATUS),
        ])
        .unwrap_err();
        assert_eq!(no_ledger.variable, OUTCOME_EVENT_BUS_NAME);
        assert!(
            no_ledger.problem.contains(IDEMPOTENCY_TABLE_NAME),
            "{no_ledger}"
        );
        let no_queue = config(&[
            (OUTCOME_EVENT_BUS_NAME, "outcomes"),
            (IDEMPOTENCY_TABLE_NAME, "ledger"),
        ])
        .unwrap_err();
        assert_eq!(no_queue.variable, STATUS_QUEUE_URL);
        assert!(
            no_queue.problem.contains(OUTCOME_EVENT_BUS_NAME),
            "{no_queue}"
        );
        let stray = config(&[(STATUS_QUEUE_URL, STATUS)]).unwrap_err();
        assert!(stray.problem.contains(OUTCOME_EVENT_BUS_NAME), "{stray}");
        let fifo = config(&[
            (OUTCOME_EVENT_BUS_NAME, "outcomes"),
            (IDEMPOTENCY_TABLE_NAME, "ledger"),
            (
                STATUS_QUEUE_URL,
                "https://sqs.us-east-1.amazonaws.com/123456789012/status.fifo",
            ),
        ])
        .unwrap_err();
        assert!(fifo.problem.contains("FIFO"), "{fifo}");
        let no_dlq = config(&[
            (OUTCOME_EVENT_BUS_NAME, "outcomes"),
            (IDEMPOTENCY_TABLE_NAME, "ledger"),
            (STATUS_QUEUE_URL, STATUS),
        ])
        .unwrap_err();
        assert!(no_dlq.problem.contains(DEAD_LETTER_QUEUE_URL), "{no_dlq}");
    }

    #[test]
    fn the_ledger_keeps_a_call_until_its_outcome_can_be_fixed() {
        let on = [
            (OUTCOME_EVENT_BUS_NAME, "outcomes"),
            (STATUS_QUEUE_URL, STATUS),
            (IDEMPOTENCY_TABLE_NAME, "ledger"),
            (DEAD_LETTER_QUEUE_URL, DLQ),
            (MESSAGE_TTL_SECONDS, "3600"),
            (OUTCOME_WAIT_SECONDS, "3600"),
        ];
        let short = [on.as_slice(), &[(IDEMPOTENCY_TTL_SECONDS, "7199")]].concat();
        let refused = config(&short).unwrap_err();
        assert_eq!(refused.variable, IDEMPOTENCY_TTL_SECONDS);
        assert!(refused.problem.contains("7200"), "{refused}");
        let enough = [on.as_slice(), &[(IDEMPOTENCY_TTL_SECONDS, "7200")]].concat();
        assert!(config(&enough).is_ok());
        // With outcomes off the wait does not count.
        assert!(config(&[
            (IDEMPOTENCY_TABLE_NAME, "ledger"),
            (IDEMPOTENCY_TTL_SECONDS, "3600"),
            (OUTCOME_WAIT_SECONDS, "3600"),
        ])
        .is_ok());
        // Every value the template accepts for the wait reads.
        for wait in ["1", "3600", "259200"] {
            assert!(config(&[(OUTCOME_WAIT_SECONDS, wait)]).is_ok(), "{wait}");
        }
        for wait in ["0", "259201"] {
            assert!(config(&[(OUTCOME_WAIT_SECONDS, wait)]).is_err(), "{wait}");
        }
    }
}

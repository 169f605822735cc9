//! Redial's rules: after a call's final status, whether the
//! request is called again, when, or which outcome it ends with. Pure: what the status path
//! does with the answer (putting the request back on the call queue, fixing the outcome) is
//! the use case's.
//!
//! A redial is a new call of the same request. The policy says after which statuses
//! (`REDIAL_ON`), how many calls in all (`REDIAL_MAX_CALLS`, the first included, at most 5:
//! the voice service allows 5 calls to one recipient in 24 hours) and how long after the
//! previous call's final event (`REDIAL_INTERVAL_SECONDS`). No call starts past the
//! request's time to live, counted from its first send.

use std::time::Duration;

use crate::core::delivery::{CallStatus, Outcome};

/// The statuses a redial may follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RedialOn {
    Busy,
    NoAnswer,
    Failed,
}

impl RedialOn {
    pub const ALL: [RedialOn; 3] = [RedialOn::Busy, RedialOn::NoAnswer, RedialOn::Failed];

    /// Its word in `REDIAL_ON` and a body's `Redial.On`.
    pub fn as_str(self) -> &'static str {
        match self {
            RedialOn::Busy => "BUSY",
            RedialOn::NoAnswer => "NO_ANSWER",
            RedialOn::Failed => "FAILED",
        }
    }

    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|on| on.as_str() == word)
    }

    fn of(status: CallStatus) -> Option<Self> {
        match status {
            CallStatus::Busy => Some(RedialOn::Busy),
            CallStatus::NoAnswer => Some(RedialOn::NoAnswer),
            CallStatus::Failed => Some(RedialOn::Failed),
            _ => None,
        }
    }
}

/// The most calls of one request: the voice service's limit of calls to one recipient in 24
/// hours, in both APIs.
pub const MAX_CALLS: u8 = 5;

/// `REDIAL_INTERVAL_SECONDS`'s default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(120);

/// A request's redial policy: the function's defaults, or the message's own `Redial`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedialPolicy {
    /// Empty: redial is off.
    pub on: Vec<RedialOn>,
    /// Calls in all, the first included: 1 to [`MAX_CALLS`].
    pub max_calls: u8,
    /// From the previous call's final event to the next call.
    pub interval: Duration,
}

impl Default for RedialPolicy {
    fn default() -> Self {
        Self {
            on: Vec::new(),
            max_calls: 1,
            interval: DEFAULT_INTERVAL,
        }
    }
}

/// A message's own `Redial` member: what it gives overrides the function's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedialOverride {
    pub on: Option<Vec<RedialOn>>,
    pub max_calls: Option<u8>,
    pub interval: Option<Duration>,
}

impl RedialPolicy {
    /// The policy of a message: its own `Redial` over these defaults.
    pub fn with(&self, own: Option<&RedialOverride>) -> RedialPolicy {
        let Some(own) = own else {
            return self.clone();
        };
        RedialPolicy {
            on: own.on.clone().unwrap_or_else(|| self.on.clone()),
            max_calls: own.max_calls.unwrap_or(self.max_calls),
            interval: own.interval.unwrap_or(self.interval),
        }
    }

    /// Whether any call of a request under this policy may be followed by another.
    pub fn redials(&self) -> bool {
        !self.on.is_empty() && self.max_calls > 1
    }

    /// The policy as the ledger keeps it with the request: `BUSY,NO_ANSWER;3;120`.
    pub fn encode(&self) -> String {
        let on: Vec<&str> = self.on.iter().map(|on| on.as_str()).collect();
        format!(
            "{};{};{}",
            on.join(","),
            self.max_calls,
            self.interval.as_secs()
        )
    }

    /// Reads back [`RedialPolicy::encode`]; `None` for anything else.
    pub fn decode(text: &str) -> Option<RedialPolicy> {
        let mut parts = text.split(';');
        let on = parts.next()?;
        let max_calls = parts.next()?.parse().ok()?;
        let interval = Duration::from_secs(parts.next()?.parse().ok()?);
        if parts.next().is_some() {
            return None;
        }
        let on = if on.is_empty() {
            Vec::new()
        } else {
            on.split(',')
                .map(RedialOn::parse)
                .collect::<Option<Vec<_>>>()?
        };
        Some(RedialPolicy {
            on,
            max_calls,
            interval,
        })
    }
}

/// What the ledger keeps with a request whose policy redials, while a redial may still come:
/// the status path needs it to call again (the body is the only copy of the number and
/// text, encrypted at rest, removed with the request's outcome or by the table's TTL).
#[derive(Clone, PartialEq, Eq)]
pub struct Keep {
    pub body: String,
    pub policy: RedialPolicy,
    /// When the request was first sent, epoch milliseconds.
    pub first_sent_ms: u64,
    /// The request's time to live.
    pub ttl: Duration,
}

/// The body holds a number and text: never printed, not even in a debug line.
impl std::fmt::Debug for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keep")
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .field("policy", &self.policy)
            .field("first_sent_ms", &self.first_sent_ms)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// The longest body kept for a redial: far more than any valid body needs (6,000 characters
/// of text), far less than DynamoDB's 400 KB item. A longer one (whitespace a producer added)
/// is called once, as without the ledger.
pub const MAX_KEPT_BODY_BYTES: usize = 64 * 1024;

/// Which call of which request a record is, from the attributes the status path sets on a
/// redial (`DispatchRedialCall`, `DispatchRedialRequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallOf<'a> {
    /// 2 to [`MAX_CALLS`].
    pub call: u8,
    /// The request's ledger key (its first call's).
    pub request_key: &'a str,
    /// Not before this moment (epoch milliseconds): a redial whose interval is longer than
    /// SQS's longest delay waits for it (`DispatchRedialAt`).
    pub at_ms: Option<u64>,
}

/// The message attributes a redial carries: reserved for this, never to be set by a producer.
pub const CALL_ATTRIBUTE: &str = "DispatchRedialCall";
pub const REQUEST_ATTRIBUTE: &str = "DispatchRedialRequest";
pub const AT_ATTRIBUTE: &str = "DispatchRedialAt";

/// Why a request ends unreached while its policy would redial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreached {
    /// The policy does not redial after this status (or redial is off).
    NotRedialled,
    /// Every call the policy allows was made.
    CallsUsedUp,
    /// The next call would start past the time to live.
    TimeToLive,
    /// The voice service refused the next call for the recipient's daily limit.
    DailyLimit,
    /// The next call ended without being placed for another reason (its code says which).
    RedialNotPlaced,
}

impl Unreached {
    /// Its word in the outcome's `reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Unreached::NotRedialled => "NotRedialled",
            Unreached::CallsUsedUp => "CallsUsedUp",
            Unreached::TimeToLive => "TimeToLive",
            Unreached::DailyLimit => "DailyLimit",
            Unreached::RedialNotPlaced => "RedialNotPlaced",
        }
    }
}

/// What follows a call's final status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Call again: call number `call`, not before `at_ms` (epoch milliseconds).
    Redial { call: u8, at_ms: u64 },
    /// The request is final with this outcome (and, for `unreached`, why no call follows).
    Final(Outcome, Option<Unreached>),
}

/// What a call's final status means for its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// Which call of the request it was: 1 for the first.
    pub call: u8,
    pub status: CallStatus,
    /// When its final event said so, epoch milliseconds.
    pub final_at_ms: u64,
    /// When the request was first sent, epoch milliseconds: its time to live counts from it.
    pub first_sent_ms: u64,
    /// The request's time to live.
    pub ttl: Duration,
}

/// Whether the request is called again after `ended`, under `policy`.
pub fn next(policy: &RedialPolicy, ended: &Ended) -> Next {
    let Some(outcome) = ended.status.outcome() else {
        // Not a status that ends a call: nothing follows it yet.
        return Next::Final(Outcome::Unknown, None);
    };
    if outcome != Outcome::Unreached {
        return Next::Final(outcome, None);
    }
    let redialled = RedialOn::of(ended.status).is_some_and(|on| policy.on.contains(&on));
    if !redialled {
        return Next::Final(Outcome::Unreached, Some(Unreached::NotRedialled));
    }
    if ended.call >= policy.max_calls.min(MAX_CALLS) {
        return Next::Final(Outcome::Unreached, Some(Unreached::CallsUsedUp));
    }
    let at_ms = ended
        .final_at_ms
        .saturating_add(policy.interval.as_millis() as u64);
    let expires_ms = ended
        .first_sent_ms
        .saturating_add(ended.ttl.as_millis() as u64);
    if at_ms > expires_ms {
        return Next::Final(Outcome::Unreached, Some(Unreached::TimeToLive));
    }
    Next::Redial {
        call: ended.call + 1,
        at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENT_MS: u64 = 1_796_500_000_000;

    fn policy(on: &[RedialOn], max_calls: u8, interval_s: u64) -> RedialPolicy {
        RedialPolicy {
            on: on.to_vec(),
            max_calls,
            interval: Duration::from_secs(interval_s),
        }
    }

    fn ended(call: u8, status: CallStatus, after_s: u64) -> Ended {
        Ended {
            call,
            status,
            final_at_ms: SENT_MS + after_s * 1_000,
            first_sent_ms: SENT_MS,
            ttl: Duration::from_secs(3_600),
        }
    }

    #[test]
    fn an_answer_ends_the_request_reached_whatever_the_policy() {
        let every = policy(&RedialOn::ALL, 5, 120);
        for status in [CallStatus::Answered, CallStatus::Completed] {
            assert_eq!(
                next(&every, &ended(1, status, 60)),
                Next::Final(Outcome::Reached, None)
            );
        }
        assert_eq!(
            next(&every, &ended(1, CallStatus::Unknown, 60)),
            Next::Final(Outcome::Unknown, None),
            "no redial without a final status that says the person was not reached"
        );
    }

    #[test]
    fn a_listed_status_is_redialled_an_interval_after_its_final_event() {
        let busy = policy(&[RedialOn::Busy], 3, 120);
        assert_eq!(
            next(&busy, &ended(1, CallStatus::Busy, 60)),
            Next::Redial {
                call: 2,
                at_ms: SENT_MS + 180_000
            }
        );
        assert_eq!(
            next(&busy, &ended(1, CallStatus::NoAnswer, 60)),
            Next::Final(Outcome::Unreached, Some(Unreached::NotRedialled))
        );
        assert_eq!(
            next(&RedialPolicy::default(), &ended(1, CallStatus::Busy, 60)),
            Next::Final(Outcome::Unreached, Some(Unreached::NotRedialled)),
            "off by default"
        );
        assert_eq!(
            next(&busy, &ended(1, CallStatus::TtlExpired, 60)),
            Next::Final(Outcome::Unreached, Some(Unreached::NotRedialled)),
            "the service's own expiry is never redialled"
        );
    }

    #[test]
    fn never_more_calls_than_the_policy_nor_than_five() {
        let three = policy(&RedialOn::ALL, 3, 1);
        assert!(matches!(
            next(&three, &ended(2, CallStatus::Failed, 10)),
            Next::Redial { call: 3, .. }
        ));
        assert_eq!(
            next(&three, &ended(3, CallStatus::Failed, 20)),
            Next::Final(Outcome::Unreached, Some(Unreached::CallsUsedUp))
        );
        let too_many = policy(&RedialOn::ALL, 9, 1);
        assert_eq!(
            next(&too_many, &ended(5, CallStatus::Busy, 20)),
            Next::Final(Outcome::Unreached, Some(Unreached::CallsUsedUp))
        );
    }

    #[test]
    fn no_call_starts_past_the_time_to_live_counted_from_the_first_send() {
        let busy = policy(&[RedialOn::Busy], 5, 600);
        // Final at 3,000 s: the next call would start at 3,600 s, exactly the time to live.
        assert!(matches!(
            next(&busy, &ended(1, CallStatus::Busy, 3_000)),
            Next::Redial { .. }
        ));
        assert_eq!(
            next(&busy, &ended(1, CallStatus::Busy, 3_001)),
            Next::Final(Outcome::Unreached, Some(Unreached::TimeToLive))
        );
    }

    #[test]
    fn a_message_overrides_only_what_it_names() {
        let defaults = policy(&[RedialOn::Busy], 3, 120);
        assert_eq!(defaults.with(None), defaults);
        let own = RedialOverride {
            max_calls: Some(5),
            ..RedialOverride::default()
        };
        assert_eq!(defaults.with(Some(&own)), policy(&[RedialOn::Busy], 5, 120));
        let off = RedialOverride {
            on: Some(Vec::new()),
            ..RedialOverride::default()
        };
        assert!(
            !defaults.with(Some(&off)).redials(),
            "an empty On turns it off"
        );
        assert!(
            !policy(&RedialOn::ALL, 1, 120).redials(),
            "one call in all is no redial"
        );
    }

    #[test]
    fn the_policy_the_ledger_keeps_reads_back() {
        for kept in [
            policy(&RedialOn::ALL, 5, 86_400),
            policy(&[RedialOn::NoAnswer], 2, 1),
            RedialPolicy::default(),
        ] {
            assert_eq!(RedialPolicy::decode(&kept.encode()), Some(kept.clone()));
        }
        for bad in ["", "BUSY;3", "BUSY;x;1", "RINGING;2;1", "BUSY;2;1;9"] {
            assert_eq!(RedialPolicy::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_kept_body_never_prints() {
        let keep = Keep {
            body: r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "secret"}"#.into(),
            policy: RedialPolicy::default(),
            first_sent_ms: SENT_MS,
            ttl: Duration::from_secs(60),
        };
        let printed = format!("{keep:?}");
        assert!(
            !printed.contains("+1206") && !printed.contains("secret"),
            "{printed}"
        );
    }

    #[test]
    fn the_policy_words_read_back() {
        for on in RedialOn::ALL {
            assert_eq!(RedialOn::parse(on.as_str()), Some(on));
        }
        assert_eq!(RedialOn::parse("ANSWERED"), None);
        assert_eq!(RedialOn::parse("busy"), None);
    }
}

//! The idempotency ledger's rules: what a stored entry means for a record about to be sent.
//!
//! `SendVoiceMessage` has no idempotency token, so the function keeps its own: before a send
//! it claims the record's key (`IN_PROGRESS`, with a lease until the invocation's deadline);
//! after it, the entry says `SENT`, or `UNKNOWN` when the call may or may not have gone out,
//! or the claim is released when the call certainly was not placed. The store (DynamoDB)
//! applies [`may_claim`] as a conditional write; [`refusal`] reads the entry it returns.
//! Validity is judged from the stored times, never from the store's own expiry, which can lag.

use std::fmt::Write as _;

/// An entry's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Sent,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "IN_PROGRESS",
            Status::Sent => "SENT",
            Status::Unknown => "UNKNOWN",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "IN_PROGRESS" => Some(Status::InProgress),
            "SENT" => Some(Status::Sent),
            "UNKNOWN" => Some(Status::Unknown),
            _ => None,
        }
    }
}

/// What the ledger holds for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub status: Status,
    /// SHA-256 of the body, hex: the same key must always carry the same message.
    pub body_hash: String,
    /// Who holds an `IN_PROGRESS` claim: later writes only touch their own claim.
    pub claim_id: String,
    /// Epoch milliseconds until which an `IN_PROGRESS` claim is held.
    pub lease_until_ms: u64,
    /// Epoch seconds after which the entry is void (the table's TTL attribute).
    pub expiration: u64,
    /// The call's `MessageId`, once `SENT`.
    pub voice_message_id: Option<String>,
}

/// What to do when an earlier attempt's outcome is unknown (`ON_UNKNOWN_OUTCOME`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnknownOutcome {
    /// Call again: an alert must go out, and a second call is the lesser harm.
    #[default]
    Retry,
    /// Never call again: at most once, for one-time codes. Dead-lettered as `OutcomeUnknown`.
    DeadLetter,
}

/// A record's claim on its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub key: String,
    /// The entry written when the claim succeeds (`IN_PROGRESS`).
    pub entry: Entry,
    pub now_ms: u64,
    pub on_unknown: UnknownOutcome,
    /// Who asked, as the request's outcome names it: stored at claim.
    pub request: RequestIds,
    /// What a redial needs, kept with a first call whose policy redials.
    pub keep: Option<crate::core::redial::Keep>,
}

/// The request's own ids, stored in clear with its claim so that its outcome can name them
/// (the key itself may be stored as a hash).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestIds {
    /// The SQS `messageId` of the delivery that claimed it.
    pub sqs_message_id: String,
    /// The key the record was known by: the producer's `IdempotencyKey`, a FIFO
    /// deduplication id, or the `messageId`.
    pub idempotency_key: String,
}

/// Whether `claim` may take the key, given what the ledger holds. A missing or void entry
/// is free; so, for the same message when unknown outcomes are retried, is an entry whose
/// outcome is unknown (marked so, or a claim whose lease ran out: its holder died).
pub fn may_claim(existing: Option<&Entry>, claim: &Claim) -> bool {
    let Some(existing) = existing else {
        return true;
    };
    // Whole seconds, as the table stores `expiration` and as DynamoDB compares it.
    if existing.expiration < claim.now_ms / 1_000 {
        return true;
    }
    claim.on_unknown == UnknownOutcome::Retry
        && existing.body_hash == claim.entry.body_hash
        && outcome_unknown(existing, claim.now_ms)
}

fn outcome_unknown(entry: &Entry, now_ms: u64) -> bool {
    match entry.status {
        Status::Unknown => true,
        Status::InProgress => entry.lease_until_ms < now_ms,
        Status::Sent => false,
    }
}

/// Why a claim was refused, read from the entry that stood in its way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Already placed: not called again.
    AlreadySent { voice_message_id: Option<String> },
    /// Another invocation holds the key until then (epoch milliseconds).
    InProgressElsewhere { lease_until_ms: u64 },
    /// The key was used for another message: never called.
    KeyReused,
    /// An earlier attempt may have placed the call, and the policy is at most once.
    OutcomeUnknown,
}

pub fn refusal(existing: &Entry, claim: &Claim) -> Refusal {
    if existing.body_hash != claim.entry.body_hash {
        return Refusal::KeyReused;
    }
    match existing.status {
        Status::Sent => Refusal::AlreadySent {
            voice_message_id: existing.voice_message_id.clone(),
        },
        Status::InProgress if existing.lease_until_ms >= claim.now_ms => {
            Refusal::InProgressElsewhere {
                lease_until_ms: existing.lease_until_ms,
            }
        }
        Status::InProgress | Status::Unknown => Refusal::OutcomeUnknown,
    }
}

/// What becomes of a claim once the record is done with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The call went out (from `region`, with failover on).
    Sent {
        voice_message_id: Option<String>,
        region: Option<String>,
    },
    /// It may have gone out: a timeout after the request was written, a connection lost
    /// mid-answer, a send abandoned at the deadline.
    Unknown,
    /// It certainly did not: the claim is deleted so a retry can take it.
    Release,
}

/// SHA-256 of a body, in hex.
pub fn body_hash(body: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest.as_ref() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The longest key stored as it is; a longer one (a producer's choice) is stored as its hash,
/// within DynamoDB's 2,048-byte partition key.
const MAX_PLAIN_KEY_BYTES: usize = 512;

/// The prefixes of the ledger's own items: a call's (found by its message id) and a request's
/// outcome. No request key is stored with one of them (nor with the hash's own prefix): such
/// a key is stored as its hash, like a long one.
pub const CALL_PREFIX: &str = "call#";
pub const OUTCOME_PREFIX: &str = "outcome#";
/// A redial's own key: `redial#<call>#<request key>`.
pub const REDIAL_PREFIX: &str = "redial#";
const HASH_PREFIX: &str = "sha256:";

/// The ledger's key for a record's idempotency key.
pub fn stored_key(key: &str) -> String {
    let reserved = [CALL_PREFIX, OUTCOME_PREFIX, REDIAL_PREFIX, HASH_PREFIX]
        .iter()
        .any(|prefix| key.starts_with(prefix));
    if key.len() <= MAX_PLAIN_KEY_BYTES && !reserved {
        key.to_owned()
    } else {
        format!("{HASH_PREFIX}{}", body_hash(key))
    }
}

/// The key of call `call` of the request `request_key` (a stored key): the request's own
/// for its first call, one derived from it for each redial, so that each call is claimed
/// once, whoever asks for it again.
pub fn redial_key(request_key: &str, call: u8) -> String {
    if call <= 1 {
        request_key.to_owned()
    } else {
        format!("{REDIAL_PREFIX}{call}#{request_key}")
    }
}

/// Which call of which request a call's key is: `(request key, call)`.
pub fn call_of_key(key: &str) -> (&str, u8) {
    key.strip_prefix(REDIAL_PREFIX)
        .and_then(|rest| rest.split_once('#'))
        .and_then(|(call, request)| Some((request, call.parse().ok()?)))
        .unwrap_or((key, 1))
}

/// The item that finds a request by one of its calls (the call's `MessageId`).
pub fn call_key(call_id: &str) -> String {
    format!("{CALL_PREFIX}{call_id}")
}

/// The item that holds a request's outcome, once fixed.
pub fn outcome_key(request_key: &str) -> String {
    format!("{OUTCOME_PREFIX}{request_key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_of_a_request_has_its_own_key_that_names_the_request() {
        assert_eq!(redial_key("order-42", 1), "order-42");
        assert_eq!(redial_key("order-42", 3), "redial#3#order-42");
        assert_eq!(call_of_key("redial#3#order-42"), ("order-42", 3));
        assert_eq!(call_of_key("order-42"), ("order-42", 1));
        let hashed = stored_key("sha256:x");
        assert_eq!(call_of_key(&redial_key(&hashed, 2)), (hashed.as_str(), 2));
        assert!(
            stored_key("redial#2#order-42").starts_with("sha256:"),
            "no producer key takes a redial's form"
        );
    }

    const NOW: u64 = 1_764_000_000_000;

    fn entry(status: Status, hash: &str) -> Entry {
        Entry {
            status,
            body_hash: hash.to_owned(),
            claim_id: "other".to_owned(),
            lease_until_ms: NOW + 60_000,
            expiration: NOW / 1_000 + 86_400,
            voice_message_id: (status == Status::Sent).then(|| "voice-1".to_owned()),
        }
    }

    fn claim(on_unknown: UnknownOutcome) -> Claim {
        Claim {
            keep: None,
            key: "k".into(),
            entry: Entry {
                claim_id: "mine".into(),
                ..entry(Status::InProgress, "h")
            },
            now_ms: NOW,
            on_unknown,
            request: RequestIds::default(),
        }
    }

    #[test]
    fn a_free_or_void_key_is_claimed() {
        let claim = claim(UnknownOutcome::DeadLetter);
        assert!(may_claim(None, &claim));
        let mut void = entry(Status::Sent, "h");
        void.expiration = NOW / 1_000 - 1;
        let mut this_second = void.clone();
        this_second.expiration = NOW / 1_000;
        assert!(
            !may_claim(Some(&this_second), &claim),
            "void only after its second"
        );
        assert!(
            may_claim(Some(&void), &claim),
            "void by its stored expiration, whether or not the store deleted it"
        );
    }

    #[test]
    fn a_sent_entry_is_a_duplicate_with_the_original_call() {
        let claim = claim(UnknownOutcome::Retry);
        let sent = entry(Status::Sent, "h");
        assert!(!may_claim(Some(&sent), &claim));
        assert_eq!(
            refusal(&sent, &claim),
            Refusal::AlreadySent {
                voice_message_id: Some("voice-1".into())
            }
        );
    }

    #[test]
    fn a_live_claim_elsewhere_defers_until_its_lease_ends() {
        let claim = claim(UnknownOutcome::Retry);
        let held = entry(Status::InProgress, "h");
        assert!(!may_claim(Some(&held), &claim));
        assert_eq!(
            refusal(&held, &claim),
            Refusal::InProgressElsewhere {
                lease_until_ms: NOW + 60_000
            }
        );
    }

    #[test]
    fn an_unknown_outcome_is_retried_or_dead_lettered_by_policy() {
        let mut lapsed = entry(Status::InProgress, "h");
        lapsed.lease_until_ms = NOW - 1;
        for unknown in [entry(Status::Unknown, "h"), lapsed] {
            assert!(may_claim(Some(&unknown), &claim(UnknownOutcome::Retry)));
            let at_most_once = claim(UnknownOutcome::DeadLetter);
            assert!(!may_claim(Some(&unknown), &at_most_once));
            assert_eq!(refusal(&unknown, &at_most_once), Refusal::OutcomeUnknown);
        }
    }

    #[test]
    fn the_same_key_with_another_body_is_refused_whatever_the_state() {
        let claim = claim(UnknownOutcome::Retry);
        for status in [Status::InProgress, Status::Sent, Status::Unknown] {
            let other = entry(status, "other-hash");
            assert!(!may_claim(Some(&other), &claim), "{status:?}");
            assert_eq!(refusal(&other, &claim), Refusal::KeyReused);
        }
    }

    #[test]
    fn bodies_hash_to_sha256_hex() {
        assert_eq!(
            body_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn long_keys_are_stored_as_their_hash() {
        assert_eq!(stored_key("order-42"), "order-42");
        let long = "k".repeat(600);
        assert_eq!(stored_key(&long), format!("sha256:{}", body_hash(&long)));
    }

    #[test]
    fn no_request_key_is_stored_under_the_ledgers_own_prefixes() {
        for key in ["call#m-1", "outcome#order-42", "sha256:abc"] {
            let stored = stored_key(key);
            assert_eq!(stored, format!("sha256:{}", body_hash(key)), "{key}");
            assert!(!stored.starts_with(CALL_PREFIX) && !stored.starts_with(OUTCOME_PREFIX));
        }
        assert_eq!(call_key("m-1"), "call#m-1");
        assert_eq!(outcome_key("order-42"), "outcome#order-42");
        assert_ne!(call_key("m-1"), stored_key("call#m-1"));
    }

    #[test]
    fn statuses_round_trip() {
        for status in [Status::InProgress, Status::Sent, Status::Unknown] {
            assert_eq!(Status::parse(status.as_str()), Some(status));
        }
        assert_eq!(Status::parse("DONE"), None);
    }
}

//! The one place that decides what a failed send means.
//!
//! Adapters describe what went wrong as a [`SendFailure`] (the service's error code, a
//! timeout, a broken connection, ...). Three questions are answered here and nowhere else:
//! [`classify`], whether the record deserves another delivery ([`Disposition`]);
//! [`signal`], what the failure says about the service, which the pacer and the circuit
//! breaker act on ([`Signal`]); and [`placed_nothing`], whether the call certainly did not go
//! out, so trying again at once cannot ring anyone twice. The README's fates table is these
//! functions; the tests below pin every row of it.

use crate::core::code::Code;
pub use crate::core::service::{ResourceType, ServiceCode, ServiceReason};

/// A send given no answer within its attempt's time (the engine's timer, or the SDK's own).
pub const NO_ANSWER_IN_TIME: &str =
    "no answer within the attempt's timeout; the call may have been placed";

/// What went wrong with one `SendVoiceMessage` call, after the SDK's own retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendFailure {
    /// The service answered with an error response.
    Service {
        /// The modelled error code (`BadRequestException`, ...), if the response had one.
        code: Option<ServiceCode>,
        status: Option<u16>,
        message: String,
        /// The error's `Reason` (End User Messaging v2 says why it refused:
        /// `DAILY_DESTINATION_CALL_LIMIT`, ...); v1 has none.
        reason: Option<ServiceReason>,
        /// v2's `ResourceNotFoundException` says which kind of resource does not exist
        /// (`configuration-set`, `pool`, `phone-number`, ...).
        resource_type: Option<ResourceType>,
    },
    /// No answer in time: an attempt or the whole operation timed out.
    Timeout(String),
    /// The connection broke after the request may have gone out: reset, closed mid-answer.
    Connection(String),
    /// No connection was made, so no request was written: refused, DNS, TLS handshake.
    NotConnected(String),
    /// The request could not even be built, so it never reached the service.
    InvalidRequest(String),
    /// A response came back but could not be read as the protocol says.
    UnreadableResponse {
        status: Option<u16>,
        message: String,
    },
}

/// Whether a failure deserves another delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// May succeed later: let SQS redeliver it (the record's fate is transient).
    Redeliver,
    /// Will fail the same way every time: retrying only burns quota and delays the DLQ (the
    /// record's fate is permanent).
    GiveUp,
}

/// Whose a resource of a send was: the function's configuration (`Configured`) or the
/// message's own (`Message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The function's (`CONFIGURATION_SET_NAME`, `ORIGINATION_IDENTITY`,
    /// `ORIGINATION_PHONE_NUMBER`), taken by default or named again by the message: one that
    /// does not exist is a deploy error that fails every send alike, so it is transient
    /// (nothing is lost while it is fixed) and counts as the service failing (the breaker
    /// opens and its alarm fires).
    Configured,
    /// The message named its own, or none was used: that message alone is wrong.
    Message,
}

/// Where a send's configuration set and origination came from: what a "does not exist"
/// answer means depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origins {
    pub set: Origin,
    pub identity: Origin,
}

impl Origins {
    /// The message named its own set and origination (or used no set).
    pub const MESSAGE: Self = Self {
        set: Origin::Message,
        identity: Origin::Message,
    };
    /// The function's configuration set, the message's own origination.
    pub const CONFIGURED_SET: Self = Self {
        set: Origin::Configured,
        identity: Origin::Message,
    };
}

/// A resource of the function's own that the service says does not exist: v1's
/// `NotFoundException` with the function's set; v2's `ResourceNotFoundException` for the
/// function's set (`configuration-set`) or origination (`pool`, `phone-number`,
/// `sender-id`), or, when it does not say which, while either is the function's. Anything
/// else missing (a protect configuration, a set or identity the message named) is the
/// message's own mistake.
fn missing_configured_resource(failure: &SendFailure, origins: Origins) -> bool {
    let SendFailure::Service {
        code: Some(code),
        resource_type,
        ..
    } = failure
    else {
        return false;
    };
    let configured = |origin: Origin| origin == Origin::Configured;
    match code {
        ServiceCode::NotFound => configured(origins.set),
        ServiceCode::ResourceNotFound => match resource_type {
            Some(ResourceType::ConfigurationSet) => configured(origins.set),
            Some(ResourceType::Pool | ResourceType::PhoneNumber | ResourceType::SenderId) => {
                configured(origins.identity)
            }
            Some(ResourceType::Other(_)) => false,
            None => configured(origins.set) || configured(origins.identity),
        },
        _ => false,
    }
}

pub fn classify(failure: &SendFailure, origins: Origins) -> Disposition {
    if missing_configured_resource(failure, origins) {
        return Disposition::Redeliver;
    }
    match failure {
        SendFailure::Service {
            code:
                Some(
                    ServiceCode::BadRequest
                    | ServiceCode::NotFound
                    | ServiceCode::Validation
                    | ServiceCode::Conflict
                    | ServiceCode::ResourceNotFound,
                ),
            ..
        } => Disposition::GiveUp,
        // Any other code (throttling, the service failing, access denied, a quota, one
        // unknown or new), or none (a bare 5xx from a proxy): retry, and let redrive decide.
        SendFailure::Service { .. } => Disposition::Redeliver,
        SendFailure::Timeout(_) | SendFailure::Connection(_) | SendFailure::NotConnected(_) => {
            Disposition::Redeliver
        }
        // The same input builds the same broken request every time.
        SendFailure::InvalidRequest(_) => Disposition::GiveUp,
        SendFailure::UnreadableResponse { .. } => Disposition::Redeliver,
    }
}

/// What one failed attempt says about the voice service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The service is refusing calls because of their rate: slow down (the pacer).
    Throttled,
    /// The service is failing on its side: a 5xx, a timeout, a broken connection (the
    /// circuit breaker counts these).
    ServiceFailing,
    /// The service answered, if only to say no: it is up.
    Answered,
    /// Nothing reached the service: this says nothing about it.
    NotReached,
    /// The account may send nothing now (v2: a spend limit reached): every send would fail
    /// alike, so the circuit breaker opens at once.
    Blocked,
    /// The function's own setup is refused: its configured set or origination does not
    /// exist, or its role or account is denied. The breaker counts it as it counts the
    /// service failing, but it is no regional outage: it never moves calls to the failover
    /// region, where it would hide a deploy error.
    Misconfigured,
}

/// When a failure names the moment trying again makes sense: v2's daily call limit for one
/// destination resets with the day, so the record waits for the next 00:00 UTC.
pub fn retry_at(
    failure: &SendFailure,
    now: std::time::SystemTime,
) -> Option<std::time::SystemTime> {
    match failure {
        SendFailure::Service {
            code: Some(ServiceCode::ServiceQuotaExceeded),
            reason: Some(ServiceReason::DailyDestinationCallLimit),
            ..
        } => {
            const DAY: u64 = 86_400;
            let since_epoch = now.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
            Some(
                std::time::UNIX_EPOCH
                    + std::time::Duration::from_secs((since_epoch / DAY + 1) * DAY),
            )
        }
        _ => None,
    }
}

pub fn signal(failure: &SendFailure, origins: Origins) -> Signal {
    if missing_configured_resource(failure, origins) {
        return Signal::Misconfigured;
    }
    match failure {
        SendFailure::Service {
            code: Some(ServiceCode::ServiceQuotaExceeded),
            reason,
            ..
        } => {
            if reason == &Some(ServiceReason::DailyDestinationCallLimit) {
                // One person's limit: the service and the account are fine.
                Signal::Answered
            } else {
                Signal::Blocked
            }
        }
        SendFailure::Service {
            code:
                Some(
                    ServiceCode::TooManyRequests
                    | ServiceCode::LimitExceeded
                    | ServiceCode::Throttling,
                ),
            ..
        } => Signal::Throttled,
        SendFailure::Service {
            code: Some(ServiceCode::InternalServiceError | ServiceCode::InternalServer),
            ..
        } => Signal::ServiceFailing,
        SendFailure::Service {
            code: Some(ServiceCode::AccessDenied),
            ..
        } => Signal::Misconfigured,
        SendFailure::Service { status, .. } | SendFailure::UnreadableResponse { status, .. } => {
            if status.is_some_and(|status| status >= 500) {
                Signal::ServiceFailing
            } else {
                Signal::Answered
            }
        }
        SendFailure::Timeout(_) | SendFailure::Connection(_) | SendFailure::NotConnected(_) => {
            Signal::ServiceFailing
        }
        SendFailure::InvalidRequest(_) => Signal::NotReached,
    }
}

/// Whether the call certainly was not placed. A modelled error answer (it has an error code)
/// comes from the service, which did not take the call; so does a bare 429 or 503, which a
/// front end answers before passing anything on; a request never built never left. A bare
/// 500, 502 or 504 from a gateway, a timeout, a connection lost on the way, or an answer
/// that could not be read may hide a call that went out: `SendVoiceMessage` has no
/// idempotency token, so sending it again could ring a person twice.
pub fn placed_nothing(failure: &SendFailure) -> bool {
    match failure {
        SendFailure::Service { code: Some(_), .. }
        | SendFailure::InvalidRequest(_)
        | SendFailure::NotConnected(_) => true,
        SendFailure::Service {
            code: None, status, ..
        } => {
            matches!(status, Some(429) | Some(503))
        }
        SendFailure::Timeout(_)
        | SendFailure::Connection(_)
        | SendFailure::UnreadableResponse { .. } => false,
    }
}

impl SendFailure {
    /// The stable code that logs, metrics and dead-letter reasons carry.
    pub fn code(&self) -> Code {
        match self {
            Self::Service {
                code: Some(code), ..
            } => Code::Service(code.clone()),
            Self::Service {
                code: None,
                status: Some(status),
                ..
            } => Code::Http(*status),
            Self::Service { .. } => Code::UnknownServiceError,
            Self::Timeout(_) => Code::Timeout,
            Self::Connection(_) => Code::ConnectionError,
            Self::NotConnected(_) => Code::ConnectError,
            Self::InvalidRequest(_) => Code::InvalidRequest,
            Self::UnreadableResponse { .. } => Code::UnreadableResponse,
        }
    }

    /// The service's `Reason`, when it gave one (v2).
    pub fn reason(&self) -> Option<&str> {
        match self {
            Self::Service { reason, .. } => reason.as_ref().map(ServiceReason::as_str),
            _ => None,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Service { message, .. } | Self::UnreadableResponse { message, .. } => message,
            Self::Timeout(message)
            | Self::Connection(message)
            | Self::NotConnected(message)
            | Self::InvalidRequest(message) => message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(code: Option<&str>, status: u16) -> SendFailure {
        SendFailure::Service {
            code: code.map(ServiceCode::from),
            status: Some(status),
            message: "m".to_owned(),
            reason: None,
            resource_type: None,
        }
    }

    #[test]
    fn internal_errors_throttling_and_limits_are_transient() {
        for (code, status) in [
            ("InternalServiceErrorException", 500),
            ("TooManyRequestsException", 429),
            ("LimitExceededException", 412),
        ] {
            assert_eq!(
                classify(&service(Some(code), status), Origins::MESSAGE),
                Disposition::Redeliver,
                "{code}"
            );
        }
    }

    #[test]
    fn bad_request_and_not_found_are_permanent() {
        assert_eq!(
            classify(&service(Some("BadRequestException"), 400), Origins::MESSAGE),
            Disposition::GiveUp
        );
        assert_eq!(
            classify(&service(Some("NotFoundException"), 404), Origins::MESSAGE),
            Disposition::GiveUp
        );
    }

    #[test]
    fn a_missing_configured_set_is_transient_and_feeds_the_breaker_a_named_one_is_permanent() {
        let not_found = service(Some("NotFoundException"), 404);
        assert_eq!(
            classify(&not_found, Origins::CONFIGURED_SET),
            Disposition::Redeliver
        );
        assert_eq!(
            signal(&not_found, Origins::CONFIGURED_SET),
            Signal::Misconfigured,
            "counted by the breaker, never failed over"
        );
        assert_eq!(classify(&not_found, Origins::MESSAGE), Disposition::GiveUp);
        assert_eq!(signal(&not_found, Origins::MESSAGE), Signal::Answered);
        let v2_not_found = service(Some("ResourceNotFoundException"), 404);
        assert_eq!(
            classify(&v2_not_found, Origins::CONFIGURED_SET),
            Disposition::Redeliver
        );
        assert_eq!(
            classify(&v2_not_found, Origins::MESSAGE),
            Disposition::GiveUp
        );
        // Only NotFound depends on it.
        let bad = service(Some("BadRequestException"), 400);
        assert_eq!(classify(&bad, Origins::CONFIGURED_SET), Disposition::GiveUp);
        assert_eq!(signal(&bad, Origins::CONFIGURED_SET), Signal::Answered);
    }

    #[test]
    fn a_v2_resource_not_found_is_a_deploy_error_only_for_the_functions_own_resource() {
        use Disposition::{GiveUp, Redeliver};
        let missing = |resource_type: Option<&str>| SendFailure::Service {
            code: Some(ServiceCode::ResourceNotFound),
            status: Some(400),
            message: "m".to_owned(),
            reason: None,
            resource_type: resource_type.map(ResourceType::from),
        };
        let configured_identity = Origins {
            set: Origin::Message,
            identity: Origin::Configured,
        };
        let everything_configured = Origins {
            set: Origin::Configured,
            identity: Origin::Configured,
        };
        for (resource_type, origins, expected) in [
            (
                Some("configuration-set"),
                Origins::CONFIGURED_SET,
                Redeliver,
            ),
            (Some("configuration-set"), configured_identity, GiveUp),
            (Some("pool"), configured_identity, Redeliver),
            (Some("phone-number"), configured_identity, Redeliver),
            // The function's set, but the identity the message named is missing.
            (Some("pool"), Origins::CONFIGURED_SET, GiveUp),
            // A protect configuration only a message names.
            (Some("protect-configuration"), everything_configured, GiveUp),
            (None, configured_identity, Redeliver),
            (None, Origins::MESSAGE, GiveUp),
        ] {
            let failure = missing(resource_type);
            assert_eq!(
                classify(&failure, origins),
                expected,
                "{resource_type:?} {origins:?}"
            );
            let health = if expected == Redeliver {
                Signal::Misconfigured
            } else {
                Signal::Answered
            };
            assert_eq!(
                signal(&failure, origins),
                health,
                "{resource_type:?} {origins:?}"
            );
        }
    }

    fn v2(code: &str, reason: Option<&str>) -> SendFailure {
        SendFailure::Service {
            code: Some(ServiceCode::from(code)),
            status: Some(400),
            message: "m".to_owned(),
            reason: reason.map(ServiceReason::from),
            resource_type: None,
        }
    }

    #[test]
    fn every_row_of_the_v2_error_model() {
        use Disposition::{GiveUp, Redeliver};
        let origins = Origins::MESSAGE;
        for (failure, disposition, health) in [
            (
                v2("ThrottlingException", None),
                Redeliver,
                Signal::Throttled,
            ),
            (
                v2("InternalServerException", None),
                Redeliver,
                Signal::ServiceFailing,
            ),
            (
                v2(
                    "ServiceQuotaExceededException",
                    Some("DAILY_DESTINATION_CALL_LIMIT"),
                ),
                Redeliver,
                Signal::Answered,
            ),
            (
                v2(
                    "ServiceQuotaExceededException",
                    Some("MONTHLY_SPEND_LIMIT_REACHED_FOR_VOICE"),
                ),
                Redeliver,
                Signal::Blocked,
            ),
            (
                v2("AccessDeniedException", Some("ACCOUNT_DISABLED")),
                Redeliver,
                Signal::Misconfigured,
            ),
            (
                v2("ValidationException", Some("INVALID_PARAMETER")),
                GiveUp,
                Signal::Answered,
            ),
            (
                v2(
                    "ConflictException",
                    Some("DESTINATION_PHONE_NUMBER_OPTED_OUT"),
                ),
                GiveUp,
                Signal::Answered,
            ),
            (
                v2("ResourceNotFoundException", None),
                GiveUp,
                Signal::Answered,
            ),
        ] {
            assert_eq!(classify(&failure, origins), disposition, "{failure:?}");
            assert_eq!(signal(&failure, origins), health, "{failure:?}");
            assert!(
                placed_nothing(&failure),
                "an error answer placed nothing: {failure:?}"
            );
        }
    }

    #[test]
    fn the_daily_destination_limit_waits_for_the_next_utc_day() {
        let at = |s: u64| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        let limited = v2(
            "ServiceQuotaExceededException",
            Some("DAILY_DESTINATION_CALL_LIMIT"),
        );
        // 2025-11-24 16:00:00 UTC -> 2025-11-25 00:00:00 UTC.
        assert_eq!(
            retry_at(&limited, at(1_764_000_000)),
            Some(at(1_764_028_800))
        );
        assert_eq!(limited.reason(), Some("DAILY_DESTINATION_CALL_LIMIT"));
        let spend = v2(
            "ServiceQuotaExceededException",
            Some("MONTHLY_SPEND_LIMIT_REACHED_FOR_VOICE"),
        );
        assert_eq!(retry_at(&spend, at(1_764_000_000)), None);
        assert_eq!(
            retry_at(&v2("ThrottlingException", None), at(1_764_000_000)),
            None
        );
    }

    #[test]
    fn an_unknown_code_is_transient_whatever_its_status() {
        for status in [400, 403, 500] {
            assert_eq!(
                classify(
                    &service(Some("SomethingNewException"), status),
                    Origins::MESSAGE
                ),
                Disposition::Redeliver
            );
        }
    }

    #[test]
    fn any_5xx_without_a_code_is_transient() {
        for status in [500, 502, 503, 504] {
            let failure = service(None, status);
            assert_eq!(classify(&failure, Origins::MESSAGE), Disposition::Redeliver);
            assert_eq!(failure.code(), Code::Http(status));
            assert_eq!(failure.code().word(), format!("Http{status}"));
        }
    }

    #[test]
    fn timeouts_and_connection_errors_are_transient() {
        assert_eq!(
            classify(&SendFailure::Timeout("t".into()), Origins::MESSAGE),
            Disposition::Redeliver
        );
        assert_eq!(
            classify(&SendFailure::Connection("c".into()), Origins::MESSAGE),
            Disposition::Redeliver
        );
        assert_eq!(
            classify(
                &SendFailure::UnreadableResponse {
                    status: Some(502),
                    message: "x".into()
                },
                Origins::MESSAGE
            ),
            Disposition::Redeliver
        );
    }

    #[test]
    fn a_request_that_cannot_be_built_is_permanent() {
        assert_eq!(
            classify(
                &SendFailure::InvalidRequest("missing field".into()),
                Origins::MESSAGE
            ),
            Disposition::GiveUp
        );
    }

    #[test]
    fn throttling_codes_slow_the_pacer_whatever_their_status() {
        for (code, status) in [
            ("TooManyRequestsException", 429),
            ("LimitExceededException", 412),
        ] {
            assert_eq!(
                signal(&service(Some(code), status), Origins::MESSAGE),
                Signal::Throttled
            );
        }
    }

    #[test]
    fn internal_errors_5xx_timeouts_and_broken_connections_mean_the_service_is_failing() {
        for failure in [
            service(Some("InternalServiceErrorException"), 500),
            service(None, 502),
            service(Some("SomethingNewException"), 503),
            SendFailure::Timeout("t".into()),
            SendFailure::Connection("c".into()),
            SendFailure::UnreadableResponse {
                status: Some(502),
                message: "x".into(),
            },
        ] {
            assert_eq!(
                signal(&failure, Origins::MESSAGE),
                Signal::ServiceFailing,
                "{failure:?}"
            );
        }
    }

    #[test]
    fn a_4xx_answer_means_the_service_is_up() {
        for failure in [
            service(Some("BadRequestException"), 400),
            service(Some("NotFoundException"), 404),
            service(Some("SomethingNewException"), 400),
            SendFailure::UnreadableResponse {
                status: Some(200),
                message: "x".into(),
            },
        ] {
            assert_eq!(
                signal(&failure, Origins::MESSAGE),
                Signal::Answered,
                "{failure:?}"
            );
        }
        assert_eq!(
            signal(&SendFailure::InvalidRequest("x".into()), Origins::MESSAGE),
            Signal::NotReached
        );
    }

    #[test]
    fn only_an_error_answer_or_an_unsent_request_certainly_placed_nothing() {
        assert!(placed_nothing(&service(
            Some("InternalServiceErrorException"),
            500
        )));
        assert!(placed_nothing(&service(None, 503)));
        assert!(placed_nothing(&service(None, 429)));
        for gateway in [500, 502, 504] {
            assert!(!placed_nothing(&service(None, gateway)), "{gateway}");
        }
        assert!(placed_nothing(&SendFailure::InvalidRequest("x".into())));
        assert!(placed_nothing(&SendFailure::NotConnected("refused".into())));
        assert!(!placed_nothing(&SendFailure::Timeout("t".into())));
        assert!(!placed_nothing(&SendFailure::Connection("c".into())));
        assert!(!placed_nothing(&SendFailure::UnreadableResponse {
            status: Some(200),
            message: "x".into()
        }));
    }

    #[test]
    fn codes_name_the_failure() {
        assert_eq!(
            service(Some("BadRequestException"), 400).code(),
            Code::Service(ServiceCode::from("BadRequestException"))
        );
        assert_eq!(SendFailure::Timeout("t".into()).code(), Code::Timeout);
        assert_eq!(
            SendFailure::Connection("c".into()).code(),
            Code::ConnectionError
        );
    }
}

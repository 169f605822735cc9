//! Where a call goes: the primary region's voice service or, while that one is failing on
//! its side, the failover region's (`FAILOVER_REGION`). Each region has its own sender, its
//! own pacer (quotas are per region) and its own circuit breaker. A call moves only when the
//! primary's breaker is open for the service's own failures (a regional outage), only if
//! its message leaves the regional resources to the function, and never when an earlier
//! attempt may have placed it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::core::breaker::{BreakerSettings, CircuitBreaker};
use crate::core::classify::Origin;
use crate::core::contract::{OriginationSource, VoiceMessage};
use crate::core::pacing::{Pacer, SendRate};
use crate::core::phone::PhoneNumber;

/// Which region a call takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Primary,
    Failover,
}

/// One region's way to place calls: its sender, its pacer and its breaker, which live as
/// long as the instance.
pub struct Region<S> {
    pub sender: S,
    pub pacer: Option<Pacer>,
    pub breaker: CircuitBreaker,
    /// The region as lines, dead letters and metrics name it; `None` with failover off, so
    /// they are exactly what they were without it.
    pub tag: Option<RegionTag>,
}

impl<S> Region<S> {
    pub fn new(
        sender: S,
        send_rate: Option<SendRate>,
        breaker: BreakerSettings,
        tag: Option<RegionTag>,
    ) -> Self {
        let region = Self {
            sender,
            pacer: send_rate.map(Pacer::new),
            breaker: CircuitBreaker::new(breaker),
            tag: None,
        };
        match tag {
            Some(tag) => region.tagged(tag),
            None => region,
        }
    }

    /// The same region named by `tag` in outcomes and in its breaker's lines.
    pub fn tagged(mut self, tag: RegionTag) -> Self {
        self.breaker = self.breaker.for_region(Some(Arc::clone(&tag.name)));
        self.tag = Some(tag);
        self
    }
}

/// The region that placed (or failed) a record's call, as its outcome carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionTag {
    pub name: Arc<str>,
    pub failover: bool,
}

/// The failover region's settings: its name and what its calls use instead of the
/// function's own origination and configuration set, which exist in the primary region only.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverSettings {
    /// The primary region (`AWS_REGION`), to name it in lines and metrics.
    pub primary_region: String,
    /// `FAILOVER_REGION`.
    pub region: String,
    /// v1: `FAILOVER_ORIGINATION_PHONE_NUMBER`. (v2's `FAILOVER_ORIGINATION_IDENTITY` is the
    /// failover sender's own, as `ORIGINATION_IDENTITY` is the primary's.)
    pub origination: Option<PhoneNumber>,
    /// `FAILOVER_CONFIGURATION_SET_NAME`.
    pub configuration_set: Option<String>,
    /// `FAILOVER_SEND_RATE_LIMIT`, else `SEND_RATE_LIMIT`.
    pub send_rate: Option<SendRate>,
}

impl FailoverSettings {
    pub fn primary_tag(&self) -> RegionTag {
        RegionTag {
            name: Arc::from(self.primary_region.as_str()),
            failover: false,
        }
    }

    pub fn failover_tag(&self) -> RegionTag {
        RegionTag {
            name: Arc::from(self.region.as_str()),
            failover: true,
        }
    }
}

/// Why a message stays in the primary region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinned {
    /// The body names an origination other than the function's own: it exists in the
    /// primary region only.
    OwnOrigination,
    /// The body names a configuration set other than the function's own.
    OwnConfigurationSet,
    /// The body names a v2 protect configuration, a resource of the primary region.
    ProtectConfiguration,
}

/// Whether `message` must stay in the primary region, and why.
pub fn pinned(message: &VoiceMessage) -> Option<Pinned> {
    if message.origination_source.origin() == Origin::Message {
        return Some(Pinned::OwnOrigination);
    }
    if message.configuration_set.is_some() && message.configuration_set_origin == Origin::Message {
        return Some(Pinned::OwnConfigurationSet);
    }
    if message
        .v2
        .as_ref()
        .is_some_and(|v2| v2.protect_configuration_id.is_some())
    {
        return Some(Pinned::ProtectConfiguration);
    }
    None
}

/// The message as the failover region places it, or `None` when it must stay in the
/// primary region: the function's origination and set swapped for the failover region's.
pub fn rerouted(message: &VoiceMessage, failover: &FailoverSettings) -> Option<VoiceMessage> {
    if pinned(message).is_some() {
        return None;
    }
    let mut moved = message.clone();
    moved.origination = failover.origination.clone();
    moved.origination_source = OriginationSource::Default;
    moved.configuration_set = failover.configuration_set.clone();
    if let Some(v2) = moved.v2.as_mut() {
        // The body named the function's own identity: the failover sender uses its own.
        v2.origination_identity = None;
    }
    Some(moved)
}

/// The failover region: its way to place calls, its settings, and whether it is the one
/// placing them now (to say once when traffic moves, and once when it comes back).
pub struct Failover<S> {
    pub region: Region<S>,
    pub settings: FailoverSettings,
    serving: AtomicBool,
}

impl<S> Failover<S> {
    pub fn new(sender: S, settings: FailoverSettings, breaker: BreakerSettings) -> Self {
        Self {
            region: Region::new(
                sender,
                settings.send_rate,
                breaker,
                Some(settings.failover_tag()),
            ),
            settings,
            serving: AtomicBool::new(false),
        }
    }

    /// A call went out through `route`: one WARN when that moves traffic to the failover
    /// region, one INFO when it comes back to the primary. `primary_open`: whether the
    /// primary's breaker is open now; a failover call that finishes after the primary's
    /// probe closed it moves nothing.
    /// Returns where the traffic moved, when it did.
    pub fn placed_through(&self, route: Route, primary_open: bool) -> Option<Route> {
        let to_failover = route == Route::Failover;
        if to_failover && !primary_open {
            return None;
        }
        if self.serving.swap(to_failover, Ordering::Relaxed) == to_failover {
            return None;
        }
        let (primary_region, failover_region) =
            (&*self.settings.primary_region, &*self.settings.region);
        if to_failover {
            tracing::warn!(
                primary_region,
                failover_region,
                "calls moved to the failover region: the primary region's voice service is failing on its side"
            );
        } else {
            tracing::info!(
                primary_region,
                failover_region,
                "calls back on the primary region: its voice service answered again"
            );
        }
        Some(route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::contract::{Backend, MessageDefaults};

    fn settings() -> FailoverSettings {
        FailoverSettings {
            primary_region: "us-east-1".into(),
            region: "us-west-2".into(),
            origination: PhoneNumber::parse("+12065550777").ok(),
            configuration_set: Some("west-set".into()),
            send_rate: None,
        }
    }

    fn defaults(backend: Backend) -> MessageDefaults {
        MessageDefaults {
            origination: PhoneNumber::parse("+12065550100").ok(),
            configuration_set: Some("east-set".into()),
            backend,
            v2_voices: &["JOANNA"],
            v2_identity: Some("pool-east".into()),
            configured_resources_only: false,
        }
    }

    fn message(body: &str, backend: Backend) -> VoiceMessage {
        VoiceMessage::from_body(Some(body), &defaults(backend)).expect("a valid body")
    }

    #[test]
    fn a_message_leaving_origination_and_set_to_the_function_takes_the_failover_regions() {
        let v1 = message(
            r#"{"DestinationPhoneNumber": "+12065550142", "Content": {"PlainTextMessage": {"Text": "x"}}}"#,
            Backend::V1,
        );
        let moved = rerouted(&v1, &settings()).expect("may fail over");
        assert_eq!(moved.origination, settings().origination);
        assert_eq!(moved.configuration_set.as_deref(), Some("west-set"));
        assert_eq!(moved.destination, v1.destination);
        // Naming the function's own number and set is leaving them to the function.
        let named_own = message(
            r#"{"DestinationPhoneNumber": "+12065550142", "OriginationPhoneNumber": "+12065550100", "ConfigurationSetName": "east-set", "Content": {"PlainTextMessage": {"Text": "x"}}}"#,
            Backend::V1,
        );
        assert!(rerouted(&named_own, &settings()).is_some());
        // v2: the body's own naming of the function's identity gives way to the failover's.
        let v2 = message(
            r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "x", "OriginationIdentity": "pool-east"}"#,
            Backend::V2,
        );
        let moved = rerouted(&v2, &settings()).expect("may fail over");
        assert_eq!(moved.v2.unwrap().origination_identity, None);
    }

    #[test]
    fn traffic_moves_once_each_way_and_a_late_failover_call_moves_nothing() {
        let failover = Failover::new((), settings(), BreakerSettings::default());
        assert_eq!(
            failover.placed_through(Route::Primary, false),
            None,
            "already there"
        );
        assert_eq!(
            failover.placed_through(Route::Failover, true),
            Some(Route::Failover)
        );
        assert_eq!(
            failover.placed_through(Route::Failover, true),
            None,
            "said once"
        );
        assert_eq!(
            failover.placed_through(Route::Primary, false),
            Some(Route::Primary)
        );
        // A failover call that finishes after the primary's probe closed its breaker.
        assert_eq!(failover.placed_through(Route::Failover, false), None);
        assert_eq!(failover.placed_through(Route::Primary, false), None);
    }

    #[test]
    fn a_message_pinning_a_resource_of_the_primary_region_stays_there() {
        for (body, backend, why) in [
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "OriginationPhoneNumber": "+12065550111", "Content": {"PlainTextMessage": {"Text": "x"}}}"#,
                Backend::V1,
                Pinned::OwnOrigination,
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "ConfigurationSetName": "its-own", "Content": {"PlainTextMessage": {"Text": "x"}}}"#,
                Backend::V1,
                Pinned::OwnConfigurationSet,
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "x", "OriginationIdentity": "pool-other"}"#,
                Backend::V2,
                Pinned::OwnOrigination,
            ),
            (
                r#"{"DestinationPhoneNumber": "+12065550142", "MessageBody": "x", "ProtectConfigurationId": "protect-0123456789abcdef0123456789abcdef"}"#,
                Backend::V2,
                Pinned::ProtectConfiguration,
            ),
        ] {
            let message = message(body, backend);
            assert_eq!(pinned(&message), Some(why), "{body}");
            assert!(rerouted(&message, &settings()).is_none(), "{body}");
        }
    }
}

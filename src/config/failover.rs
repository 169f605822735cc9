//! The failover region's settings (`FAILOVER_*`): off when `FAILOVER_REGION` is unset; when
//! set, everything the second region needs is checked at init, each error naming its
//! variable.

use super::{
    invalid, Backend, Config, ConfigError, CONFIGURED_RESOURCES_ONLY, IDEMPOTENCY_TABLE_NAME,
};
use crate::core::pacing::SendRate;
use crate::core::phone::PhoneNumber;

pub const FAILOVER_REGION: &str = "FAILOVER_REGION";
pub const FAILOVER_ORIGINATION_PHONE_NUMBER: &str = "FAILOVER_ORIGINATION_PHONE_NUMBER";
pub const FAILOVER_ORIGINATION_IDENTITY: &str = "FAILOVER_ORIGINATION_IDENTITY";
pub const FAILOVER_CONFIGURATION_SET_NAME: &str = "FAILOVER_CONFIGURATION_SET_NAME";
pub const FAILOVER_SEND_RATE_LIMIT: &str = "FAILOVER_SEND_RATE_LIMIT";
pub const FAILOVER_ENDPOINT_URL: &str = "FAILOVER_ENDPOINT_URL";
/// The primary region, as the SDK reads it.
pub const AWS_REGION: &str = "AWS_REGION";

/// The variables that mean nothing without `FAILOVER_REGION`.
const NEEDS_REGION: [&str; 5] = [
    FAILOVER_ORIGINATION_PHONE_NUMBER,
    FAILOVER_ORIGINATION_IDENTITY,
    FAILOVER_CONFIGURATION_SET_NAME,
    FAILOVER_SEND_RATE_LIMIT,
    FAILOVER_ENDPOINT_URL,
];

/// The failover region as configured.
#[derive(Debug, Clone, PartialEq)]
pub struct FailoverConfig {
    pub region: String,
    /// v1: the origination number there.
    pub origination: Option<PhoneNumber>,
    /// v2: the `OriginationIdentity` there.
    pub identity: Option<String>,
    pub configuration_set: Option<String>,
    /// `FAILOVER_SEND_RATE_LIMIT`, else `SEND_RATE_LIMIT` (quotas are per region, and
    /// usually the same in both).
    pub send_rate: Option<SendRate>,
    /// The failover client's endpoint; `None`: the region's own. The primary's override
    /// (`AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE[_V2]`) never applies to it.
    pub endpoint_url: Option<String>,
}

/// Reads `FAILOVER_*` for `backend`; `primary_send_rate` is `SEND_RATE_LIMIT`'s.
pub(super) fn read_failover(
    get: &impl Fn(&str) -> Option<String>,
    backend: Backend,
    configured_resources_only: bool,
    primary_send_rate: Option<SendRate>,
) -> Result<Option<FailoverConfig>, ConfigError> {
    let get = |name: &str| get(name).map(|value| value.trim().to_owned());
    let Some(region) = get(FAILOVER_REGION) else {
        if let Some(stray) = NEEDS_REGION.into_iter().find(|name| get(name).is_some()) {
            return Err(invalid(stray, format!("set without {FAILOVER_REGION}")));
        }
        return Ok(None);
    };
    if !is_region(&region) {
        return Err(invalid(
            FAILOVER_REGION,
            format!("expected a Region name such as us-west-2 (\"{region}\" given)"),
        ));
    }
    if get(AWS_REGION).as_deref() == Some(region.as_str()) {
        return Err(invalid(
            FAILOVER_REGION,
            format!("must differ from the function's own Region ({AWS_REGION}={region})"),
        ));
    }
    let (origination, identity) = origination(&get, backend, &region, configured_resources_only)?;
    let configuration_set = get(FAILOVER_CONFIGURATION_SET_NAME)
        .map(|set| configuration_set(&set, backend, &region))
        .transpose()?;
    let send_rate = match get(FAILOVER_SEND_RATE_LIMIT) {
        Some(rate) => Some(
            SendRate::parse(&rate).map_err(|problem| invalid(FAILOVER_SEND_RATE_LIMIT, problem))?,
        ),
        None => primary_send_rate,
    };
    let endpoint_url = get(FAILOVER_ENDPOINT_URL)
        .map(|url| {
            if (url.starts_with("https://") || url.starts_with("http://"))
                && !url.contains(char::is_whitespace)
            {
                Ok(url)
            } else {
                Err(invalid(
                    FAILOVER_ENDPOINT_URL,
                    "expected an http:// or https:// URL".to_owned(),
                ))
            }
        })
        .transpose()?;
    Ok(Some(FailoverConfig {
        region,
        origination,
        identity,
        configuration_set,
        send_rate,
        endpoint_url,
    }))
}

/// What the failover region needs of the rest of the configuration: the idempotency ledger
/// (without it nothing remembers, from one delivery to the next, that a call may have been
/// placed, and the next delivery could place it again from the other region), and an
/// origination number of its own.
pub(super) fn check_against_primary(
    failover: &FailoverConfig,
    config: &Config,
) -> Result<(), ConfigError> {
    if config.idempotency_table.is_none() {
        return Err(invalid(
            FAILOVER_REGION,
            format!("needs the idempotency ledger ({IDEMPOTENCY_TABLE_NAME}): without it a call that may have been placed could be placed again from the other Region"),
        ));
    }
    if failover.origination.is_some() && failover.origination == config.defaults.origination {
        return Err(invalid(
            FAILOVER_ORIGINATION_PHONE_NUMBER,
            "is ORIGINATION_PHONE_NUMBER: a number belongs to one Region".to_owned(),
        ));
    }
    if failover.identity.is_some() && failover.identity == config.origination_identity {
        return Err(invalid(
            FAILOVER_ORIGINATION_IDENTITY,
            "is ORIGINATION_IDENTITY: an origination identity belongs to one Region".to_owned(),
        ));
    }
    Ok(())
}

/// The failover region's origination: a number under v1, an identity under v2 (the same
/// API in both regions). Under `CONFIGURED_RESOURCES_ONLY` the role names the identity by
/// ARN, so it must be an ARN of the failover region.
fn origination(
    get: &impl Fn(&str) -> Option<String>,
    backend: Backend,
    region: &str,
    configured_resources_only: bool,
) -> Result<(Option<PhoneNumber>, Option<String>), ConfigError> {
    let (needed, other, api) = match backend {
        Backend::V1 => (
            FAILOVER_ORIGINATION_PHONE_NUMBER,
            FAILOVER_ORIGINATION_IDENTITY,
            "v1",
        ),
        Backend::V2 => (
            FAILOVER_ORIGINATION_IDENTITY,
            FAILOVER_ORIGINATION_PHONE_NUMBER,
            "v2",
        ),
    };
    if get(other).is_some() {
        return Err(invalid(
            other,
            format!("not used under VOICE_API={api}: give {needed}"),
        ));
    }
    let Some(value) = get(needed) else {
        return Err(invalid(
            needed,
            format!("required with {FAILOVER_REGION}: origination numbers and identities belong to one Region"),
        ));
    };
    match backend {
        Backend::V1 => PhoneNumber::parse(&value)
            .map(|number| (Some(number), None))
            .map_err(|err| invalid(needed, err.to_string())),
        Backend::V2 => {
            let value = super::origination_identity(needed, &value)?;
            if value.starts_with("arn:") && !arn_in(&value, region) {
                return Err(invalid(
                    needed,
                    format!("an ARN in {region}, the failover Region"),
                ));
            }
            if configured_resources_only && !value.starts_with("arn:") {
                return Err(invalid(
                    needed,
                    format!("with {CONFIGURED_RESOURCES_ONLY}=true, an ARN in {region}: the role may place calls from the named identities only"),
                ));
            }
            Ok((None, Some(value)))
        }
    }
}

/// Whether an ARN (`arn:<partition>:<service>:<region>:...`) names `region`.
fn arn_in(arn: &str, region: &str) -> bool {
    arn.split(':').nth(3) == Some(region)
}

/// The failover region's set: as the primary's is checked, and an ARN of its own region.
fn configuration_set(set: &str, backend: Backend, region: &str) -> Result<String, ConfigError> {
    if set.starts_with("arn:") && !arn_in(set, region) {
        return Err(invalid(
            FAILOVER_CONFIGURATION_SET_NAME,
            format!("an ARN in {region}, the failover Region"),
        ));
    }
    super::configuration_set(FAILOVER_CONFIGURATION_SET_NAME, set, backend)
}

/// A Region name: `us-west-2`, `eu-central-1`, `us-gov-west-1`, `ap-southeast-4`.
fn is_region(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    let lower = |part: &&str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase());
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1].iter().all(lower)
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(
        vars: &[(&str, &str)],
        backend: Backend,
    ) -> Result<Option<FailoverConfig>, ConfigError> {
        let get = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        read_failover(&get, backend, false, SendRate::per_second(2.0))
    }

    #[test]
    fn off_unless_the_region_is_set_and_nothing_else_alone() {
        assert_eq!(read(&[], Backend::V1), Ok(None));
        for stray in NEEDS_REGION {
            let err = read(&[(stray, "x")], Backend::V1).unwrap_err();
            assert_eq!(err.variable, stray);
            assert!(err.problem.contains(FAILOVER_REGION), "{err}");
        }
    }

    #[test]
    fn v1_needs_a_number_and_v2_an_identity_each_named_when_missing_or_wrong() {
        let v1 = read(
            &[
                (FAILOVER_REGION, " us-west-2 "),
                (FAILOVER_ORIGINATION_PHONE_NUMBER, "+12065550777"),
            ],
            Backend::V1,
        )
        .unwrap()
        .unwrap();
        assert_eq!(v1.region, "us-west-2");
        assert_eq!(v1.origination.unwrap().as_str(), "+12065550777");
        assert_eq!(v1.send_rate, SendRate::per_second(2.0), "SEND_RATE_LIMIT's");
        assert_eq!(v1.endpoint_url, None);
        for (vars, backend, variable) in [
            (
                vec![(FAILOVER_REGION, "us-west-2")],
                Backend::V1,
                FAILOVER_ORIGINATION_PHONE_NUMBER,
            ),
            (
                vec![(FAILOVER_REGION, "us-west-2")],
                Backend::V2,
                FAILOVER_ORIGINATION_IDENTITY,
            ),
            (
                vec![
                    (FAILOVER_REGION, "us-west-2"),
                    (FAILOVER_ORIGINATION_PHONE_NUMBER, "12065550777"),
                ],
                Backend::V1,
                FAILOVER_ORIGINATION_PHONE_NUMBER,
            ),
            (
                vec![
                    (FAILOVER_REGION, "us-west-2"),
                    (FAILOVER_ORIGINATION_PHONE_NUMBER, "+12065550777"),
                    (FAILOVER_ORIGINATION_IDENTITY, "pool-1"),
                ],
                Backend::V1,
                FAILOVER_ORIGINATION_IDENTITY,
            ),
            (
                vec![
                    (FAILOVER_REGION, "us-west-2"),
                    (FAILOVER_ORIGINATION_IDENTITY, "bad identity"),
                ],
                Backend::V2,
                FAILOVER_ORIGINATION_IDENTITY,
            ),
            (
                vec![
                    (FAILOVER_REGION, "uswest2"),
                    (FAILOVER_ORIGINATION_IDENTITY, "pool-1"),
                ],
                Backend::V2,
                FAILOVER_REGION,
            ),
            (
                vec![
                    (FAILOVER_REGION, "us-east-1"),
                    (AWS_REGION, "us-east-1"),
                    (FAILOVER_ORIGINATION_IDENTITY, "pool-1"),
                ],
                Backend::V2,
                FAILOVER_REGION,
            ),
            (
                vec![
                    (FAILOVER_REGION, "us-west-2"),
                    (FAILOVER_ORIGINATION_IDENTITY, "pool-1"),
                    (FAILOVER_SEND_RATE_LIMIT, "fast"),
                ],
                Backend::V2,
                FAILOVER_SEND_RATE_LIMIT,
            ),
            (
                vec![
                    (FAILOVER_REGION, "us-west-2"),
                    (FAILOVER_ORIGINATION_IDENTITY, "pool-1"),
                    (FAILOVER_ENDPOINT_URL, "localhost:4010"),
                ],
                Backend::V2,
                FAILOVER_ENDPOINT_URL,
            ),
            (
                vec![
                    (FAILOVER_REGION, "us-west-2"),
                    (FAILOVER_ORIGINATION_IDENTITY, "pool-1"),
                    (FAILOVER_CONFIGURATION_SET_NAME, "a b"),
                ],
                Backend::V2,
                FAILOVER_CONFIGURATION_SET_NAME,
            ),
        ] {
            let err = read(&vars, backend).unwrap_err();
            assert_eq!(err.variable, variable, "{vars:?}: {err}");
        }
        let v2 = read(
            &[
                (FAILOVER_REGION, "eu-west-1"),
                (FAILOVER_ORIGINATION_IDENTITY, "pool-west"),
                (FAILOVER_CONFIGURATION_SET_NAME, "west-set"),
                (FAILOVER_SEND_RATE_LIMIT, "5/min"),
                (FAILOVER_ENDPOINT_URL, "http://127.0.0.1:4011"),
            ],
            Backend::V2,
        )
        .unwrap()
        .unwrap();
        assert_eq!(v2.identity.as_deref(), Some("pool-west"));
        assert_eq!(v2.configuration_set.as_deref(), Some("west-set"));
        assert_eq!(v2.send_rate, SendRate::parse("5/min").ok());
        assert_eq!(v2.endpoint_url.as_deref(), Some("http://127.0.0.1:4011"));
    }

    #[test]
    fn with_configured_resources_only_the_identity_is_an_arn_of_the_failover_region() {
        let get = |identity: &'static str| {
            move |name: &str| match name {
                FAILOVER_REGION => Some("us-west-2".to_owned()),
                FAILOVER_ORIGINATION_IDENTITY => Some(identity.to_owned()),
                _ => None,
            }
        };
        let in_region = "arn:aws:sms-voice:us-west-2:123456789012:pool/pool-1";
        assert!(read_failover(&get(in_region), Backend::V2, true, None).is_ok());
        for wrong in [
            "pool-1",
            "arn:aws:sms-voice:us-east-1:123456789012:pool/pool-1",
        ] {
            let err = read_failover(&get(wrong), Backend::V2, true, None).unwrap_err();
            assert_eq!(err.variable, FAILOVER_ORIGINATION_IDENTITY, "{wrong}");
        }
    }

    #[test]
    fn arns_name_the_failover_region() {
        let get = |identity: &'static str, set: &'static str| {
            move |name: &str| match name {
                FAILOVER_REGION => Some("us-west-2".to_owned()),
                FAILOVER_ORIGINATION_IDENTITY => Some(identity.to_owned()),
                FAILOVER_CONFIGURATION_SET_NAME => Some(set.to_owned()),
                _ => None,
            }
        };
        let west = "arn:aws:sms-voice:us-west-2:123456789012:pool/pool-1";
        let east = "arn:aws:sms-voice:us-east-1:123456789012:pool/pool-1";
        let west_set = "arn:aws:sms-voice:us-west-2:123456789012:configuration-set/s";
        let east_set = "arn:aws:sms-voice:us-east-1:123456789012:configuration-set/s";
        assert!(read_failover(&get(west, west_set), Backend::V2, false, None).is_ok());
        let err = read_failover(&get(east, west_set), Backend::V2, false, None).unwrap_err();
        assert_eq!(err.variable, FAILOVER_ORIGINATION_IDENTITY);
        let err = read_failover(&get(west, east_set), Backend::V2, false, None).unwrap_err();
        assert_eq!(err.variable, FAILOVER_CONFIGURATION_SET_NAME);
    }

    #[test]
    fn failover_needs_the_ledger_and_a_number_of_its_own() {
        let read = |vars: &[(&str, &str)]| {
            Config::from_lookup(|name| {
                vars.iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        let base = [
            (FAILOVER_REGION, "us-west-2"),
            (FAILOVER_ORIGINATION_PHONE_NUMBER, "+12065550177"),
            ("ORIGINATION_PHONE_NUMBER", "+12065550199"),
        ];
        let err = read(&base).unwrap_err();
        assert_eq!(err.variable, FAILOVER_REGION);
        assert!(err.problem.contains(IDEMPOTENCY_TABLE_NAME), "{err}");
        let mut with_ledger = base.to_vec();
        with_ledger.push((IDEMPOTENCY_TABLE_NAME, "ledger"));
        assert!(read(&with_ledger).unwrap().failover.is_some());
        with_ledger[1].1 = "+12065550199";
        assert_eq!(
            read(&with_ledger).unwrap_err().variable,
            FAILOVER_ORIGINATION_PHONE_NUMBER
        );
        let v2_same = [
            (FAILOVER_REGION, "us-west-2"),
            (FAILOVER_ORIGINATION_IDENTITY, "pool-1"),
            ("ORIGINATION_IDENTITY", "pool-1"),
            ("VOICE_API", "v2"),
            (IDEMPOTENCY_TABLE_NAME, "ledger"),
        ];
        assert_eq!(
            read(&v2_same).unwrap_err().variable,
            FAILOVER_ORIGINATION_IDENTITY
        );
    }

    #[test]
    fn region_names() {
        for good in [
            "us-west-2",
            "eu-central-1",
            "us-gov-west-1",
            "ap-southeast-4",
        ] {
            assert!(is_region(good), "{good}");
        }
        for bad in [
            "",
            "us-west",
            "uswest2",
            "US-WEST-2",
            "us-west-2a",
            "u-west-2",
            "us--2",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }
}

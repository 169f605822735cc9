//! Every environment variable the function reads, in one table: the README's configuration
//! table is rendered from it (a test keeps the two in step), the template's defaults are
//! checked against it, and a test reads each of the function's own.

/// Where a variable's value comes from in the SAM template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InTemplate {
    /// Set from this parameter, whose default is given.
    Parameter(&'static str, &'static str),
    /// Set by the template in its own way (said in words).
    Derived(&'static str),
    /// Not set by the template.
    Unset,
}

#[derive(Debug, Clone, Copy)]
pub struct Variable {
    pub name: &'static str,
    /// The binary's default when the variable is unset.
    pub default: &'static str,
    pub template: InTemplate,
    /// What it accepts and does.
    pub meaning: &'static str,
    /// A valid value other than the default, for the test that reads every variable; `None`
    /// for the variables the SDK or the runtime reads.
    pub sample: Option<&'static str>,
}

const fn own(
    name: &'static str,
    default: &'static str,
    template: InTemplate,
    meaning: &'static str,
    sample: &'static str,
) -> Variable {
    Variable {
        name,
        default,
        template,
        meaning,
        sample: Some(sample),
    }
}

const fn read_elsewhere(
    name: &'static str,
    default: &'static str,
    meaning: &'static str,
) -> Variable {
    Variable {
        name,
        default,
        template: InTemplate::Unset,
        meaning,
        sample: None,
    }
}

use InTemplate::{Derived, Parameter, Unset};

pub const VARIABLES: &[Variable] = &[
    own("ORIGINATION_PHONE_NUMBER", "none", Parameter("OriginationPhoneNumber", ""),
        "origination number for messages that give none (E.164)", "+12065550199"),
    own("CONFIGURATION_SET_NAME", "none", Parameter("ConfigurationSetName", ""),
        "configuration set for messages that give none; under v2 its name or ARN (1–256 of `A-Za-z0-9_:/-`)", "alerts"),
    own("VOICE_API", "`v1`", Parameter("VoiceApi", "v1"),
        "`v1`: Amazon Pinpoint SMS Voice; `v2`: AWS End User Messaging SMS and Voice v2 (endpoint override `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2`); see [docs/v2.md](docs/v2.md)", "v2"),
    own("ORIGINATION_IDENTITY", "none", Parameter("OriginationIdentity", ""),
        "v2 only: `OriginationIdentity` (a phone number, its ID or ARN, or a pool ID or ARN; 1–256 of `A-Za-z0-9_:/+-`); without it, the origination number", "pool-1"),
    own("CONFIGURED_RESOURCES_ONLY", "`false`", Derived("`true` when `OriginationIdentity` is an ARN"),
        "v2 only: `true` refuses (`NotPermitted`) a body naming another origination or set than the function's, which the narrowed role may not use; needs `ORIGINATION_IDENTITY`", "true"),
    own("MAX_PRICE_PER_MINUTE", "none", Parameter("MaxPricePerMinute", ""),
        "v2 only: `MaxPricePerMinute` for every call (a body's own wins), `0.10`: up to two digits, a point, one to five", "0.10"),
    own("MAX_CONCURRENCY", "10", Parameter("MaxConcurrency", "10"),
        "sends in flight per invocation, 1–1000", "50"),
    own("DEADLINE_SAFETY_MS", "1000", Parameter("DeadlineSafetyMs", "1000"),
        "reserve before the invocation deadline, 100–600000, at most half the invocation ([deadline arithmetic](docs/operations.md#the-deadline-arithmetic))", "2500"),
    own("SEND_ATTEMPT_TIMEOUT_MS", "5000", Unset,
        "limit of one voice attempt (connecting included), 100–600000, less when the abandon point comes first; never retried in place (it may have placed the call)", "3000"),
    own("SEND_MAX_ATTEMPTS", "3", Unset,
        "requests per record per invocation, 1–10; only answers that placed nothing are retried in place", "5"),
    own("MESSAGE_TTL_SECONDS", "3600", Parameter("MessageTtlSeconds", "3600"),
        "how long a call stays worth placing, 5–1209600 (the template's queue keeps messages 4 days, so it allows up to 345600); a body's `TimeToLive` overrides it", "600"),
    own("SEND_RATE_LIMIT", "none (unpaced)", Parameter("SendRateLimit", "10/min"),
        "sends per instance, `N/s` or `N/min` (`10/min`, `2.5/s`)", "2/s"),
    own("CIRCUIT_BREAKER_THRESHOLD", "5", Parameter("CircuitBreakerThreshold", "5"),
        "consecutive service-side failures that open the breaker, 1–1000", "7"),
    own("CIRCUIT_BREAKER_OPEN_SECONDS", "30", Parameter("CircuitBreakerOpenSeconds", "30"),
        "first open period, 1–43200; doubles while probes fail, up to the backoff's cap; with failover on, the primary's stays at it while its calls go to the failover Region", "60"),
    own("FAILOVER_REGION", "none (off)", Parameter("FailoverRegion", ""),
        "a second Region that takes the calls while the primary's voice service is failing on its side, and hands them back when it answers ([docs/failover.md](docs/failover.md)); not `AWS_REGION`", "us-west-2"),
    own("FAILOVER_ORIGINATION_PHONE_NUMBER", "none", Parameter("FailoverOriginationPhoneNumber", ""),
        "v1, required with `FAILOVER_REGION`: the origination number there (E.164)", "+12065550177"),
    own("FAILOVER_ORIGINATION_IDENTITY", "none", Parameter("FailoverOriginationIdentity", ""),
        "v2, required with `FAILOVER_REGION`: the `OriginationIdentity` there; an ARN of that Region under `CONFIGURED_RESOURCES_ONLY`", "pool-west"),
    own("FAILOVER_CONFIGURATION_SET_NAME", "none", Parameter("FailoverConfigurationSetName", ""),
        "the configuration set there, for calls that leave the set to the function", "alerts-west"),
    own("FAILOVER_SEND_RATE_LIMIT", "none (`SEND_RATE_LIMIT`'s)", Parameter("FailoverSendRateLimit", ""),
        "sends per instance to the failover Region (its own quota), `N/s` or `N/min`", "1/s"),
    own("FAILOVER_ENDPOINT_URL", "none (the Region's own)", Unset,
        "the failover client's endpoint (tests, private endpoints); the primary's `AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE[_V2]` never applies to it", "http://127.0.0.1:4011"),
    own("DEAD_LETTER_QUEUE_URL", "none", Derived("the stack's dead-letter queue"),
        "where permanent failures, expired records and last receives go with their reason", "https://sqs.us-east-1.amazonaws.com/123456789012/dlq"),
    own("RETRY_BACKOFF_BASE_SECONDS", "none (off)", Parameter("RetryBackoffBaseSeconds", "10"),
        "backoff of the first redelivery, 1–43200; doubles per receive", "20"),
    own("RETRY_BACKOFF_MAX_SECONDS", "900", Parameter("RetryBackoffMaxSeconds", "900"),
        "backoff cap, 1–43200, and the breaker's longest open period; a base above it is lowered to it (one WARN), and with no cap set a base above 900 is the cap", "1800"),
    own("MAX_RECEIVE_COUNT", "none", Parameter("MaxReceiveCount", "100"),
        "the queue's `maxReceiveCount`, 1–1000: past half of it delays are spread over the time left to live, and the last receive is dead-lettered with its reason", "50"),
    own("IDEMPOTENCY_TABLE_NAME", "none (no ledger)", Derived("the stack's table when `IdempotencyLedger` is `true` (the default)"),
        "the DynamoDB table of the idempotency ledger ([docs/idempotency.md](docs/idempotency.md))", "ledger"),
    own("IDEMPOTENCY_TTL_SECONDS", "1209600", Unset,
        "how long a ledger entry stays valid, 3600–31536000; at least `MESSAGE_TTL_SECONDS` (init refuses less)", "86400"),
    own("ON_UNKNOWN_OUTCOME", "`retry`", Parameter("OnUnknownOutcome", "retry"),
        "`retry` calls again when an earlier attempt's outcome is unknown; `dead-letter` never does (at most once)", "dead-letter"),
    own("OUTCOME_EVENT_BUS_NAME", "none (outcomes off)", Parameter("OutcomeEventBusName", ""),
        "the EventBridge bus (name or ARN) that gets one `Voice Call Outcome` event per request ([docs/outcomes.md](docs/outcomes.md)); needs `IDEMPOTENCY_TABLE_NAME` and `STATUS_QUEUE_URL`", "outcomes"),
    own("STATUS_QUEUE_URL", "none", Derived("the stack's status queue when `OutcomeEventBusName` is set"),
        "the standard queue delivery events arrive on and outcome timers wait on; required with `OUTCOME_EVENT_BUS_NAME`, not FIFO", "https://sqs.us-east-1.amazonaws.com/123456789012/status"),
    own("OUTCOME_WAIT_SECONDS", "3600", Parameter("OutcomeWaitSeconds", "3600"),
        "how long a placed call's final event is waited for before its outcome is `unknown`, 1–259200; `IDEMPOTENCY_TTL_SECONDS` must be at least `MESSAGE_TTL_SECONDS` plus it", "600"),
    own("REDIAL_ON", "none (off)", Parameter("RedialOn", ""),
        "after which final statuses a request is called again: a comma list of `BUSY`, `NO_ANSWER`, `FAILED` ([docs/redial.md](docs/redial.md)); needs the ledger, outcomes and `CALL_QUEUE_URL`", "BUSY"),
    own("REDIAL_MAX_CALLS", "1", Parameter("RedialMaxCalls", "1"),
        "calls per request in all, the first included, 1–5 (the service's limit of calls to one recipient in 24 hours)", "3"),
    own("REDIAL_INTERVAL_SECONDS", "120", Parameter("RedialIntervalSeconds", "120"),
        "from a call's final event to the next call, 1 to `MESSAGE_TTL_SECONDS`; past 900 s the call path keeps the redial until its time (`RedialScheduled`)", "300"),
    own("CALL_QUEUE_URL", "none", Derived("the stack's call queue when `OutcomeEventBusName` is set on a standard stack"),
        "the standard queue a redial is put back on; set, a message may ask for redial with its own `Redial` member", "https://sqs.us-east-1.amazonaws.com/123456789012/calls"),
    own("TLS_ROOTS", "`amazon`", Unset,
        "`amazon`: the five Amazon Trust Services roots built in; `system`: the system store (a proxy with a private CA)", "system"),
    own("METRICS_NAMESPACE", "`VoiceDispatch`", Unset,
        "CloudWatch namespace of the EMF metrics (written when `AWS_LAMBDA_FUNCTION_NAME` is set)", "Calls"),
    own("AWS_LAMBDA_FUNCTION_NAME", "none", Derived("set by Lambda"),
        "turns the EMF metrics on, with the function's name as a dimension", "voice"),
    own("AWS_LAMBDA_LOG_LEVEL", "`INFO`", Derived("set by Lambda from `LogLevel`"),
        "log level (`RUST_LOG` outside Lambda); the SDK's crates stay at INFO; also the EMF documents' level", "DEBUG"),
    own("AWS_SAM_LOCAL", "none", Derived("set to `true` by `sam local`"),
        "under SAM local, a variable holding one of `STACK_RESOURCE_IDS` (an unresolved `!Ref`) is not configured, with a WARN", "true"),
    own("STACK_RESOURCE_IDS", "none", Derived("`DeadLetterQueue,IdempotencyTable`"),
        "the logical IDs the template passes by `!Ref`, which SAM local cannot resolve", "IdempotencyTable"),
    read_elsewhere("AWS_LAMBDA_LOG_FORMAT", "text",
        "`JSON` for one JSON object a line (the template sets it)"),
    read_elsewhere("AWS_REGION, AWS_MAX_ATTEMPTS, AWS_RETRY_MODE", "the SDK's",
        "read by the AWS SDK; the retry settings apply to SQS and DynamoDB, never to `SendVoiceMessage`"),
    Variable {
        name: "AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE, AWS_ENDPOINT_URL_PINPOINT_SMS_VOICE_V2, AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_EVENTBRIDGE",
        default: "the SDK's",
        template: Derived("declared empty, so `sam local --env-vars` can set them"),
        meaning: "endpoint overrides, read by the AWS SDK; an empty one is removed at start, so it is exactly as unset (the SDK would take an empty value as an endpoint)",
        sample: None,
    },
];

/// The README's configuration table.
pub fn markdown_table() -> String {
    let mut table = String::from(
        "| variable | binary's default | template | accepts and does |\n|---|---|---|---|\n",
    );
    for variable in VARIABLES {
        let names = variable
            .name
            .split(", ")
            .map(|name| format!("`{name}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let template = match variable.template {
            Parameter(parameter, "") => format!("`{parameter}` (empty)"),
            Parameter(parameter, default) => format!("`{parameter}`, {default}"),
            Derived(how) => how.to_owned(),
            Unset => "not set".to_owned(),
        };
        table.push_str(&format!(
            "| {names} | {} | {template} | {} |\n",
            variable.default, variable.meaning
        ));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_configuration_table_is_this_table() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&markdown_table()),
            "README.md's configuration table differs from src/config/variables.rs; it should read:\n{}",
            markdown_table()
        );
    }

    /// The template's `Variables:` (name to parameter) and its parameters' defaults, read
    /// from the text: `NAME: !Ref Parameter` and `Parameter:` ... `Default: value`.
    #[test]
    fn each_variable_set_to_its_listed_default_reads_as_unset() {
        let unset = format!(
            "{:?}",
            crate::config::Config::from_lookup(|_| None).unwrap()
        );
        for variable in VARIABLES.iter().filter(|v| v.sample.is_some()) {
            let default = variable.default.trim_matches('`');
            if default.starts_with("none") || variable.name == "AWS_LAMBDA_LOG_LEVEL" {
                continue;
            }
            let set = crate::config::Config::from_lookup(|name| {
                (name == variable.name).then(|| default.to_owned())
            })
            .unwrap_or_else(|err| panic!("{}={default}: {err}", variable.name));
            assert_eq!(
                format!("{set:?}"),
                unset,
                "{}'s listed default",
                variable.name
            );
        }
    }

    /// Name and value pairs.
    type Pairs = Vec<(String, String)>;

    fn template() -> (Pairs, Pairs) {
        let text = include_str!("../../template.yaml");
        let mut refs = Vec::new();
        let mut defaults = Vec::new();
        let mut parameter: Option<String> = None;
        let mut in_parameters = false;
        for line in text.lines() {
            if !line.starts_with(' ') && !line.is_empty() {
                in_parameters = line == "Parameters:";
            }
            let trimmed = line.trim();
            if in_parameters && line.starts_with("  ") && !line.starts_with("   ") {
                parameter = trimmed.strip_suffix(':').map(str::to_owned);
            }
            if let (true, Some(name), Some(default)) =
                (in_parameters, &parameter, trimmed.strip_prefix("Default: "))
            {
                defaults.push((name.clone(), default.trim_matches('"').to_owned()));
            }
            if let Some((name, value)) = trimmed.split_once(": !Ref ") {
                if name.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                    refs.push((name.to_owned(), value.to_owned()));
                }
            }
        }
        (refs, defaults)
    }

    #[test]
    fn the_template_sets_each_variable_from_the_parameter_and_default_this_table_gives() {
        let (refs, defaults) = template();
        for variable in VARIABLES {
            let Parameter(parameter, default) = variable.template else {
                continue;
            };
            let from_template = refs.iter().find(|(name, _)| name == variable.name);
            assert!(
                from_template.is_some_and(|(_, p)| p == parameter)
                    || matches!(variable.name, "RETRY_BACKOFF_BASE_SECONDS"),
                "{}: the template sets it from {from_template:?}, not {parameter}",
                variable.name
            );
            let declared = defaults.iter().find(|(name, _)| name == parameter);
            assert_eq!(
                declared.map(|(_, d)| d.as_str()),
                Some(default),
                "{parameter}'s default"
            );
        }
        // And every variable the template sets is in the table.
        for (name, _) in &refs {
            assert!(
                VARIABLES.iter().any(|v| v.name == name),
                "{name} is set by the template but not in the table"
            );
        }
    }
}

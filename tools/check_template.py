"""Translates template.yaml as SAM's transform would (offline, aws-sam-translator) and checks
what gets deployed, for several parameter sets:

- the role: no AWS managed policy but X-Ray's, and no statement on "*" but
  `sms-voice:SendVoiceMessage` and X-Ray's actions;
- the event source mapping: no batching window on a FIFO queue (Lambda refuses one), the
  window as given on a standard queue;
- the ledger's statement only when the ledger is on;
- v2 with the origination identity as an ARN: `SendVoiceMessage` on that identity and the
  configuration set alone (the set's ARN built from its name, or as given), and
  `CONFIGURED_RESOURCES_ONLY` set so the function refuses a message naming others; with a
  phone number as the identity, "*" and the setting off;
- a failover Region: its identity and set named as well when the role is narrowed (nothing
  more when failover is off), its settings passed to the function, and the alarm for calls
  it carries only when it is on.

Each check is also run on a template known to break it (SAM's generated role; a window on a
FIFO source), so a check that cannot fail fails the run.

Usage: python tools/check_template.py template.yaml
"""

import copy
import logging
import os
import re
import sys

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# The translator's own usage metrics nag on every run; they are not ours to publish.
logging.disable(logging.WARNING)

from samtranslator.translator.transform import transform  # noqa: E402
from samtranslator.yaml_helper import yaml_parse  # noqa: E402

# The only actions a statement may allow on "*": neither has resource-level permissions.
STAR_ALLOWED = {"sms-voice:SendVoiceMessage", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
XRAY_MANAGED = "AWSXrayWriteOnlyAccess"
NO_VALUE = object()
# The account the checks pretend to deploy in.
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012"}


class ManagedPolicies:
    """The managed-policy loader SAM asks for ARNs by name; offline, it builds them."""

    def load(self):
        return {
            name: f"arn:aws:iam::aws:policy/{name}"
            for name in (
                "AWSLambdaBasicExecutionRole",
                "AWSLambdaSQSQueueExecutionRole",
                "AWSXrayWriteOnlyAccess",
                "AWSLambdaRole",
            )
        }


class Resolver:
    """Enough of CloudFormation's intrinsics to read the translated template for one set of
    parameters: Ref to parameters, the conditions, Fn::If, Fn::Equals/Not/And/Or."""

    def __init__(self, template, parameters):
        self.values = {
            name: str(spec.get("Default", ""))
            for name, spec in template.get("Parameters", {}).items()
        }
        self.values.update(parameters)
        self.values.update(PSEUDO)
        self.conditions = template.get("Conditions", {})

    def condition(self, name):
        return bool(self.resolve(self.conditions[name]))

    def resolve(self, node):
        if isinstance(node, list):
            return [v for v in (self.resolve(n) for n in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                if arg == "AWS::NoValue":
                    return NO_VALUE
                return self.values.get(arg, {"Ref": arg})
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::Sub" and isinstance(arg, str):
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.values.get(m.group(1), m.group(0))), arg)
            if key == "Fn::Join":
                separator, parts = arg
                return separator.join(str(self.resolve(p)) for p in parts)
            if key == "Fn::Split":
                separator, text = arg
                return str(self.resolve(text)).split(separator)
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(index)]
            if key == "Fn::Equals":
                left, right = (self.resolve(a) for a in arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(a) for a in arg)
            if key == "Fn::Or":
                return any(self.resolve(a) for a in arg)
            if key == "Fn::Contains":
                items, value = arg
                return str(self.resolve(value)) in [str(i) for i in self.resolve(items)]
            if key == "Condition":
                return self.condition(arg)
        return {
            k: v for k, v in ((k, self.resolve(v)) for k, v in node.items()) if v is not NO_VALUE
        }


def translate(template, parameters):
    template = copy.deepcopy(template)
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://bucket/bootstrap.zip"
    translated = transform(template, parameters, ManagedPolicies())
    resolver = Resolver(translated, parameters)
    resources = {}
    for name, resource in translated["Resources"].items():
        if "Condition" in resource and not resolver.condition(resource["Condition"]):
            continue
        resources[name] = resolver.resolve(resource)
    return resources


def refused_by_rules(template, parameters):
    """The template's Rules whose assertions a parameter set fails, as CloudFormation
    evaluates them before creating anything."""
    resolver = Resolver(template, parameters)
    refused = []
    for name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not resolver.resolve(rule["RuleCondition"]):
            continue
        if not all(resolver.resolve(a["Assert"]) for a in rule["Assertions"]):
            refused.append(name)
    return refused


def as_list(value):
    return value if isinstance(value, list) else [value]


def role_problems(resources):
    problems = []
    roles = {n: r for n, r in resources.items() if r["Type"] == "AWS::IAM::Role"}
    if not roles:
        problems.append("no IAM role in the translated template")
    for name, role in roles.items():
        props = role.get("Properties", {})
        for arn in props.get("ManagedPolicyArns", []):
            if not str(arn).endswith(XRAY_MANAGED):
                problems.append(f"{name}: managed policy {arn}")
        for policy in props.get("Policies", []):
            for statement in as_list(policy["PolicyDocument"]["Statement"]):
                if statement.get("Effect") != "Allow":
                    continue
                if "*" in as_list(statement.get("Resource", [])):
                    extra = set(as_list(statement["Action"])) - STAR_ALLOWED
                    if extra:
                        problems.append(f"{name}: {sorted(extra)} on *")
    return problems


def grants(resources):
    """(action, resource) pairs the roles allow, resources as the template wrote them."""
    found = set()
    for resource in resources.values():
        if resource["Type"] != "AWS::IAM::Role":
            continue
        for policy in resource.get("Properties", {}).get("Policies", []):
            for statement in as_list(policy["PolicyDocument"]["Statement"]):
                if statement.get("Effect") != "Allow":
                    continue
                for action in as_list(statement["Action"]):
                    for target in as_list(statement.get("Resource", [])):
                        found.add((action, str(target)))
    return found


# What the deployed function needs, on which resource (`Fn::GetAtt` as the template says it):
# the event source mapping polls with the function's role, and Lambda logs with it.
REQUIRED = [
    ("sms-voice:SendVoiceMessage", "*"),
    ("sqs:ReceiveMessage", "CallQueue"),
    ("sqs:DeleteMessage", "CallQueue"),
    ("sqs:GetQueueAttributes", "CallQueue"),
    ("sqs:ChangeMessageVisibility", "CallQueue"),
    ("sqs:SendMessage", "DeadLetterQueue"),
    ("logs:CreateLogStream", "FunctionLogs"),
    ("logs:PutLogEvents", "FunctionLogs"),
    ("xray:PutTraceSegments", "*"),
]
LEDGER_REQUIRED = [
    ("dynamodb:PutItem", "IdempotencyTable"),
    ("dynamodb:UpdateItem", "IdempotencyTable"),
    ("dynamodb:DeleteItem", "IdempotencyTable"),
]


def actions(resources):
    """The actions the roles allow, on whatever resource."""
    return {action for action, _ in grants(resources)}


def missing(resources, required):
    have = grants(resources)
    return [
        (action, target)
        for action, target in required
        if not any(a == action and (target == "*" and r == "*" or target in r and r != "*") for a, r in have)
    ]


def environment(resources, name="VoiceDispatchFunction"):
    function = resources.get(name)
    if not function or function["Type"] != "AWS::Lambda::Function":
        raise SystemExit(f"expected the function {name}")
    return function["Properties"].get("Environment", {}).get("Variables", {})


def places(resources):
    """The resources the roles may place calls on."""
    return {r for a, r in grants(resources) if a == "sms-voice:SendVoiceMessage"}


def narrowed_to(resources, expected):
    """Whether the role may place calls on exactly these resources."""
    return places(resources) == expected


def told_narrowed(resources):
    """Whether the function is told its role is narrowed, so it refuses other resources."""
    return environment(resources).get("CONFIGURED_RESOURCES_ONLY") == "true"


def mapping(resources, name="VoiceDispatchFunctionCalls"):
    found = resources.get(name)
    if not found or found["Type"] != "AWS::Lambda::EventSourceMapping":
        raise SystemExit(f"expected the event source mapping {name}")
    return found["Properties"]


def role_grants(resources, role):
    """(action, resource) pairs one role allows."""
    return grants({role: resources[role]})


# What the call function needs beyond the ledger when outcomes are on: timers on the status
# queue, and an unplaced outcome's transaction (its ConditionCheck) and read-back.
CALL_OUTCOMES_REQUIRED = [
    ("sqs:SendMessage", "StatusQueue"),
    ("dynamodb:ConditionCheckItem", "IdempotencyTable"),
    ("dynamodb:GetItem", "IdempotencyTable"),
    ("dynamodb:PutItem", "IdempotencyTable"),
]


def call_role_publishes(resources):
    return any(a.startswith("events:") for a, _ in role_grants(resources, "VoiceDispatchRole"))


def senders_scoped(resources):
    policy = resources["StatusQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    senders = [st for st in policy if st.get("Effect") == "Allow"]
    return senders, all("aws:SourceArn" in st.get("Condition", {}).get("ArnEquals", {}) for st in senders)


def role_gaps(resources, role, required):
    have = role_grants(resources, role)
    return [need for need in required if not any(a == need[0] and need[1] in r for a, r in have)]


# What the status function needs (delivery outcomes on), on which resource.
STATUS_REQUIRED = [
    ("sqs:ReceiveMessage", "StatusQueue"),
    ("sqs:DeleteMessage", "StatusQueue"),
    ("sqs:ChangeMessageVisibility", "StatusQueue"),
    ("sqs:SendMessage", "StatusQueue"),
    ("sqs:SendMessage", "StatusDeadLetterQueue"),
    ("dynamodb:GetItem", "IdempotencyTable"),
    ("dynamodb:PutItem", "IdempotencyTable"),
    ("dynamodb:UpdateItem", "IdempotencyTable"),
    ("events:PutEvents", "event-bus/outcomes"),
    ("logs:PutLogEvents", "StatusFunctionLogs"),
]


def check_outcomes(template, expect):
    """Delivery outcomes: the status path's resources and each role's least privilege."""
    off = translate(template, {})
    expect(
        not any(name.startswith("Status") for name in off),
        "outcomes off (default): no status queue, function or role",
    )
    topic = "arn:aws:sns:us-east-1:123456789012:voice-events"
    for api in ("v1", "v2"):
        on = translate(template, {"OutcomeEventBusName": "outcomes", "VoiceApi": api})
        expect(not role_problems(on), f"outcomes on ({api}): least privilege")
        status = role_grants(on, "StatusRole")
        gaps = role_gaps(on, "StatusRole", STATUS_REQUIRED)
        expect(not gaps, f"outcomes on ({api}): the status role has what it needs ({gaps or 'all'})")
        gaps = role_gaps(on, "VoiceDispatchRole", CALL_OUTCOMES_REQUIRED)
        expect(not gaps, f"outcomes on ({api}): the call role has what arming timers needs ({gaps or 'all'})")
        expect(
            {r for a, r in status if a == "events:PutEvents"}
            == {"arn:aws:events:us-east-1:123456789012:event-bus/outcomes"},
            f"outcomes on ({api}): PutEvents on the outcome bus alone",
        )
        call = role_grants(on, "VoiceDispatchRole")
        expect(not call_role_publishes(on), f"outcomes on ({api}): the call function's role publishes nothing")
        expect(
            {r for a, r in call if a == "sqs:SendMessage" and "Status" in r} == {"{'Fn::GetAtt': ['StatusQueue', 'Arn']}"},
            f"outcomes on ({api}): the call role may arm timers on the status queue, nothing else of it",
        )
        expect(
            ("VoiceEventsRule" in on) == (api == "v2"),
            f"outcomes on ({api}): a rule on the default bus for v2's events {'only' if api == 'v2' else 'not'}",
        )
        env = environment(on, "StatusFunction")
        expect(
            env.get("OUTCOME_EVENT_BUS_NAME") == "outcomes" and "STATUS_QUEUE_URL" in env
            and environment(on).get("OUTCOME_EVENT_BUS_NAME") == "outcomes",
            f"outcomes on ({api}): both functions are told the bus and the status queue",
        )
        senders, scoped = senders_scoped(on)
        expect(
            scoped and len(senders) == (1 if api == "v2" else 0),
            f"outcomes on ({api}): the status queue's senders are scoped by aws:SourceArn",
        )
    topic = "arn:aws:sns:us-east-1:123456789012:voice-events"
    with_topic = translate(template, {"OutcomeEventBusName": "outcomes", "StatusTopicArn": topic})
    expect(
        with_topic.get("StatusTopicSubscription", {}).get("Properties", {}).get("TopicArn") == topic,
        "outcomes with a topic: the topic is subscribed to the status queue",
    )
    bus_arn = "arn:aws:events:us-east-1:123456789012:event-bus/custom"
    by_arn = translate(template, {"OutcomeEventBusName": bus_arn})
    expect(
        {r for a, r in role_grants(by_arn, "StatusRole") if a == "events:PutEvents"} == {bus_arn},
        "outcomes to a bus given by ARN: PutEvents on that ARN",
    )
    expect(
        "OutcomesNeedTheLedger" in refused_by_rules(template, {"OutcomeEventBusName": "outcomes", "VoiceApi": "v1"})
        and "OutcomesNeedTheLedger" not in refused_by_rules(
            template, {"OutcomeEventBusName": "outcomes", "VoiceApi": "v1", "StatusTopicArn": topic}),
        "outcomes under v1 without an SNS topic (every outcome would be unknown): refused",
    )
    expect(
        "OutcomesNeedTheLedger" in refused_by_rules(
            template, {"OutcomeEventBusName": "outcomes", "IdempotencyLedger": "false"})
        and "OutcomesNeedTheLedger" not in refused_by_rules(
            template, {"OutcomeEventBusName": "outcomes", "VoiceApi": "v2"}),
        "outcomes without the ledger: refused before anything is created",
    )
    # The checks can fail: a status role publishing to every bus, a call role that publishes.
    wide = copy.deepcopy(template)
    for statement in wide["Resources"]["StatusRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
        if statement.get("Sid") == "PublishOutcomes":
            statement["Resource"] = "*"
    expect(
        any("events:PutEvents" in p for p in role_problems(translate(wide, {"OutcomeEventBusName": "outcomes"}))),
        "the least-privilege check catches PutEvents on *",
    )
    publishing = copy.deepcopy(template)
    call_statements = publishing["Resources"]["VoiceDispatchRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    call_statements["Statement"].append(
        {"Sid": "Publish", "Effect": "Allow", "Action": "events:PutEvents",
         "Resource": "arn:aws:events:us-east-1:123456789012:event-bus/outcomes"})
    on = translate(publishing, {"OutcomeEventBusName": "outcomes"})
    expect(call_role_publishes(on), "the publish check catches a call role that may publish")
    unscoped = copy.deepcopy(template)
    for statement in unscoped["Resources"]["StatusQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]:
        if isinstance(statement, dict) and "Fn::If" in statement:
            statement["Fn::If"][1].pop("Condition", None)
    on = translate(unscoped, {"OutcomeEventBusName": "outcomes", "VoiceApi": "v2"})
    expect(not senders_scoped(on)[1], "the scoping check catches a status queue policy without aws:SourceArn")
    stripped = copy.deepcopy(template)
    statements = stripped["Resources"]["StatusRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    statements["Statement"] = [st for st in statements["Statement"] if st.get("Sid") != "RearmOutcomeTimers"]
    on = translate(stripped, {"OutcomeEventBusName": "outcomes"})
    expect(
        ("sqs:SendMessage", "StatusQueue") in role_gaps(on, "StatusRole", STATUS_REQUIRED),
        "the needs check catches a status role that cannot re-arm its timers",
    )


def check_redial(template, expect):
    """Redial: the status role may put a request back on the call queue, and only that queue;
    both functions are told the policy; FIFO stacks and stacks without outcomes refuse it."""
    on = translate(template, {"OutcomeEventBusName": "outcomes", "VoiceApi": "v2", "RedialOn": "BUSY,NO_ANSWER"})
    expect(not role_problems(on), "redial on: least privilege")
    sends = {r for a, r in role_grants(on, "StatusRole") if a == "sqs:SendMessage"}
    expect(
        any("CallQueue" in r for r in sends) and not any("DeadLetterQueue'" in r and "Status" not in r for r in sends),
        "redial on: the status role may send to the call queue (and no other queue of the call path)",
    )
    for name in ("VoiceDispatchFunction", "StatusFunction"):
        env = environment(on, name)
        expect(
            env.get("REDIAL_ON") == "BUSY,NO_ANSWER" and "CallQueue" in str(env.get("CALL_QUEUE_URL")),
            f"redial on: {name} is told the policy and the call queue",
        )
    fifo = translate(template, {"OutcomeEventBusName": "outcomes", "VoiceApi": "v2", "Fifo": "true"})
    expect(
        not any("CallQueue" in r for a, r in role_grants(fifo, "StatusRole") if a == "sqs:SendMessage")
        and environment(fifo, "StatusFunction").get("CALL_QUEUE_URL") == "",
        "outcomes on a FIFO stack: no redial, so no call queue for the status role",
    )
    refused = lambda params: "RedialNeedsOutcomesOnAStandardQueue" in refused_by_rules(template, params)
    expect(refused({"RedialOn": "BUSY"}), "redial without outcomes: refused by the Rules")
    expect(
        refused({"RedialOn": "BUSY", "OutcomeEventBusName": "outcomes", "VoiceApi": "v2", "Fifo": "true"}),
        "redial on a FIFO stack: refused by the Rules",
    )
    expect(
        not refused({"RedialOn": "BUSY", "OutcomeEventBusName": "outcomes", "VoiceApi": "v2"}),
        "redial with outcomes on a standard stack: accepted",
    )
    # The checks can fail: a status role without its redial grant, or with it on every queue.
    stripped = copy.deepcopy(template)
    statements = stripped["Resources"]["StatusRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    statements["Statement"] = [
        st for st in statements["Statement"] if not (isinstance(st, dict) and "Fn::If" in st)
    ]
    gone = translate(stripped, {"OutcomeEventBusName": "outcomes", "VoiceApi": "v2", "RedialOn": "BUSY"})
    expect(
        role_gaps(gone, "StatusRole", [("sqs:SendMessage", "CallQueue")]),
        "the needs check catches a status role that cannot redial",
    )
    wide = copy.deepcopy(template)
    for statement in wide["Resources"]["StatusRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
        if isinstance(statement, dict) and "Fn::If" in statement:
            statement["Fn::If"][1]["Resource"] = "*"
    widened = translate(wide, {"OutcomeEventBusName": "outcomes", "VoiceApi": "v2", "RedialOn": "BUSY"})
    expect(
        any("sqs:SendMessage" in p for p in role_problems(widened)),
        "the least-privilege check catches a redial grant on every queue",
    )


def check(template):
    failures = []

    def expect(ok, what):
        print(("ok   " if ok else "FAIL ") + what)
        if not ok:
            failures.append(what)

    standard = translate(template, {"MaximumBatchingWindowInSeconds": "5"})
    problems = role_problems(standard)
    expect(not problems, f"standard stack: least privilege ({problems or 'clean'})")
    expect(
        mapping(standard).get("MaximumBatchingWindowInSeconds") == 5
        or mapping(standard).get("MaximumBatchingWindowInSeconds") == "5",
        "standard stack: the batching window is as given (5 s)",
    )
    expect("dynamodb:PutItem" in actions(standard), "ledger on (default): the role may write the table")
    gaps = missing(standard, REQUIRED + LEDGER_REQUIRED)
    expect(not gaps, f"standard stack: the role has what the function needs ({gaps or 'all'})")

    fifo = translate(template, {"Fifo": "true", "MaximumBatchingWindowInSeconds": "5", "BatchSize": "10"})
    expect(not role_problems(fifo), "FIFO stack: least privilege")
    expect(
        "MaximumBatchingWindowInSeconds" not in mapping(fifo),
        "FIFO stack with a window parameter set: the event source mapping has no window",
    )

    identity = "arn:aws:sms-voice:us-east-1:123456789012:pool/pool-0123456789abcdef"
    set_arn = "arn:aws:sms-voice:us-east-1:123456789012:configuration-set/alerts"
    narrowed = REQUIRED[1:] + LEDGER_REQUIRED + [("sms-voice:SendVoiceMessage", identity)]
    for name, parameters, expected in [
        ("a set name", {"ConfigurationSetName": "alerts"}, {identity, set_arn}),
        ("a set ARN", {"ConfigurationSetName": set_arn}, {identity, set_arn}),
        ("no set", {}, {identity}),
    ]:
        v2 = translate(
            template, {"VoiceApi": "v2", "OriginationIdentity": identity, **parameters}
        )
        expect(not role_problems(v2), f"v2, identity ARN, {name}: least privilege")
        expect(
            narrowed_to(v2, expected),
            f"v2, identity ARN, {name}: calls only from that identity and set ({sorted(places(v2))})",
        )
        gaps = missing(v2, narrowed)
        expect(not gaps, f"v2, identity ARN, {name}: the role has what the function needs ({gaps or 'all'})")
        expect(
            told_narrowed(v2) and environment(v2).get("VOICE_API") == "v2",
            f"v2, identity ARN, {name}: the function refuses messages naming other resources",
        )
    v2_number = translate(template, {"VoiceApi": "v2", "OriginationIdentity": "+12065550199"})
    expect(
        narrowed_to(v2_number, {"*"}) and not told_narrowed(v2_number),
        "v2 with a phone number as the identity: no ARN to name, so *, and messages may name theirs",
    )
    gaps = missing(v2_number, REQUIRED + LEDGER_REQUIRED)
    expect(not gaps, f"v2 with a phone number: the role has what the function needs ({gaps or 'all'})")
    expect(
        not told_narrowed(standard),
        "v1: messages may name their own number and set",
    )

    west_identity = "arn:aws:sms-voice:us-west-2:123456789012:pool/pool-0fedcba9876543210"
    west_set = "arn:aws:sms-voice:us-west-2:123456789012:configuration-set/alerts-west"
    failover_v2 = {
        "VoiceApi": "v2",
        "OriginationIdentity": identity,
        "ConfigurationSetName": "alerts",
        "FailoverRegion": "us-west-2",
        "FailoverOriginationIdentity": west_identity,
        "FailoverConfigurationSetName": "alerts-west",
    }
    for name, parameters, expected in [
        ("a set in each", failover_v2, {identity, set_arn, west_identity, west_set}),
        (
            "a set ARN there",
            {**failover_v2, "FailoverConfigurationSetName": west_set},
            {identity, set_arn, west_identity, west_set},
        ),
        (
            "no set there",
            {**failover_v2, "FailoverConfigurationSetName": ""},
            {identity, set_arn, west_identity},
        ),
    ]:
        failover = translate(template, parameters)
        expect(not role_problems(failover), f"v2 failover, {name}: least privilege")
        expect(
            narrowed_to(failover, expected),
            f"v2 failover, {name}: calls only from each Region's identity and set ({sorted(places(failover))})",
        )
    unnarrowed_failover = translate(
        template,
        {**failover_v2, "OriginationIdentity": "pool-east", "FailoverOriginationIdentity": "pool-west"},
    )
    expect(
        narrowed_to(unnarrowed_failover, {"*"}) and not told_narrowed(unnarrowed_failover),
        "v2 failover with identity IDs: no ARN to name in either Region, so *",
    )
    failover = translate(template, failover_v2)
    env = environment(failover)
    expect(
        env.get("FAILOVER_REGION") == "us-west-2"
        and env.get("FAILOVER_ORIGINATION_IDENTITY") == west_identity
        and env.get("FAILOVER_CONFIGURATION_SET_NAME") == "alerts-west",
        "v2 failover: the function is told the failover Region and what to use there",
    )
    def alarms(resources):
        """Every metric an alarm watches, alone or in its metric math."""
        names = set()
        for r in resources.values():
            if r["Type"] != "AWS::CloudWatch::Alarm":
                continue
            names.add(r["Properties"].get("MetricName"))
            for metric in r["Properties"].get("Metrics", []):
                names.add(metric.get("MetricStat", {}).get("Metric", {}).get("MetricName"))
        return names - {None}

    expect(
        {"OldestUnsentAge", "ServiceFailing", "ServiceOutage", "Throttled", "Errors", "Throttles"}
        <= alarms(standard),
        "alarms on the function's own waiting age, service failures and throttling, and on its invocation errors and throttles",
    )
    expect("ApproximateAgeOfOldestMessage" not in alarms(standard), "no alarm on SQS's age, which drops messages received 3 times")
    no_ledger = translate(template, {"IdempotencyLedger": "false"})
    expect(
        "LedgerUnavailable" in standard and "LedgerUnavailable" not in no_ledger,
        "ledger on: an alarm when it cannot be written; off: none",
    )
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = [name for group in groups for name in group["Parameters"]]
    expect(
        sorted(grouped) == sorted(template["Parameters"]) and len(grouped) == len(set(grouped)),
        "the console groups every parameter once (AWS::CloudFormation::Interface)",
    )
    mapping_id = template["Outputs"]["EventSourceMappingId"]["Value"]
    target = mapping_id.get("Ref") if isinstance(mapping_id, dict) else None
    expect(
        standard.get(target, {}).get("Type") == "AWS::Lambda::EventSourceMapping",
        f"Outputs: EventSourceMappingId names the event source mapping SAM creates ({target})",
    )
    expect("FailedOver" in alarms(failover), "failover on: an alarm when the failover Region carries calls")
    expect("FailedOver" not in alarms(standard), "failover off: no failover alarm")
    v1_failover = translate(
        template, {"FailoverRegion": "us-west-2", "FailoverOriginationPhoneNumber": "+12065550177"}
    )
    expect(
        narrowed_to(v1_failover, {"*"}) and not role_problems(v1_failover),
        "v1 failover: v1 has no resource-level permissions, the same * covers both Regions",
    )
    expect(
        environment(v1_failover).get("FAILOVER_ORIGINATION_PHONE_NUMBER") == "+12065550177",
        "v1 failover: the function is told its number there",
    )

    failover_rule = "FailoverNeedsTheLedgerAndAnOrigination"
    v1_failover_parameters = {"FailoverRegion": "us-west-2", "FailoverOriginationPhoneNumber": "+12065550177"}
    for name, parameters, refused in [
        ("v1 failover with its number", v1_failover_parameters, False),
        ("v2 failover with its identity", failover_v2, False),
        ("failover without the ledger", {**v1_failover_parameters, "IdempotencyLedger": "false"}, True),
        ("v1 failover without a number there", {"FailoverRegion": "us-west-2"}, True),
        (
            "v2 failover with only a number there",
            {"VoiceApi": "v2", **v1_failover_parameters},
            True,
        ),
        ("failover off", {}, False),
        (
            "v1 failover from the primary's own number",
            {**v1_failover_parameters, "OriginationPhoneNumber": "+12065550177"},
            True,
        ),
        (
            "v2 failover from the primary's own identity",
            {**failover_v2, "FailoverOriginationIdentity": identity},
            True,
        ),
    ]:
        expect(
            (failover_rule in refused_by_rules(template, parameters)) == refused,
            f"{name}: {'refused' if refused else 'accepted'} before anything is created",
        )
    unruled = copy.deepcopy(template)
    del unruled["Rules"][failover_rule]
    expect(
        failover_rule not in refused_by_rules(unruled, {"FailoverRegion": "us-west-2"}),
        "the rules check catches a template that lets failover go without its origination",
    )

    off = translate(template, {"IdempotencyLedger": "false"})
    expect(
        not any(a.startswith("dynamodb:") for a in actions(off)),
        "ledger off: no DynamoDB statement",
    )
    check_outcomes(template, expect)
    check_redial(template, expect)

    # The checks can fail: SAM's generated role, a window on a FIFO source, a role without
    # a statement the function needs.
    stripped = copy.deepcopy(template)
    role = stripped["Resources"]["VoiceDispatchRole"]["Properties"]["Policies"][0]
    role["PolicyDocument"]["Statement"] = [
        st for st in role["PolicyDocument"]["Statement"]
        if not (isinstance(st, dict) and st.get("Sid") == "ConsumeTheCallQueue")
    ]
    expect(
        ("sqs:ReceiveMessage", "CallQueue") in missing(translate(stripped, {}), REQUIRED),
        "the needs check catches a role that cannot poll the call queue",
    )
    unnarrowed = copy.deepcopy(template)
    unnarrowed_role = unnarrowed["Resources"]["VoiceDispatchRole"]["Properties"]["Policies"][0]
    for statement in unnarrowed_role["PolicyDocument"]["Statement"]:
        if isinstance(statement, dict) and statement.get("Sid") == "PlaceCalls":
            statement["Resource"] = "*"
    v2_parameters = {"VoiceApi": "v2", "OriginationIdentity": identity}
    expect(
        not narrowed_to(translate(unnarrowed, v2_parameters), {identity}),
        "the narrowing check catches a role left on * under v2 with an identity ARN",
    )
    no_failover_grant = copy.deepcopy(template)
    for statement in no_failover_grant["Resources"]["VoiceDispatchRole"]["Properties"]["Policies"][0][
        "PolicyDocument"
    ]["Statement"]:
        if isinstance(statement, dict) and statement.get("Sid") == "PlaceCalls":
            statement["Resource"]["Fn::If"][1] = statement["Resource"]["Fn::If"][1][:2]
    expect(
        not narrowed_to(
            translate(no_failover_grant, failover_v2), {identity, set_arn, west_identity, west_set}
        ),
        "the narrowing check catches a role that cannot place calls from the failover Region",
    )
    unpinned = copy.deepcopy(template)
    next(
        r for r in unpinned["Resources"].values() if r["Type"] == "AWS::Serverless::Function"
    )["Properties"]["Environment"]["Variables"].pop("CONFIGURED_RESOURCES_ONLY")
    expect(
        not told_narrowed(translate(unpinned, v2_parameters)),
        "the setting check catches a function not told its role is narrowed",
    )
    generated = copy.deepcopy(template)
    function = next(
        r for r in generated["Resources"].values() if r["Type"] == "AWS::Serverless::Function"
    )
    del function["Properties"]["Role"]
    function["Properties"]["Policies"] = [{"Version": "2012-10-17", "Statement": []}]
    caught = role_problems(translate(generated, {}))
    expect(
        any("AWSLambdaBasicExecutionRole" in p for p in caught)
        and any("AWSLambdaSQSQueueExecutionRole" in p for p in caught),
        "the role check catches SAM's generated role and its managed policies",
    )
    windowed = copy.deepcopy(template)
    event = next(
        r for r in windowed["Resources"].values() if r["Type"] == "AWS::Serverless::Function"
    )["Properties"]["Events"]["Calls"]["Properties"]
    event["MaximumBatchingWindowInSeconds"] = {"Ref": "MaximumBatchingWindowInSeconds"}
    expect(
        "MaximumBatchingWindowInSeconds"
        in mapping(translate(windowed, {"Fifo": "true", "MaximumBatchingWindowInSeconds": "5"})),
        "the window check catches a window on a FIFO source",
    )
    return failures


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    with open(path, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    failures = check(template)
    if failures:
        print(f"{len(failures)} template check(s) failed", file=sys.stderr)
        sys.exit(1)
    print("template checks passed")


if __name__ == "__main__":
    main()

"""The Python baseline: how a Python user does this today.

A Powertools for AWS Lambda BatchProcessor handler with a module-level boto3 client, written
as the Powertools documentation shows it (partial batch responses for SQS). It runs under
awslambdaric against the same local Runtime API and the same voice fake as the Rust function.
"""
import json

import boto3
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

processor = BatchProcessor(event_type=EventType.SQS)
client = boto3.client("pinpoint-sms-voice")


def record_handler(record: SQSRecord):
    message = json.loads(record.body)
    client.send_voice_message(**message)


def lambda_handler(event, context):
    return process_partial_response(
        event=event,
        record_handler=record_handler,
        processor=processor,
        context=context,
    )

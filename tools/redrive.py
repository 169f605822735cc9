#!/usr/bin/env python3
"""Redrive dead letters back to the call queue, all of them or only those whose
`DispatchError` code is one of --code, as the SQS console's "Start DLQ redrive" does: each
letter's body and message attributes go back unchanged (its `IdempotencyKey` and
`DispatchFirstSent` too, so the function knows it as the same request: never called late,
never twice under ON_UNKNOWN_OUTCOME=dead-letter), then it is deleted from the DLQ.

    python3 tools/redrive.py --from DLQ_URL --to CALL_QUEUE_URL [--code Expired ...]

Letters with other codes are left in the DLQ, visible again at once. Needs boto3 and
credentials allowed sqs:ReceiveMessage, sqs:DeleteMessage and sqs:ChangeMessageVisibility
on the DLQ and sqs:SendMessage on the call queue. On a FIFO pair, each letter keeps its
MessageGroupId and is deduplicated on its DLQ message id, so a re-run after a move whose
delete failed sends nothing twice (the function's ledger key does not change). A letter left
behind on a FIFO DLQ holds the rest of its message group until the run ends: filter by code
per group, or redrive the whole queue.
"""

import argparse
import json
import sys

import boto3


def code_of(message):
    reason = message.get("MessageAttributes", {}).get("DispatchError", {})
    try:
        return json.loads(reason.get("StringValue", "{}")).get("code")
    except ValueError:
        return None


def redrive(sqs, source, destination, codes):
    moved, kept = 0, []
    fifo = destination.endswith(".fifo")
    while True:
        answer = sqs.receive_message(
            QueueUrl=source,
            MaxNumberOfMessages=10,
            VisibilityTimeout=60,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["MessageGroupId"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            break
        for message in messages:
            if codes and code_of(message) not in codes:
                kept.append(message["ReceiptHandle"])
                continue
            send = {
                "QueueUrl": destination,
                "MessageBody": message["Body"],
            }
            if message.get("MessageAttributes"):
                send["MessageAttributes"] = message["MessageAttributes"]
            if fifo:
                send["MessageGroupId"] = message.get("Attributes", {}).get("MessageGroupId", "redrive")
                send["MessageDeduplicationId"] = message["MessageId"]
            sqs.send_message(**send)
            sqs.delete_message(QueueUrl=source, ReceiptHandle=message["ReceiptHandle"])
            moved += 1
    # The letters left behind are visible again at once.
    for handle in kept:
        sqs.change_message_visibility(QueueUrl=source, ReceiptHandle=handle, VisibilityTimeout=0)
    return moved, len(kept)


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", required=True, help="the dead-letter queue's URL")
    parser.add_argument("--to", dest="destination", required=True, help="the call queue's URL")
    parser.add_argument("--code", action="append", default=[], help="a DispatchError code to move (repeatable); none: every letter")
    parser.add_argument("--endpoint-url", default=None, help="an SQS endpoint (tests)")
    args = parser.parse_args(argv)
    sqs = boto3.client("sqs", endpoint_url=args.endpoint_url)
    moved, kept = redrive(sqs, args.source, args.destination, set(args.code))
    print(f"moved {moved} letters, left {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

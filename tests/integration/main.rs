//! Integration tests: the real handler and the real AWS SDK client, over HTTP, against the
//! voice fake speaking Pinpoint SMS Voice's restJson1 wire protocol, and (for SQS) a real
//! SQS-compatible server, moto.

mod support;

mod alarms;
mod batch;
mod chaos;
mod clamps;
mod dlq_redrive;
mod emulator;
mod events_dir;
mod failover;
mod fates;
mod fifo;
mod hostile;
mod isolation;
mod layers;
mod ledger;
mod linking;
mod logs;
mod outage;
mod outcomes;
mod redial;
mod redrive;
mod sam_local;
mod short;
mod v2;

//! Integration tests: the real handler and the real AWS SDK client, over HTTP, against the
//! voice fake speaking Pinpoint SMS Voice's restJson1 wire protocol.

mod support;

mod batch;
mod events_dir;
mod fates;
mod fifo;
mod hostile;
mod isolation;

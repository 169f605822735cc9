//! Each invocation's payload, taken as the runtime receives it and handed to the function
//! untouched.
//!
//! `lambda_runtime` reads every payload into the handler's type before the handler runs;
//! even as raw JSON (`Box<RawValue>`) that is a pass over the whole event and a copy of it,
//! and the function then reads the same text again into its SQS event. This layer sits in
//! front of the runtime's own services: it takes the payload's bytes (keyed by the
//! invocation's request id) and gives the runtime `null` to read, as `()`. The handler takes
//! the bytes back by request id and reads them once (`adapters::lambda::sqs_event`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use lambda_runtime::tower::{Layer, Service};
use lambda_runtime::LambdaInvocation;

/// What the runtime reads in place of a payload taken: `null`, read as `()`.
const TAKEN: &[u8] = b"null";

/// The payloads taken and not yet handed over, by request id.
#[derive(Debug, Clone, Default)]
pub struct Payloads(Arc<Mutex<HashMap<String, Bytes>>>);

impl Payloads {
    /// The payload of the invocation `request_id`, once.
    pub fn take(&self, request_id: &str) -> Option<Bytes> {
        self.0.lock().ok()?.remove(request_id)
    }

    fn put(&self, request_id: &str, payload: Bytes) {
        if let Ok(mut taken) = self.0.lock() {
            taken.insert(request_id.to_owned(), payload);
        }
    }

    /// The payloads held (none between invocations).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.0.lock().map_or(0, |taken| taken.len())
    }
}

/// The layer: `Runtime::new(handler).layer(TracingLayer::new()).layer(TakePayloads(p))`.
#[derive(Debug, Clone)]
pub struct TakePayloads(pub Payloads);

impl<S> Layer<S> for TakePayloads {
    type Service = Taking<S>;

    fn layer(&self, inner: S) -> Taking<S> {
        Taking {
            inner,
            payloads: self.0.clone(),
        }
    }
}

/// The runtime's services behind the layer.
#[derive(Debug, Clone)]
pub struct Taking<S> {
    inner: S,
    payloads: Payloads,
}

impl<S: Service<LambdaInvocation>> Service<LambdaInvocation> for Taking<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: LambdaInvocation) -> Self::Future {
        let payload = std::mem::replace(&mut invocation.body, Bytes::from_static(TAKEN));
        self.payloads.put(&invocation.context.request_id, payload);
        self.inner.call(invocation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runtime's side: it reads what the layer leaves as the handler's `()`.
    #[derive(Clone)]
    struct Reads(Arc<Mutex<Vec<(String, Bytes)>>>);

    impl Service<LambdaInvocation> for Reads {
        type Response = ();
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<(), Self::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, invocation: LambdaInvocation) -> Self::Future {
            self.0
                .lock()
                .unwrap()
                .push((invocation.context.request_id, invocation.body));
            std::future::ready(Ok(()))
        }
    }

    fn invocation(request_id: &str, body: &'static [u8]) -> LambdaInvocation {
        let (parts, ()) = http::Response::new(()).into_parts();
        let mut context = lambda_runtime::Context::default();
        context.request_id = request_id.to_owned();
        LambdaInvocation {
            parts,
            body: Bytes::from_static(body),
            context,
        }
    }

    #[tokio::test]
    async fn each_payload_reaches_the_handler_untouched_once_and_the_runtime_reads_unit() {
        let payloads = Payloads::default();
        let read = Reads(Arc::default());
        let mut service = TakePayloads(payloads.clone()).layer(read.clone());
        service
            .call(invocation("a", br#"{"Records":[]}"#))
            .await
            .unwrap();
        service
            .call(invocation("b", b"{\"Records\":[1]}"))
            .await
            .unwrap();
        let runtime_read = read.0.lock().unwrap().clone();
        assert_eq!(
            runtime_read,
            [
                ("a".to_owned(), Bytes::from_static(b"null")),
                ("b".to_owned(), Bytes::from_static(b"null"))
            ]
        );
        // What the runtime reads is the handler's `()`.
        let unit: () = serde_json::from_slice(&runtime_read[0].1).unwrap();
        assert_eq!(unit, ());
        assert_eq!(payloads.held(), 2);
        assert_eq!(
            payloads.take("b").as_deref(),
            Some(&b"{\"Records\":[1]}"[..])
        );
        assert_eq!(
            payloads.take("a").as_deref(),
            Some(&br#"{"Records":[]}"#[..])
        );
        assert_eq!(payloads.take("a"), None, "once");
        assert_eq!(payloads.held(), 0);
    }
}

//! An SDK client built at its first use, so that init builds only what a run needs at once.
//!
//! Building a client parses its crate's endpoint partitions (a JSON document) and compiles
//! their patterns, the first time that crate builds one: the SQS client was 717,000 of
//! init's 2.28 million instructions at `3da3374` (callgrind; docs/performance.md), and with
//! delivery outcomes off a batch whose calls all go through never uses SQS.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

type Build<C> = Box<dyn FnOnce() -> C + Send>;

/// A client of type `C`, built by the first call that uses it (once, whichever task asks
/// first), then shared by every clone.
pub struct Lazy<C> {
    client: Arc<LazyLock<C, Build<C>>>,
    built: Arc<AtomicBool>,
}

impl<C> Lazy<C> {
    /// A client `build` makes when it is first used.
    pub fn new(build: impl FnOnce() -> C + Send + 'static) -> Self {
        let built = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&built);
        let build: Build<C> = Box::new(move || {
            let client = build();
            done.store(true, Ordering::Release);
            client
        });
        Self {
            client: Arc::new(LazyLock::new(build)),
            built,
        }
    }

    /// Whether it has been built yet.
    pub fn is_built(&self) -> bool {
        self.built.load(Ordering::Acquire)
    }
}

/// A client already built.
impl<C: Send + 'static> From<C> for Lazy<C> {
    fn from(client: C) -> Self {
        let lazy = Self::new(move || client);
        // Nothing left to build: taking it out of the closure costs nothing.
        LazyLock::force(&lazy.client);
        lazy
    }
}

impl<C> Clone for Lazy<C> {
    fn clone(&self) -> Self {
        Self {
            client: Arc::clone(&self.client),
            built: Arc::clone(&self.built),
        }
    }
}

impl<C> Deref for Lazy<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.client
    }
}

impl<C: fmt::Debug> fmt::Debug for Lazy<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_built() {
            C::fmt(self, f)
        } else {
            f.write_str("Lazy(<not built yet>)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_client_is_built_once_at_its_first_use_and_shared_by_its_clones() {
        let built = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&built);
        let lazy = Lazy::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            String::from("client")
        });
        let clone = lazy.clone();
        assert!(!lazy.is_built());
        assert_eq!(
            built.load(Ordering::SeqCst),
            0,
            "nothing built before its use"
        );
        assert_eq!(format!("{lazy:?}"), "Lazy(<not built yet>)");
        assert_eq!(clone.len(), 6);
        assert_eq!(lazy.as_str(), "client");
        assert!(lazy.is_built());
        assert_eq!(
            built.load(Ordering::SeqCst),
            1,
            "built once for both clones"
        );
        let ready = Lazy::from(7u8);
        assert!(ready.is_built(), "a client given built is built");
        assert_eq!(*ready, 7);
    }
}

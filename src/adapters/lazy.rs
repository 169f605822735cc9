//! An SDK client built at its first use, so that init builds only what a run needs at once.
//!
//! Building a client parses its crate's endpoint partitions (a JSON document) and compiles
//! their patterns, the first time that crate builds one: the SQS client was 717,000 of
//! init's 2.28 million instructions at `3da3374` (callgrind; docs/performance.md), and with
//! delivery outcomes off a batch whose calls all go through never uses SQS.

use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, OnceLock};

type Build<C> = Box<dyn Fn() -> C + Send + Sync>;

/// A client of type `C`, built by the first call that uses it (once, whichever task asks
/// first), then shared by every clone. A build that panics leaves nothing behind: the
/// record that asked fails alone (record isolation), and the next use builds again, where a
/// poisoned `LazyLock` would fail every later use for the life of the instance.
pub struct Lazy<C> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    client: OnceLock<C>,
    build: Build<C>,
}

impl<C> Lazy<C> {
    /// A client `build` makes when it is first used.
    pub fn new(build: impl Fn() -> C + Send + Sync + 'static) -> Self {
        Self {
            inner: Arc::new(Inner {
                client: OnceLock::new(),
                build: Box::new(build),
            }),
        }
    }

    /// Whether it has been built yet.
    pub fn is_built(&self) -> bool {
        self.inner.client.get().is_some()
    }
}

/// A client already built.
impl<C: Send + Sync + 'static> From<C> for Lazy<C> {
    fn from(client: C) -> Self {
        Self {
            inner: Arc::new(Inner {
                client: OnceLock::from(client),
                // Never called: the cell is full from the start.
                build: Box::new(|| unreachable!("a client given built is not built again")),
            }),
        }
    }
}

impl<C> Clone for Lazy<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C> Deref for Lazy<C> {
    type Target = C;

    fn deref(&self) -> &C {
        let inner = &*self.inner;
        inner.client.get_or_init(|| (inner.build)())
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

    #[test]
    fn a_build_that_panics_is_tried_again_at_the_next_use() {
        let tries = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&tries);
        let lazy = Lazy::new(move || {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("the first build fails");
            }
            String::from("client")
        });
        let first = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| lazy.len()));
        assert!(first.is_err(), "the first use fails with its build");
        assert!(!lazy.is_built());
        assert_eq!(lazy.clone().as_str(), "client", "the next use builds it");
        assert_eq!(tries.load(Ordering::SeqCst), 2);
        assert_eq!(lazy.len(), 6);
        assert_eq!(
            tries.load(Ordering::SeqCst),
            2,
            "and it is built once more only"
        );
    }
}

//! Lines for stdout, gathered and written out together: when the runtime is about to wait
//! (tokio's before-park hook, [`runtime`]), at the end of each invocation, and whenever
//! [`LIMIT`] bytes are waiting. A batch's burst of record lines costs one `write` instead of
//! one per line (docs/performance.md). A line is never split between two writes nor
//! reordered. A line logged on the runtime's thread is out before the runtime next waits for
//! anything; the handler's lines are out before its answer is posted; `lambda_runtime`'s own
//! lines about an invocation already answered go out when it next waits, which is before it
//! asks for the next event. The bootstrap starts no thread of its own that logs.

use std::io::{self, Write};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

/// Past this many bytes gathered, they are written out at once.
pub const LIMIT: usize = 16 * 1024;

/// Lines gathered for `W`.
pub struct Gathered<W> {
    state: Mutex<State<W>>,
}

struct State<W> {
    waiting: Vec<u8>,
    out: W,
}

impl<W: Write> State<W> {
    /// Writes what is waiting. What a failed write could not write is dropped: a closed
    /// stdout loses the lines whatever is done, and the buffer never grows without bound.
    fn write_out(&mut self) -> io::Result<()> {
        if self.waiting.is_empty() {
            return Ok(());
        }
        let written = self
            .out
            .write_all(&self.waiting)
            .and_then(|()| self.out.flush());
        self.waiting.clear();
        written
    }
}

impl<W: Write> Gathered<W> {
    pub const fn new(out: W) -> Self {
        Self {
            state: Mutex::new(State {
                waiting: Vec::new(),
                out,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<W>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gathers `bytes` (whole lines, as the log and metrics writers give them); writes out
    /// everything gathered once it reaches [`LIMIT`].
    pub fn append(&self, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.lock();
        state.waiting.extend_from_slice(bytes);
        if state.waiting.len() >= LIMIT {
            state.write_out()
        } else {
            Ok(())
        }
    }

    /// Writes out everything gathered.
    pub fn flush(&self) -> io::Result<()> {
        self.lock().write_out()
    }

    /// As [`Self::flush`], unless a write is under way on this or another thread (a panic
    /// hook must never wait for the lock its own thread may hold).
    pub fn try_flush(&self) {
        let mut state = match self.state.try_lock() {
            Ok(state) => state,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let _ = state.write_out();
    }
}

/// The process's stdout, unbuffered beyond what `std` does for it.
pub struct RawStdout;

impl Write for RawStdout {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        io::stdout().lock().write(bytes)
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        io::stdout().lock().write_all(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().lock().flush()
    }
}

/// The bootstrap's stdout lines.
pub static STDOUT: Gathered<RawStdout> = Gathered::new(RawStdout);

/// Writes out the bootstrap's gathered lines; what cannot be written is lost, as a line
/// written straight to a closed stdout would be.
pub fn flush() {
    let _ = STDOUT.flush();
}

/// A writer for the log subscriber (`logging::init(settings, || GatheredStdout)`): each line
/// is gathered in [`STDOUT`].
#[derive(Debug, Clone, Copy, Default)]
pub struct GatheredStdout;

impl Write for GatheredStdout {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        STDOUT.append(bytes).map(|()| bytes.len())
    }

    /// Gathered lines go out when the runtime goes idle, not at each line.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The bootstrap's runtime: current-thread, I/O and time enabled, and `before_idle` run each
/// time it is about to wait for work (the gathered lines written out there).
pub fn runtime(before_idle: fn()) -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(before_idle)
        .build()
}

/// Writes out the gathered lines before a panic's own message, so that a panic that ends
/// the process does not take the lines before it with it.
pub fn flush_on_panic() {
    let earlier = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        STDOUT.try_flush();
        earlier(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex as StdMutex};

    /// Records each `write` it is given, separately.
    #[derive(Clone, Default)]
    struct Writes(Arc<StdMutex<Vec<Vec<u8>>>>);

    impl Write for Writes {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().push(bytes.to_vec());
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Writes {
        fn taken(&self) -> Vec<String> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .map(|w| String::from_utf8(w.clone()).unwrap())
                .collect()
        }
    }

    #[test]
    fn lines_wait_for_a_flush_then_go_out_in_order_in_one_write() {
        let writes = Writes::default();
        let gathered = Gathered::new(writes.clone());
        gathered.append(b"first\n").unwrap();
        gathered.append(b"second\n").unwrap();
        assert!(writes.taken().is_empty(), "nothing written before a flush");
        gathered.flush().unwrap();
        assert_eq!(writes.taken(), ["first\nsecond\n"]);
        gathered.flush().unwrap();
        assert_eq!(writes.taken().len(), 1, "nothing gathered: nothing written");
    }

    #[test]
    fn lines_reaching_the_limit_are_written_out_whole_at_once() {
        let writes = Writes::default();
        let gathered = Gathered::new(writes.clone());
        let line = format!("{}\n", "x".repeat(999));
        let lines_under = LIMIT / line.len();
        for _ in 0..lines_under {
            gathered.append(line.as_bytes()).unwrap();
        }
        assert!(writes.taken().is_empty(), "under the limit: still waiting");
        gathered.append(line.as_bytes()).unwrap();
        let taken = writes.taken();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0], line.repeat(lines_under + 1), "every line, whole");
    }

    #[test]
    fn a_flush_while_the_lines_are_held_is_skipped_not_waited_for() {
        let writes = Writes::default();
        let gathered = Gathered::new(writes.clone());
        gathered.append(b"held\n").unwrap();
        let held = gathered.lock();
        gathered.try_flush();
        drop(held);
        assert!(writes.taken().is_empty());
        gathered.try_flush();
        assert_eq!(writes.taken(), ["held\n"]);
    }

    static IDLE_TEST: Gathered<Vec<u8>> = Gathered::new(Vec::new());

    fn flush_idle_test() {
        let _ = IDLE_TEST.flush();
    }

    #[test]
    fn the_runtime_writes_lines_out_before_it_waits() {
        let runtime = runtime(flush_idle_test).unwrap();
        let seen_during_the_wait = runtime.block_on(async {
            IDLE_TEST.append(b"before the wait\n").unwrap();
            // Another thread looks while the runtime waits out the sleep, a quarter of the
            // way in: the line is out while the process waits, not after.
            let looking = std::thread::spawn(|| {
                std::thread::sleep(std::time::Duration::from_millis(100));
                String::from_utf8(IDLE_TEST.lock().out.clone()).unwrap()
            });
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
            looking.join().unwrap()
        });
        assert_eq!(seen_during_the_wait, "before the wait\n");
    }
}

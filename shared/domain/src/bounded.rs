//! Running work on caller input where it cannot take the process down or stall it.
//!
//! Parsers and evaluators of caller input (workflow documents, CEL, deploy specs) recurse.
//! Their input is bounded in size and nesting before they run, so the stack they need has
//! a known ceiling; [`on_large_stack`] runs them on a thread whose stack is far above that
//! ceiling (a tokio worker has 2 MiB, which twelve nested parentheses in CEL exhausted).
//!
//! [`off_runtime`] is the async entry: the work runs on its own thread, never on the
//! async runtime's few workers, at most [`max_concurrent`] at a time (the rest wait their
//! turn without holding a thread), and the caller stops waiting when the time budget is
//! spent. The thread itself cannot be stopped, which is why every input is bounded
//! before it gets there: the budget is the backstop, not the bound.

use std::cell::Cell;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};

/// Stack of the threads that parse and evaluate caller input. Only touched pages are
/// committed, so a large reservation costs address space, not memory.
pub const STACK_BYTES: usize = 256 * 1024 * 1024;

/// How long checking one document (a workflow, a deploy spec) may take before the
/// request is answered with an error. Far above what a document within the size limits
/// needs (a 100,000-step workflow takes under a second in a release build).
pub const DOCUMENT_BUDGET: Duration = Duration::from_secs(20);

thread_local! {
    static ON_LARGE_STACK: Cell<bool> = const { Cell::new(false) };
}

/// Runs `work` on a thread with a [`STACK_BYTES`] stack and waits for it; on such a thread
/// already, runs it in place. For short work called from sync code (a CEL evaluation).
pub fn on_large_stack<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    if ON_LARGE_STACK.get() {
        return work();
    }
    let mut slot = Some(work);
    let joined = std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("tdev-bounded".into())
            .stack_size(STACK_BYTES)
            .spawn_scoped(scope, || {
                ON_LARGE_STACK.set(true);
                slot.take().map(|work| work())
            });
        spawned.ok().map(|handle| handle.join())
    });
    match joined {
        Some(Ok(Some(value))) => value,
        Some(Err(panic)) => std::panic::resume_unwind(panic),
        // No thread could be started (the process is at its limits): run in place.
        _ => match slot.take() {
            Some(work) => work(),
            None => unreachable!("the work ran on its thread or is still here"),
        },
    }
}

/// Why bounded work gave no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unfinished {
    #[error("it took longer than its budget of {} ms", .budget.as_millis())]
    OverBudget { budget: Duration },
    /// It panicked, or no thread could be started for it.
    #[error("it failed")]
    Failed,
}

/// How many pieces of bounded work run at once: the number of cores.
pub fn max_concurrent() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(max_concurrent()))
}

/// Runs CPU-heavy `work` off the async runtime, on a large stack, and waits at most
/// `budget` for it (the wait for a free slot included).
pub async fn off_runtime<T: Send + 'static>(
    budget: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Unfinished> {
    let run = async {
        let permit = permits().acquire().await.map_err(|_| Unfinished::Failed)?;
        let (send, receive) = oneshot::channel();
        let spawned = std::thread::Builder::new().name("tdev-bounded".into()).stack_size(STACK_BYTES).spawn(
            move || {
                ON_LARGE_STACK.set(true);
                let _permit = permit;
                let value = work();
                let _ = send.send(value);
            },
        );
        if spawned.is_err() {
            return Err(Unfinished::Failed);
        }
        // A panic in `work` drops the sender.
        receive.await.map_err(|_| Unfinished::Failed)
    };
    tokio::time::timeout(budget, run).await.map_err(|_| Unfinished::OverBudget { budget })?
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(n: u32) -> u32 {
        // Enough stack per frame that 200,000 frames need far more than 2 MiB.
        let pad = std::hint::black_box([n as u8; 256]);
        if n == 0 { u32::from(pad[0]) } else { 1 + depth(n - 1) + u32::from(pad[1]) * 0 }
    }

    #[test]
    fn deep_recursion_that_would_overflow_a_runtime_worker_finishes() {
        assert_eq!(on_large_stack(|| depth(200_000)), 200_000);
        // Nested: the inner call runs in place.
        assert_eq!(on_large_stack(|| on_large_stack(|| depth(10))), 10);
    }

    #[tokio::test]
    async fn off_runtime_returns_the_value_or_reports_the_budget() {
        assert_eq!(off_runtime(Duration::from_secs(5), || depth(100_000)).await, Ok(100_000));
        let slow = off_runtime(Duration::from_millis(20), || std::thread::sleep(Duration::from_millis(500)));
        assert_eq!(slow.await, Err(Unfinished::OverBudget { budget: Duration::from_millis(20) }));
    }

    #[tokio::test]
    async fn a_panic_in_the_work_is_an_error_not_a_crash() {
        let result = off_runtime(Duration::from_secs(5), || -> u32 { panic!("boom") }).await;
        assert_eq!(result, Err(Unfinished::Failed));
    }
}

//! The search threads: one pool per process that collects a search's segments, reads its
//! hits back and serializes its answer, and [`run_on_search_threads`], the way in from the
//! async handlers.

use std::sync::{Arc, OnceLock};

use tantivy::Executor;

use crate::error::{Error, Result};

/// How many search threads a search uses: one per core, at most 4. The search benchmark times
/// tantivy on as many, so that the parallel collection is compared like with like.
pub fn search_thread_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |cores| cores.get())
        .min(4)
}

/// The search threads ([`search_thread_count`]); `None` on a single core or if the threads
/// cannot be started. A search collects its segments on them, cut in pieces of about equal
/// size (`SearchCollector::collect_in_pieces`), and then reads its hits back and cuts their
/// snippets on them.
///
/// They live as long as the process, so a search neither starts threads nor has each new
/// thread build its own zstd decompression context (the per-thread one in `codec`). Several
/// searches at once share them: a search's latency improves with idle cores, the CPU it
/// costs does not change.
///
/// When there is a search thread for every CPU the process may use, each is pinned to its own
/// ([`cpus_for_search_threads`]).
pub(crate) fn search_pool() -> Option<&'static Arc<rayon::ThreadPool>> {
    static POOL: OnceLock<Option<Arc<rayon::ThreadPool>>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = search_thread_count();
        if threads < 2 {
            return None;
        }
        let pinned_cpus = cpus_for_search_threads(threads, &allowed_cpus());
        if let Some(cpus) = &pinned_cpus {
            tracing::info!(?cpus, "search threads pinned, one per cpu");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|index| format!("reportstore-search-{index}"))
            .start_handler(move |index| {
                let Some(cpu) = pinned_cpus.as_ref().and_then(|cpus| cpus.get(index)) else {
                    return;
                };
                if let Err(error) = pin_current_thread(*cpu) {
                    tracing::warn!(%error, cpu, "search thread not pinned, it may share a cpu");
                }
            })
            .build()
            .map(Arc::new)
            .inspect_err(|error| {
                tracing::warn!(%error, "search threads did not start, searching on one");
            })
            .ok()
    })
    .as_ref()
}

/// The CPUs to pin the search threads to, one each, in thread order: only when `threads`
/// equals the CPUs the process may use, so that pinning takes no CPU away from anything else
/// the machine runs for us, and never on one CPU.
///
/// Why pin at all: the trap is the kernel's placement of a woken thread, on virtual machines.
/// A search hands segments to the other thread by waking it; the kernel tends to wake it on
/// the waker's own CPU when the other one is idle (a halted vCPU counts as preempted, so not
/// as a good place to run), and there it waits until the waker is done. On a 2-vCPU KVM guest
/// that happened whenever the pool had been idle for a millisecond or more: of 2,000 two-way
/// `rayon::join`s after a 1 ms pause, 1,548 ran entirely on the thread that started them, and
/// searches arriving a few ms apart took twice as long as back-to-back ones. Pinned, a woken
/// thread can only run on its own CPU, and 2 of 2,000 did. On a larger machine (more CPUs than
/// search threads) the kernel finds an idle CPU on its own and nothing is pinned.
pub fn cpus_for_search_threads(threads: usize, allowed_cpus: &[usize]) -> Option<Vec<usize>> {
    (threads >= 2 && allowed_cpus.len() == threads).then(|| allowed_cpus.to_vec())
}

/// The CPUs this process may run on, in increasing order; empty where that is not known.
fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `cpu_set_t` is a plain bit set, zeroed is a valid empty set, and
        // sched_getaffinity writes at most the size it is given.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let read =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        if read != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `cpu` is below CPU_SETSIZE, the size of the set.
            .filter(|cpu| unsafe { libc::CPU_ISSET(*cpu, &set) })
            .collect()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

/// Lets the calling thread run on `cpu` only.
fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(std::io::Error::other(format!(
                "cpu {cpu} is beyond CPU_SETSIZE"
            )));
        }
        // SAFETY: as in `allowed_cpus`; pid 0 is the calling thread, and `cpu` was checked
        // against the set's size.
        let pinned = unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
        };
        if pinned != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        Ok(())
    }
}

/// Runs `work` (a search, and whatever the caller does with its answer) on the search threads
/// and waits for it without blocking the async runtime.
///
/// Started here, a search collects its segments and reads its hits on the threads it already
/// runs on: the work changes threads on the way in and on the way out and nowhere else. Run
/// from a blocking thread instead, it would also wait there twice for the pool, and on two
/// cores each of those hand-offs showed up in the tail latency. With no pool (one core) it
/// runs on tokio's blocking threads.
///
/// Callers bound how many run at once (the search permits): the pool queues without limit.
/// A panic in `work` is caught and answered as [`Error::Internal`]; left alone it would abort
/// the process, which is what rayon does with a panic in a spawned job.
pub async fn run_on_search_threads<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let Some(pool) = search_pool() else {
        return tokio::task::spawn_blocking(work)
            .await
            .map_err(|error| Error::Internal(format!("search task failed: {error}")))?;
    };
    let (answer_sender, answer_receiver) = tokio::sync::oneshot::channel();
    pool.spawn(move || {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        // The receiver is gone when the client went away: the answer is simply dropped.
        let _ = answer_sender.send(outcome);
    });
    match answer_receiver.await {
        Ok(Ok(result)) => result,
        Ok(Err(panic)) => {
            let message = crate::error::panic_message(panic.as_ref())
                .unwrap_or_else(|| "no message".to_string());
            tracing::error!(%message, "search panicked");
            Err(Error::Internal(format!("search panicked: {message}")))
        }
        Err(_) => Err(Error::Internal(
            "search thread ended without an answer".to_string(),
        )),
    }
}

/// tantivy's executor over the search pool (or the calling thread): how tantivy's own
/// collectors run on these threads, one segment per thread (the search benchmark's `dirMT`).
pub fn search_executor() -> &'static Executor {
    static EXECUTOR: OnceLock<Executor> = OnceLock::new();
    EXECUTOR.get_or_init(|| {
        search_pool().map_or_else(Executor::single_thread, |pool| {
            Executor::ThreadPool(Arc::clone(pool))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_threads_are_pinned_only_when_they_cover_every_allowed_cpu() {
        assert_eq!(cpus_for_search_threads(2, &[0, 1]), Some(vec![0, 1]));
        assert_eq!(
            cpus_for_search_threads(4, &[2, 3, 6, 7]),
            Some(vec![2, 3, 6, 7])
        );
        // More CPUs than threads: the kernel finds idle ones itself.
        assert_eq!(cpus_for_search_threads(4, &[0, 1, 2, 3, 4, 5, 6, 7]), None);
        // Not known, or one thread (no pool).
        assert_eq!(cpus_for_search_threads(2, &[]), None);
        assert_eq!(cpus_for_search_threads(1, &[0]), None);
    }

    #[test]
    fn each_search_thread_runs_on_the_cpu_it_was_given() {
        let Some(pool) = search_pool() else {
            return;
        };
        let expected = cpus_for_search_threads(search_thread_count(), &allowed_cpus());
        let seen: Vec<Vec<usize>> = pool.broadcast(|_| allowed_cpus());
        match expected {
            Some(cpus) => {
                let pinned: Vec<Vec<usize>> = cpus.iter().map(|cpu| vec![*cpu]).collect();
                assert_eq!(seen, pinned, "thread i runs on cpu i only");
            }
            None => {
                let process_cpus = allowed_cpus();
                assert!(
                    seen.iter().all(|cpus| *cpus == process_cpus),
                    "unpinned threads keep the process's cpus: {seen:?}"
                );
            }
        }
    }

    #[test]
    fn work_on_the_search_threads_answers_and_a_panic_is_an_error() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let answered = runtime.block_on(run_on_search_threads(|| {
            Ok(std::thread::current().name().map(str::to_string))
        }));
        let thread_name = answered.expect("the work answers");
        if search_pool().is_some() {
            let thread_name = thread_name.expect("search threads are named");
            assert!(
                thread_name.starts_with("reportstore-search-"),
                "ran on {thread_name}"
            );
        }
        let refused = runtime.block_on(run_on_search_threads(|| -> Result<()> {
            Err(Error::invalid("a refusal passes through", "q"))
        }));
        assert!(
            matches!(refused, Err(Error::InvalidInput { .. })),
            "{refused:?}"
        );
        let panicked = runtime.block_on(run_on_search_threads(|| -> Result<()> { panic!("boom") }));
        match panicked {
            Err(Error::Internal(message)) => assert!(message.contains("boom"), "{message}"),
            other => panic!("a panic answers an internal error, not {other:?}"),
        }
        // The threads survive a panic: the next search still runs.
        let after_panic = runtime.block_on(run_on_search_threads(|| Ok(7)));
        assert_eq!(after_panic.expect("still answering"), 7);
    }
}

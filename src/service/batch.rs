//! Group commit: concurrent calls of one kind share a transaction or a query.
//!
//! A call puts its job in a [`BatchQueue`] and waits for the reply. When fewer than
//! `max_writers` writers run, that call starts one: a task that takes every job
//! waiting at that moment (at most `max_batch`), writes them in one transaction, replies
//! to each, and repeats until the queue is empty. Nothing waits on a timer: a lone call
//! is written at once, and calls that arrive while a batch is being written form the
//! next one. Under load one commit (and one statement per table) then serves many calls
//! instead of each paying its own round trips — the database's own group commit, done
//! one level up. Replies are sent only after the commit, so an acknowledged answer is
//! never lost.
//!
//! The queue is bounded: a call that finds it full is refused at once (the caller
//! answers RESOURCE_EXHAUSTED with RetryInfo) instead of waiting behind a backlog
//! that a slow or stalled database would let grow without end.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

/// Jobs waiting to be written (or looked up), and how many writers are draining them.
#[derive(Debug)]
pub struct BatchQueue<J> {
    state: Mutex<State<J>>,
    max_batch: usize,
    max_writers: usize,
    capacity: usize,
}

#[derive(Debug)]
struct State<J> {
    waiting: VecDeque<J>,
    writers: usize,
}

impl<J> BatchQueue<J> {
    /// A queue whose batches hold at most `max_batch` jobs, drained by at most
    /// `max_writers` writers at once, holding at most `capacity` waiting jobs (all at
    /// least 1).
    pub fn new(max_batch: usize, max_writers: usize, capacity: usize) -> Self {
        BatchQueue {
            state: Mutex::new(State { waiting: VecDeque::new(), writers: 0 }),
            max_batch: max_batch.max(1),
            max_writers: max_writers.max(1),
            capacity: capacity.max(1),
        }
    }

    /// How many jobs may wait at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many jobs wait now (not yet taken by a writer).
    pub fn waiting(&self) -> usize {
        self.lock().waiting.len()
    }

    fn lock(&self) -> MutexGuard<'_, State<J>> {
        // The lock guards only pushes and pops; a panic cannot leave it half-changed.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `job`. Returns `Ok(true)` when the caller must start a writer, i.e. run
    /// [`BatchQueue::drain`] in a task of its own, and the job back as `Err(Full(job))`
    /// when `capacity` jobs wait already.
    #[must_use = "when Ok(true), a writer must be started or the job is never written"]
    pub fn push(&self, job: J) -> Result<bool, Full<J>> {
        let mut s = self.lock();
        if s.waiting.len() >= self.capacity {
            return Err(Full(job));
        }
        s.waiting.push_back(job);
        if s.writers < self.max_writers {
            s.writers += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Writes batches with `write` until the queue is empty. If `write` panics, the
    /// jobs still waiting are dropped, so their callers hear of it instead of waiting
    /// for a writer that never comes.
    pub async fn drain<F, Fut>(&self, mut write: F)
    where
        F: FnMut(Vec<J>) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut slot = WriterSlot { queue: self, held: true };
        loop {
            let batch: Vec<J> = {
                let mut s = self.lock();
                if s.waiting.is_empty() {
                    // Leave under the same lock that saw the queue empty: a job pushed
                    // after this starts a writer of its own.
                    s.writers -= 1;
                    slot.held = false;
                    return;
                }
                let n = s.waiting.len().min(self.max_batch);
                s.waiting.drain(..n).collect()
            };
            write(batch).await;
        }
    }
}

/// A job refused because its queue was full.
#[derive(Debug)]
pub struct Full<J>(pub J);

/// A running writer's place; given back if the writer stops without emptying the queue.
struct WriterSlot<'a, J> {
    queue: &'a BatchQueue<J>,
    held: bool,
}

impl<J> Drop for WriterSlot<'_, J> {
    fn drop(&mut self) {
        if self.held {
            let mut s = self.queue.lock();
            s.writers -= 1;
            if s.writers == 0 {
                s.waiting.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_first_calls_start_writers_up_to_the_limit() {
        let q = BatchQueue::new(10, 2, 100);
        assert!(q.push(1).unwrap());
        assert!(q.push(2).unwrap());
        assert!(!q.push(3).unwrap(), "a third writer is not started while two run");
    }

    #[tokio::test]
    async fn a_writer_takes_what_waits_in_batches_of_at_most_max() {
        let q = BatchQueue::new(2, 1, 100);
        assert!(q.push(1).unwrap());
        for j in 2..=5 {
            assert!(!q.push(j).unwrap());
        }
        let mut batches = Vec::new();
        q.drain(|b| {
            batches.push(b);
            async {}
        })
        .await;
        assert_eq!(batches, vec![vec![1, 2], vec![3, 4], vec![5]]);
        assert!(q.push(6).unwrap(), "an emptied queue starts a new writer for the next job");
    }

    #[tokio::test]
    async fn jobs_pushed_while_a_batch_is_written_form_the_next_batch() {
        let q = Arc::new(BatchQueue::new(100, 1, 100));
        assert!(q.push(1).unwrap());
        let mut batches = Vec::new();
        let pusher = q.clone();
        q.drain(|b| {
            if b == vec![1] {
                for j in 2..=4 {
                    assert!(!pusher.push(j).unwrap());
                }
            }
            batches.push(b);
            async {}
        })
        .await;
        assert_eq!(batches, vec![vec![1], vec![2, 3, 4]]);
    }

    #[tokio::test]
    async fn a_panicking_writer_drops_the_waiting_jobs_and_frees_its_slot() {
        let q = Arc::new(BatchQueue::new(1, 1, 100));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        assert!(q.push(None).unwrap());
        assert!(!q.push(Some(tx)).unwrap());
        let writer = q.clone();
        let task = tokio::spawn(async move {
            writer.drain(|_| async { panic!("the database driver blew up") }).await;
        });
        assert!(task.await.is_err(), "the writer panicked");
        assert!(rx.await.is_err(), "the waiting caller hears that its job was dropped");
        assert!(q.push(None).unwrap(), "the next call starts a writer again");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_the_job_and_takes_jobs_again_once_drained() {
        let q = BatchQueue::new(10, 1, 3);
        assert!(q.push(1).unwrap());
        assert!(!q.push(2).unwrap());
        assert!(!q.push(3).unwrap());
        let Err(Full(refused)) = q.push(4) else { panic!("a fourth job does not fit") };
        assert_eq!(refused, 4, "the refused job comes back to its caller");
        let mut written = Vec::new();
        q.drain(|b| {
            written.extend(b);
            async {}
        })
        .await;
        assert_eq!(written, vec![1, 2, 3]);
        assert!(q.push(4).unwrap(), "room again: the job is queued and starts a writer");
    }
}

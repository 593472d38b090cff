//! The queue of one `larder serve` when `LARDER_AMQP_URL` is unset: jobs (request ids) go from
//! the api's dispatcher to the worker of the same process. The database stays the record: a
//! job in this queue is a request `in_progress` and dispatched, and `serve` marks every such
//! request again when it starts (`api::publisher::resend_in_process_jobs`), so a job the
//! process held when it stopped is not lost. One such serve per database: it holds a lock there
//! (`api::publisher::lock_in_process_queue`), and the jobs it queued are sent to RabbitMQ by a
//! RabbitMQ deployment started on the database after it (`requeue_in_process_jobs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

#[derive(Clone)]
pub struct InProcessQueue {
    sender: mpsc::UnboundedSender<InProcessJob>,
    receiver: Arc<Mutex<Option<InProcessJobs>>>,
    waiting: Arc<AtomicUsize>,
}

/// The receiving end, held by the worker.
pub struct InProcessJobs {
    receiver: mpsc::UnboundedReceiver<InProcessJob>,
    waiting: Arc<AtomicUsize>,
}

/// A job: the request, and whether an earlier attempt of it may have been cut short (its
/// lease is then taken over at once, as RabbitMQ's `redelivered`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InProcessJob {
    pub request_id: i64,
    pub redelivered: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("the worker of this process has stopped")]
pub struct WorkerGone;

impl Default for InProcessQueue {
    fn default() -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        let waiting = Arc::new(AtomicUsize::new(0));
        Self {
            sender,
            receiver: Arc::new(Mutex::new(Some(InProcessJobs {
                receiver,
                waiting: waiting.clone(),
            }))),
            waiting,
        }
    }
}

impl InProcessQueue {
    pub fn send(&self, job: InProcessJob) -> Result<(), WorkerGone> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        self.sender.send(job).map_err(|_| {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            WorkerGone
        })
    }

    /// The jobs, for the one worker that takes them.
    pub fn take_jobs(&self) -> Option<InProcessJobs> {
        self.receiver.lock().ok()?.take()
    }

    /// Workers taking jobs: 1 once the worker took them and while it keeps them.
    pub fn consumers(&self) -> u32 {
        let taken = self.receiver.lock().is_ok_and(|r| r.is_none());
        u32::from(taken && !self.sender.is_closed())
    }

    /// Jobs sent and not yet taken by the worker.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }
}

impl InProcessJobs {
    /// The next job; `None` once no api can send any.
    pub async fn recv(&mut self) -> Option<InProcessJob> {
        let job = self.receiver.recv().await?;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        Some(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_reach_the_one_worker_that_took_them_in_order() {
        let job = |request_id| InProcessJob {
            request_id,
            redelivered: false,
        };
        let queue = InProcessQueue::default();
        assert_eq!(queue.consumers(), 0);
        queue.send(job(1)).unwrap();
        queue.send(job(2)).unwrap();
        assert_eq!(queue.waiting(), 2);
        let mut jobs = queue.take_jobs().unwrap();
        assert!(queue.take_jobs().is_none());
        assert_eq!(queue.consumers(), 1);
        assert_eq!(
            (jobs.recv().await, jobs.recv().await),
            (Some(job(1)), Some(job(2)))
        );
        assert_eq!(queue.waiting(), 0);
        drop(jobs);
        assert_eq!(queue.consumers(), 0);
        assert!(queue.send(job(3)).is_err());
        assert_eq!(queue.waiting(), 0);
    }
}

//! Waiting briefly for company. A batch that will cost one commit (the
//! group committer's state changes, the settler's delivered marks) first
//! takes whatever else arrives within a short bound, so a burst shares one
//! fsync instead of paying one each.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// A queue that hands over several items at once (tokio's bounded and
/// unbounded receivers).
pub trait RecvMany<T> {
    /// At most `limit` more items into `buf`; 0 once the queue is closed
    /// and empty.
    fn recv_many(&mut self, buf: &mut Vec<T>, limit: usize) -> impl Future<Output = usize> + Send;
}

impl<T: Send> RecvMany<T> for mpsc::Receiver<T> {
    fn recv_many(&mut self, buf: &mut Vec<T>, limit: usize) -> impl Future<Output = usize> + Send {
        mpsc::Receiver::recv_many(self, buf, limit)
    }
}

impl<T: Send> RecvMany<T> for mpsc::UnboundedReceiver<T> {
    fn recv_many(&mut self, buf: &mut Vec<T>, limit: usize) -> impl Future<Output = usize> + Send {
        mpsc::UnboundedReceiver::recv_many(self, buf, limit)
    }
}

/// Add to `batch` what arrives within `wait`, until it holds `max`.
pub async fn linger<T>(rx: &mut impl RecvMany<T>, batch: &mut Vec<T>, max: usize, wait: Duration) {
    let until = Instant::now() + wait;
    while batch.len() < max {
        let room = max - batch.len();
        tokio::select! {
            n = rx.recv_many(batch, room) => if n == 0 { return },
            _ = tokio::time::sleep_until(until) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn takes_what_arrives_within_the_wait_until_full() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut batch = vec![0];
        for i in 1..=5 {
            tx.send(i).unwrap();
        }
        linger(&mut rx, &mut batch, 4, Duration::from_millis(20)).await;
        assert_eq!(batch, [0, 1, 2, 3], "full at 4");
        let (tx, mut rx) = mpsc::channel(8);
        let late = tokio::spawn(async move {
            tx.send(1).await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
            tx.send(2).await.unwrap();
        });
        let mut batch = Vec::new();
        linger(&mut rx, &mut batch, 4, Duration::from_millis(20)).await;
        assert_eq!(batch, [1], "the late one waits for the next batch");
        late.await.unwrap();
    }
}

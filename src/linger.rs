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
    linger_until(rx, batch, max, wait, |_| false).await
}

/// As [`linger`], but stop as soon as an item for which `stop` holds has
/// arrived: a batch that waits for a particular kind of company goes the
/// moment it comes.
pub async fn linger_until<T>(
    rx: &mut impl RecvMany<T>,
    batch: &mut Vec<T>,
    max: usize,
    wait: Duration,
    stop: impl Fn(&T) -> bool,
) {
    let until = Instant::now() + wait;
    while batch.len() < max {
        let (room, before) = (max - batch.len(), batch.len());
        tokio::select! {
            n = rx.recv_many(batch, room) => if n == 0 { return },
            _ = tokio::time::sleep_until(until) => return,
        }
        if batch[before..].iter().any(&stop) {
            return;
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

    #[tokio::test(start_paused = true)]
    async fn stops_lingering_when_the_awaited_kind_arrives() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let senders = tokio::spawn(async move {
            for (after, item) in [(1, 2), (1, 4), (1, 7), (1, 8)] {
                tokio::time::sleep(Duration::from_millis(after)).await;
                tx.send(item).unwrap();
            }
        });
        let (mut batch, start) = (vec![0], Instant::now());
        linger_until(&mut rx, &mut batch, 16, Duration::from_millis(20), |i| {
            i % 2 == 1
        })
        .await;
        assert_eq!(batch, [0, 2, 4, 7], "stops at the first odd one");
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(3),
            "without waiting out the 20 ms"
        );
        senders.await.unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        tx.send(8).unwrap();
        let (mut batch, start) = (vec![], Instant::now());
        linger_until(&mut rx, &mut batch, 16, Duration::from_millis(20), |i| {
            i % 2 == 1
        })
        .await;
        assert_eq!(batch, [8], "no odd one came: the whole wait");
        assert_eq!(start.elapsed(), Duration::from_millis(20));
        drop(tx);
    }
}

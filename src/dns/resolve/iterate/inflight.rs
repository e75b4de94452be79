//! Work in flight, shared: a second caller asking for what a first is already
//! working on waits for the first's result instead of doing the work again. At a
//! cold start, the names of one zone arrive together; without this, each of them
//! would ask the parent for the same referral (Unbound merges them the same way).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// Work in flight by key.
pub struct InFlight<K, T> {
    map: Mutex<HashMap<K, Arc<OnceCell<T>>, foldhash::fast::RandomState>>,
}

impl<K, T> Default for InFlight<K, T> {
    fn default() -> Self {
        InFlight {
            map: Mutex::new(HashMap::default()),
        }
    }
}

impl<K: Hash + Eq + Clone, T: Clone> InFlight<K, T> {
    /// The result of `work` for `key`, run once however many callers ask at the same
    /// time. If the caller that runs it is dropped, a waiting caller runs it instead;
    /// when the last caller is dropped (a deadline cut the resolution off), the key is
    /// forgotten: a cancelled run leaves nothing behind.
    pub async fn run<F, Fut>(&self, key: K, work: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let cell = self.lock().entry(key.clone()).or_default().clone();
        let mut seat = Seat {
            owner: self,
            key,
            cell: Some(cell),
        };
        let waiting = seat.cell.as_deref().expect("seated above");
        waiting.get_or_init(work).await;
        // A finished key is forgotten at once: later callers run the work again.
        let cell = seat.leave();
        // The last caller to leave takes the result without a copy; only callers that
        // shared the run pay for one (a result may be a whole message).
        match Arc::try_unwrap(cell) {
            Ok(c) => c.into_inner().expect("the cell was initialised above"),
            Err(c) => c.get().expect("the cell was initialised above").clone(),
        }
    }

    /// Keys in flight (for tests).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<K, Arc<OnceCell<T>>, foldhash::fast::RandomState>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A caller's seat at a key: leaving it, by finishing or by being dropped, removes
/// the key when the run is done or nobody else waits for it. The caller's handle on
/// the cell is given up under the map's lock, so two callers dropped at once cannot
/// each see the other still there and both leave the key behind.
struct Seat<'a, K: Hash + Eq + Clone, T: Clone> {
    owner: &'a InFlight<K, T>,
    key: K,
    cell: Option<Arc<OnceCell<T>>>,
}

impl<K: Hash + Eq + Clone, T: Clone> Seat<'_, K, T> {
    /// Leave after the run finished; the cell, for its result.
    fn leave(&mut self) -> Arc<OnceCell<T>> {
        let cell = self.cell.take().expect("a seat is left once");
        let mut m = self.owner.lock();
        if m.get(&self.key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            m.remove(&self.key);
        }
        cell
    }
}

impl<K: Hash + Eq + Clone, T: Clone> Drop for Seat<'_, K, T> {
    fn drop(&mut self) {
        let Some(cell) = self.cell.take() else { return };
        let mut m = self.owner.lock();
        drop(cell);
        if let Some(c) = m.get(&self.key)
            && (Arc::strong_count(c) == 1 || c.initialized())
        {
            m.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn callers_at_the_same_time_share_one_run() {
        let f: Arc<InFlight<&str, usize>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let (f, runs) = (f.clone(), runs.clone());
            set.spawn(async move {
                f.run("k", || async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    runs.fetch_add(1, Ordering::SeqCst) + 7
                })
                .await
            });
        }
        while let Some(r) = set.join_next().await {
            assert_eq!(r.unwrap(), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(f.is_empty(), "a finished key is forgotten");
        // Later callers run the work again (results are not cached here).
        let again = f
            .run("k", || async { runs.fetch_add(1, Ordering::SeqCst) })
            .await;
        assert_eq!(again, 1);
    }

    /// Counts its clones.
    struct Counted(Arc<AtomicUsize>);
    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.0.fetch_add(1, Ordering::SeqCst);
            Counted(self.0.clone())
        }
    }

    #[tokio::test]
    async fn only_the_callers_that_share_a_result_clone_it() {
        let clones = Arc::new(AtomicUsize::new(0));
        let f: Arc<InFlight<&str, Counted>> = Arc::default();
        let c = clones.clone();
        f.run("alone", || async move { Counted(c) }).await;
        assert_eq!(
            clones.load(Ordering::SeqCst),
            0,
            "a lone caller takes the result"
        );

        let mut set = tokio::task::JoinSet::new();
        for _ in 0..3 {
            let (f, c) = (f.clone(), clones.clone());
            set.spawn(async move {
                f.run("shared", || async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Counted(c)
                })
                .await
            });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
        assert_eq!(
            clones.load(Ordering::SeqCst),
            2,
            "three sharers: two copies, the last one takes the original"
        );
        assert!(f.is_empty());
    }

    #[tokio::test]
    async fn a_dropped_runner_hands_the_work_over() {
        let f: Arc<InFlight<&str, u8>> = Arc::default();
        let first = {
            let f = f.clone();
            tokio::spawn(async move {
                f.run("k", || async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    1
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let f2 = f.clone();
        let second = tokio::spawn(async move { f2.run("k", || async { 2 }).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        first.abort();
        let got = tokio::time::timeout(Duration::from_secs(5), second)
            .await
            .expect("the waiter is not stuck")
            .unwrap();
        assert_eq!(got, 2);
    }

    #[tokio::test]
    async fn a_run_cut_off_by_a_deadline_leaves_no_key_behind() {
        let f: Arc<InFlight<u32, u8>> = Arc::default();
        for k in 0..100 {
            let slow = f.run(k, || async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                1
            });
            assert!(
                tokio::time::timeout(Duration::from_millis(1), slow)
                    .await
                    .is_err()
            );
        }
        assert!(f.is_empty(), "{} keys left by cancelled runs", f.len());

        // Several waiters cut off together leave nothing either.
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let f = f.clone();
            set.spawn(async move {
                f.run(7, || async {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    1
                })
                .await
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(f.len(), 1);
        set.abort_all();
        while set.join_next().await.is_some() {}
        assert!(f.is_empty(), "aborted waiters left their key");
    }
}

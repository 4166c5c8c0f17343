//! "Every cache has listed what exists", for any number of waiters.
//!
//! kube's `Store::wait_until_ready` keeps one waker per store (its one-shot receiver holds the
//! last one registered): of several tasks waiting at once, only the last is woken when the list
//! ends, and the others sleep forever. The readiness probe and every reconcile started before
//! the first lists ended waited like that, so a restart over enough objects (a list still
//! running when the clouds' 500 ms debounce ran out) left `/readyz` at 503 and reconciles hung
//! in their slots. Here a single task is the only waiter of each store, and everyone else waits
//! on a `watch` channel, which wakes every waiter.

use std::hash::Hash;

use futures::future::BoxFuture;
use kube::runtime::reflector::{Lookup, Store};
use tokio::sync::watch;

/// Whether every cache has listed; clones share the state.
#[derive(Clone, Debug)]
pub struct Synced(watch::Receiver<bool>);

impl Synced {
    /// Waits, in a task of its own, for each of `stores` (see [`listed`]) to list what exists.
    /// Each store must be in one `Synced` only: a second waiter of the same store is the bug
    /// this type exists to avoid.
    pub fn spawn(stores: Vec<BoxFuture<'static, ()>>) -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            for store in stores {
                store.await;
            }
            let _ = tx.send(true);
        });
        Self(rx)
    }

    /// Returns once every cache has listed (at once when they have).
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        // An error means the waiting task is gone (shutdown): nothing will become ready.
        let _ = rx.wait_for(|synced| *synced).await;
    }

    /// Whether every cache has listed.
    pub fn is_synced(&self) -> bool {
        *self.0.borrow()
    }
}

/// Resolves once `store` has listed what exists (or its writer is gone: shutdown, nothing left
/// to wait for), for [`Synced::spawn`]; any kind of store, so the cloud controller's caches and
/// the backup controller's share one waiter.
pub fn listed<K>(store: Store<K>) -> BoxFuture<'static, ()>
where
    K: Lookup + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + Hash + Clone + Send + Sync,
{
    Box::pin(async move {
        let _ = store.wait_until_ready().await;
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use kube::api::ApiResource;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    use super::super::Child;
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_waiter_wakes_when_the_lists_end() {
        let kind = Arc::new(ApiResource::erase::<k8s_openapi::api::core::v1::Secret>(&()));
        let mut writers: Vec<Writer<Child>> = (0..2).map(|_| Writer::new(kind.clone())).collect();
        let synced = Synced::spawn(writers.iter().map(|w| listed(w.as_reader())).collect());
        // The readiness probe plus a full set of reconcile slots, all waiting before the end.
        let waiters: Vec<_> = (0..9)
            .map(|_| {
                let synced = synced.clone();
                tokio::spawn(async move { synced.wait().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!synced.is_synced(), "nothing has listed yet");
        for writer in &mut writers {
            writer.apply_watcher_event(&Event::Init);
            writer.apply_watcher_event(&Event::InitDone);
        }
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("a waiter was never woken")
                .expect("waiter task");
        }
        assert!(synced.is_synced());
    }
}

//! The watch plumbing of the child caches: how initial lists arrive (streamed or paged), one
//! list at a time, and each child kind watched as projections ([`super::project`]).

use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, PartialObjectMeta};
use kube::runtime::watcher;
use tracing::debug;

use super::kinds::{FIELD_MANAGER, managed_by_selector};
use super::{Child, map_event, project, project_meta};
use crate::api::InSyncCloud;

/// How the watches' initial lists (and every re-list) reach the operator. The list is the one
/// moment whole objects are held, before they are projected: a parsed page of 100 Deployments
/// or StatefulSets is about 8 MB (0.9 MB of JSON; half of it their managedFields), measured
/// with the `dhat-heap` build at 300 clouds, where every projection of every child took 6 MB.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InitialList {
    /// Streaming when the API server allows it (a probe at start), else paged.
    #[default]
    Auto,
    /// Pages of `--list-page-size` objects.
    Paged,
    /// One object at a time in a watch (`sendInitialEvents`, the WatchList feature, on by
    /// default since Kubernetes 1.34 with a current etcd). An API server that refuses it keeps
    /// every cache unsynced.
    Streaming,
}

/// The watch configuration every cache starts from, once the initial-list mode is decided.
pub(crate) fn list_config(streaming: bool, page_size: u32) -> watcher::Config {
    let config = watcher::Config::default().any_semantic();
    if streaming {
        config.streaming_lists()
    } else {
        config.page_size(page_size)
    }
}

/// Whether the API server streams initial lists: one watch with `sendInitialEvents` on the
/// clouds, given `timeout` to answer. A server without the WatchList feature refuses the
/// request ("sendInitialEvents is forbidden for watch unless the WatchList feature gate is
/// enabled"); one whose etcd cannot report progress never ends the initial events, which the
/// timeout turns into "no".
pub(crate) async fn streaming_allowed(
    client: &Client,
    namespace: Option<&str>,
    timeout: Duration,
) -> bool {
    use kube::api::WatchParams;
    let clouds: Api<PartialObjectMeta<InSyncCloud>> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let params = WatchParams::streaming_lists().timeout(timeout.as_secs().max(1) as u32);
    let probe = async {
        let mut events = clouds.watch_metadata(&params, "").await?.boxed();
        // The initial events end with a bookmark; anything before it is a cloud.
        while let Some(event) = events.try_next().await? {
            if let kube::api::WatchEvent::Bookmark(_) = event {
                return Ok::<bool, kube::Error>(true);
            }
            if let kube::api::WatchEvent::Error(status) = event {
                debug!(status = ?status, "streaming list refused");
                return Ok(false);
            }
        }
        Ok(false)
    };
    match tokio::time::timeout(timeout, probe).await {
        Ok(Ok(allowed)) => allowed,
        Ok(Err(e)) => {
            debug!(error = %e, "streaming list refused");
            false
        }
        Err(_) => false,
    }
}

/// One initial list (or re-list) at a time across the watches that share `gate`.
///
/// A list page is the one moment whole objects are held: measured with the `dhat-heap` build
/// over a cold start at 1000 clouds, the eight child watches listing at once held 34 MB of
/// parsed pages (100 whole objects each, managedFields included) against 14 MB for every
/// projection of every child. Taking turns keeps one page in memory; the lists together take
/// the sum of their times instead of the longest, a few seconds at 1000 clouds. A watch that
/// fails gives its turn back while it backs off, so one refused kind cannot stall the others.
fn one_list_at_a_time<K: Send + 'static>(
    stream: BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>,
    gate: Arc<tokio::sync::Semaphore>,
) -> BoxStream<'static, Result<watcher::Event<K>, watcher::Error>> {
    // (stream, gate, the turn while held, whether the watch is listing)
    futures::stream::unfold(
        (stream, gate, None, true),
        |(mut stream, gate, mut turn, mut listing)| async move {
            if listing && turn.is_none() {
                turn = gate.clone().acquire_owned().await.ok();
            }
            let item = stream.next().await?;
            match &item {
                Ok(watcher::Event::Init) => listing = true,
                Ok(watcher::Event::InitDone) => {
                    listing = false;
                    turn = None;
                }
                Err(_) => turn = None,
                Ok(_) => {}
            }
            Some((item, (stream, gate, turn, listing)))
        },
    )
    .boxed()
}

/// Watches `resource` as projections: whole objects are parsed, projected and dropped here.
/// Secrets are watched metadata-only, every Secret of the watched namespaces: their data never
/// reaches the operator's memory, and the spec's references to the user's own Secrets are
/// checked against the same cache.
pub(crate) fn projected_watch(
    client: &Client,
    namespace: Option<&str>,
    resource: &ApiResource,
    gate: &Arc<tokio::sync::Semaphore>,
    config: watcher::Config,
) -> BoxStream<'static, Result<watcher::Event<Child>, watcher::Error>> {
    let core_kind = |kind: &str| resource.group.is_empty() && resource.kind == kind;
    if core_kind("Secret") {
        let api: Api<PartialObjectMeta<DynamicObject>> = match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
            None => Api::all_with(client.clone(), resource),
        };
        return one_list_at_a_time(watcher(api, config).boxed(), gate.clone())
            .map_ok(|event| map_event(event, project_meta))
            .boxed();
    }
    let api: Api<DynamicObject> = match namespace {
        Some(ns) if !core_kind("Node") => Api::namespaced_with(client.clone(), ns, resource),
        _ => Api::all_with(client.clone(), resource),
    };
    let config = if core_kind("Node") {
        config
    } else {
        config.labels(&managed_by_selector())
    };
    let resource = resource.clone();
    one_list_at_a_time(watcher(api, config).boxed(), gate.clone())
        .map_ok(move |event| map_event(event, |o| project(&resource.kind, o, FIELD_MANAGER)))
        .boxed()
}

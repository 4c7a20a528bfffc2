//! A live view of the namespace from watches (kube's reflectors): the workloads, their
//! ReplicaSets, Jobs and pods. One background task keeps every store current and wakes the wait
//! driver on each change; a lost connection (an API server restart) is resumed by the watcher's
//! backoff, and the stores catch up by re-listing.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::{Stream, StreamExt as _};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::reporter::Reporter;
use crate::wait::Kind;

/// The stores and the change signal.
pub struct Cluster {
    /// Deployments.
    pub deployments: Store<Deployment>,
    /// StatefulSets.
    pub statefulsets: Store<StatefulSet>,
    /// DaemonSets.
    pub daemonsets: Store<DaemonSet>,
    /// ReplicaSets (a Deployment's revisions).
    pub replicasets: Store<ReplicaSet>,
    /// Jobs.
    pub jobs: Store<Job>,
    /// Pods.
    pub pods: Store<Pod>,
    /// Woken on every change of any store.
    pub changed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Events = std::pin::Pin<Box<dyn Stream<Item = Result<(), watcher::Error>> + Send>>;

fn reflect<K>(client: &Client, namespace: &str) -> (Store<K>, Events)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()).default_backoff())
        .map(|event| event.map(drop))
        .boxed();
    (reader, stream)
}

fn unwatched<K>() -> (Store<K>, Option<Events>)
where
    K: kube::runtime::reflector::Lookup + Clone + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    (reflector::store::<K>().0, None)
}

fn watched<K>(client: &Client, namespace: &str, needed: bool) -> (Store<K>, Option<Events>)
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    if !needed {
        return unwatched();
    }
    let (store, events) = reflect::<K>(client, namespace);
    (store, Some(events))
}

impl Cluster {
    /// Start watching `namespace`: pods always, and the kinds in `kinds` (a Deployment's
    /// ReplicaSets with it). Kinds not needed are not watched: the deployer's Role may not
    /// allow listing them.
    pub fn watch(client: &Client, namespace: &str, out: Reporter, kinds: &BTreeSet<Kind>) -> Self {
        let deploy = kinds.contains(&Kind::Deployment);
        let (deployments, a) = watched::<Deployment>(client, namespace, deploy);
        let (replicasets, b) = watched::<ReplicaSet>(client, namespace, deploy);
        let (statefulsets, c) = watched::<StatefulSet>(client, namespace, kinds.contains(&Kind::StatefulSet));
        let (daemonsets, d) = watched::<DaemonSet>(client, namespace, kinds.contains(&Kind::DaemonSet));
        let (jobs, e) = watched::<Job>(client, namespace, kinds.contains(&Kind::Job));
        let (pods, f) = watched::<Pod>(client, namespace, true);
        let changed = Arc::new(Notify::new());
        let notify = changed.clone();
        let streams: Vec<Events> = [a, b, c, d, e, f].into_iter().flatten().collect();
        let task = tokio::spawn(async move {
            let mut events = futures_util::stream::select_all(streams);
            let mut failing = false;
            while let Some(event) = events.next().await {
                match event {
                    Ok(()) => {
                        if failing {
                            out.line("  watch resumed");
                            failing = false;
                        }
                    }
                    Err(err) if !failing => {
                        out.line(format!("  watch interrupted ({err}): resuming"));
                        failing = true;
                    }
                    Err(_) => {}
                }
                notify.notify_one();
            }
        });
        Self { deployments, statefulsets, daemonsets, replicasets, jobs, pods, changed, task }
    }
}

#[cfg(test)]
impl Cluster {
    /// A Deployment's view from in-memory stores (no API server), kept by the returned writers.
    pub fn from_stores() -> (
        Self,
        reflector::store::Writer<Deployment>,
        reflector::store::Writer<ReplicaSet>,
        reflector::store::Writer<Pod>,
    ) {
        let (deployments, d) = reflector::store();
        let (replicasets, r) = reflector::store();
        let (pods, p) = reflector::store();
        let cluster = Self {
            deployments,
            statefulsets: unwatched().0,
            daemonsets: unwatched().0,
            replicasets,
            jobs: unwatched().0,
            pods,
            changed: Arc::new(Notify::new()),
            task: tokio::spawn(async {}),
        };
        (cluster, d, r, p)
    }
}

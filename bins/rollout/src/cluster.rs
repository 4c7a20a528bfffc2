//! A live view of the namespace from watches (kube's reflectors): the workloads, their
//! ReplicaSets, Jobs and pods. One background task keeps every store current and wakes the wait
//! driver on each change; a lost connection (an API server restart) is resumed by the watcher's
//! backoff, and the stores catch up by re-listing.

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

impl Cluster {
    /// Start watching `namespace`.
    pub fn watch(client: &Client, namespace: &str, out: Reporter) -> Self {
        let (deployments, a) = reflect::<Deployment>(client, namespace);
        let (statefulsets, b) = reflect::<StatefulSet>(client, namespace);
        let (daemonsets, c) = reflect::<DaemonSet>(client, namespace);
        let (replicasets, d) = reflect::<ReplicaSet>(client, namespace);
        let (jobs, e) = reflect::<Job>(client, namespace);
        let (pods, f) = reflect::<Pod>(client, namespace);
        let changed = Arc::new(Notify::new());
        let notify = changed.clone();
        let task = tokio::spawn(async move {
            let mut events = futures_util::stream::select_all([a, b, c, d, e, f]);
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

    /// Wait until every store has listed once (bounded by the caller).
    pub async fn ready(&self) {
        let _ = tokio::join!(
            self.deployments.wait_until_ready(),
            self.statefulsets.wait_until_ready(),
            self.daemonsets.wait_until_ready(),
            self.replicasets.wait_until_ready(),
            self.jobs.wait_until_ready(),
            self.pods.wait_until_ready(),
        );
    }
}

//! Why pods are not ready, in lines a person can act on: container waiting reasons
//! (CrashLoopBackOff, ImagePullBackOff, ErrImagePull, CreateContainerConfigError) with their
//! messages, the last termination's exit code, scheduling and readiness failures from the pod's
//! conditions and Warning events, and the last log lines. Secret data is never read.

use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::Api;
use kube::api::{ListParams, LogParams};

/// Log lines shown per failing container.
pub const LOG_LINES: i64 = 20;
/// Pods diagnosed per selector (a crashing Deployment's pods all say the same).
const MAX_PODS: usize = 3;

/// What is wrong with one container, without its logs.
pub fn container_problems(status: &ContainerStatus) -> Vec<String> {
    let mut out = Vec::new();
    let state = status.state.as_ref();
    if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
        let reason = waiting.reason.as_deref().unwrap_or("Waiting");
        match waiting.message.as_deref().filter(|m| !m.is_empty()) {
            Some(message) => out.push(format!("waiting: {reason}: {message}")),
            None => out.push(format!("waiting: {reason}")),
        }
    }
    if let Some(terminated) = state.and_then(|s| s.terminated.as_ref()) {
        out.push(format!(
            "terminated: exit code {} ({})",
            terminated.exit_code,
            terminated.reason.as_deref().unwrap_or("no reason")
        ));
    }
    if let Some(last) = status.last_state.as_ref().and_then(|s| s.terminated.as_ref()) {
        out.push(format!(
            "last termination: exit code {} ({}), {} restarts",
            last.exit_code,
            last.reason.as_deref().unwrap_or("no reason"),
            status.restart_count
        ));
    }
    if !status.ready && state.is_some_and(|s| s.running.is_some()) {
        out.push("running but not ready (readiness or startup probe failing)".into());
    }
    out
}

/// True when the container has run at least once, so it has logs.
fn has_run(status: &ContainerStatus) -> bool {
    status.restart_count > 0
        || status.state.as_ref().is_some_and(|s| s.running.is_some() || s.terminated.is_some())
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Diagnose the pods matching `selector` in `namespace` that are not ready (for a Job: every
/// pod, `all = true`). Returns printable lines; API errors become lines too, since a
/// diagnosis must never hide the failure it describes.
pub async fn pods(client: &kube::Client, namespace: &str, selector: &str, all: bool) -> Vec<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = match api.list(&ListParams::default().labels(selector)).await {
        Ok(list) => list,
        Err(err) => return vec![format!("cannot list pods ({selector}): {err}")],
    };
    let mut pods: Vec<Pod> = list.items.into_iter().filter(|p| all || !pod_ready(p)).collect();
    // Newest first: the new ReplicaSet's pods are the interesting ones.
    pods.sort_by(|a, b| b.metadata.creation_timestamp.cmp(&a.metadata.creation_timestamp));
    if pods.is_empty() {
        return vec![format!("no {}pods match {selector}", if all { "" } else { "unready " })];
    }
    let mut out = Vec::new();
    for pod in pods.iter().take(MAX_PODS) {
        out.extend(pod_lines(client, &api, namespace, pod, all).await);
    }
    if pods.len() > MAX_PODS {
        out.push(format!("({} more pods not shown)", pods.len() - MAX_PODS));
    }
    out
}

/// One pod's lines: phase, scheduling failure, Warning events, and each container with a problem
/// (every container with `all`): its problems and last log lines.
async fn pod_lines(
    client: &kube::Client,
    api: &Api<Pod>,
    namespace: &str,
    pod: &Pod,
    all: bool,
) -> Vec<String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let mut out = vec![format!("pod/{name}: phase {}", status.phase.as_deref().unwrap_or("Unknown"))];
    for condition in status.conditions.iter().flatten() {
        if condition.status != "True" && condition.type_ == "PodScheduled" {
            out.push(format!(
                "  not scheduled: {} {}",
                condition.reason.as_deref().unwrap_or_default(),
                condition.message.as_deref().unwrap_or_default()
            ));
        }
    }
    for message in warning_events(client, namespace, &name).await {
        out.push(format!("  event: {message}"));
    }
    let statuses =
        status.init_container_statuses.iter().flatten().chain(status.container_statuses.iter().flatten());
    for container in statuses {
        let problems = container_problems(container);
        if problems.is_empty() && !all {
            continue;
        }
        for problem in &problems {
            out.push(format!("  container {}: {problem}", container.name));
        }
        if has_run(container) {
            out.extend(log_lines(api, &name, container).await);
        }
    }
    out
}

/// A container's last [`LOG_LINES`] log lines (of its previous run when it restarted and is not
/// running to an end now), as report lines.
async fn log_lines(api: &Api<Pod>, pod: &str, container: &ContainerStatus) -> Vec<String> {
    let previous =
        container.restart_count > 0 && container.state.as_ref().is_some_and(|s| s.terminated.is_none());
    let params = LogParams {
        container: Some(container.name.clone()),
        tail_lines: Some(LOG_LINES),
        previous,
        ..Default::default()
    };
    match api.logs(pod, &params).await {
        Ok(text) if text.trim().is_empty() => {
            vec![format!("  container {}: (no log output)", container.name)]
        }
        Ok(text) => std::iter::once(format!("  container {} last {LOG_LINES} log lines:", container.name))
            .chain(text.lines().map(|l| format!("    | {l}")))
            .collect(),
        Err(err) => vec![format!("  container {}: logs unavailable: {err}", container.name)],
    }
}

/// The object's distinct Warning event messages, latest last (probe failures, pull errors; a
/// controller's FailedCreate).
pub async fn warning_events(client: &kube::Client, namespace: &str, pod: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().fields(&format!("involvedObject.name={pod},type=Warning"));
    let Ok(list) = api.list(&params).await else { return Vec::new() };
    let mut seen: Vec<String> = Vec::new();
    for event in list.items {
        let text = format!(
            "{}: {}",
            event.reason.as_deref().unwrap_or("Warning"),
            event.message.as_deref().unwrap_or_default().trim()
        );
        if !seen.contains(&text) {
            seen.push(text);
        }
    }
    let skip = seen.len().saturating_sub(3);
    seen.into_iter().skip(skip).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn crash_loop_names_reason_and_exit_code() {
        let status: ContainerStatus = serde_json::from_value(json!({
            "name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting failed container"}},
            "lastState": {"terminated": {"exitCode": 78, "reason": "Error"}},
        }))
        .unwrap();
        let lines = container_problems(&status);
        assert_eq!(lines[0], "waiting: CrashLoopBackOff: back-off 40s restarting failed container");
        assert_eq!(lines[1], "last termination: exit code 78 (Error), 3 restarts");
        assert!(has_run(&status));
    }

    #[test]
    fn image_pull_has_no_logs() {
        let status: ContainerStatus = serde_json::from_value(json!({
            "name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"x\""}},
        }))
        .unwrap();
        assert_eq!(container_problems(&status), ["waiting: ImagePullBackOff: Back-off pulling image \"x\""]);
        assert!(!has_run(&status));
    }
}

//! One rollout per namespace at a time. A `coordination.k8s.io` Lease named `statuspage-rollout`
//! is held for the whole change; a second rollout that finds it held (and not expired) stops
//! before changing anything and says who holds it. A holder that died leaves a Lease that expires
//! after the rollout's timeout plus a minute, and is then taken over.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::{RolloutConfig, RolloutError};

/// The Lease's name.
pub const LEASE_NAME: &str = "statuspage-rollout";

/// A held Lease.
#[derive(Debug, Clone)]
pub struct Held {
    holder: String,
}

/// Who this process is, for the Lease and for the message another rollout will print.
fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let run = match (std::env::var("GITHUB_REPOSITORY"), std::env::var("GITHUB_RUN_ID")) {
        (Ok(repo), Ok(id)) => format!(" ({repo} run {id})"),
        _ => String::new(),
    };
    format!("{}/{}{run}", host.trim(), std::process::id())
}

/// True when `lease` is held and was renewed less than its duration ago.
pub fn is_live(lease: &Lease, now: Timestamp) -> bool {
    let Some(spec) = lease.spec.as_ref() else { return false };
    if spec.holder_identity.as_deref().unwrap_or_default().is_empty() {
        return false;
    }
    let (Some(renewed), Some(seconds)) = (spec.renew_time.as_ref(), spec.lease_duration_seconds) else {
        return false;
    };
    let expires = renewed.0.as_second() + i64::from(seconds);
    now.as_second() < expires
}

/// Take the namespace's Lease or explain who holds it.
pub async fn acquire(client: &Client, namespace: &str, config: &RolloutConfig) -> Result<Held, RolloutError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let holder = identity();
    let seconds = i32::try_from((config.timeout + Duration::from_secs(60)).as_secs()).unwrap_or(i32::MAX);
    let now = Timestamp::now();
    let spec = LeaseSpec {
        holder_identity: Some(holder.clone()),
        lease_duration_seconds: Some(seconds),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        ..Default::default()
    };
    let kube_err = |what: &str| RolloutError::kube(format!("{what} Lease/{LEASE_NAME}"));
    match api.get_opt(LEASE_NAME).await.map_err(kube_err("reading"))? {
        Some(existing) if is_live(&existing, now) => {
            let other = existing.spec.as_ref().and_then(|s| s.holder_identity.clone()).unwrap_or_default();
            Err(RolloutError::Busy { namespace: namespace.to_string(), holder: other })
        }
        Some(mut existing) => {
            // Expired: take it over. The resourceVersion makes a concurrent taker lose cleanly.
            existing.spec = Some(spec);
            api.replace(LEASE_NAME, &PostParams::default(), &existing)
                .await
                .map_err(|e| busy_or(e, namespace))?;
            Ok(Held { holder })
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(LEASE_NAME.into()), ..Default::default() },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await.map_err(|e| busy_or(e, namespace))?;
            Ok(Held { holder })
        }
    }
}

/// A create or replace that lost a race is another rollout's, not an API failure.
fn busy_or(err: kube::Error, namespace: &str) -> RolloutError {
    match err {
        kube::Error::Api(status) if status.code == 409 => RolloutError::Busy {
            namespace: namespace.to_string(),
            holder: "another rollout (it just took it)".into(),
        },
        other => RolloutError::Kube { what: format!("taking Lease/{LEASE_NAME}"), source: other },
    }
}

/// Give the Lease back (only if this process still holds it). Best effort: an expired Lease
/// is taken over anyway.
pub async fn release(client: &Client, namespace: &str, held: &Held) {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    if let Ok(Some(lease)) = api.get_opt(LEASE_NAME).await
        && lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref()) == Some(held.holder.as_str())
    {
        let _ = api.delete(LEASE_NAME, &DeleteParams::default()).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn lease(holder: &str, renewed_seconds_ago: i64, duration: i32) -> Lease {
        let renewed = Timestamp::from_second(1_800_000_000 - renewed_seconds_ago).unwrap();
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                lease_duration_seconds: Some(duration),
                renew_time: Some(MicroTime(renewed)),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_lease_is_live_until_its_duration_has_passed() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        assert!(is_live(&lease("ci/1", 10, 60), now));
        assert!(!is_live(&lease("ci/1", 61, 60), now), "expired");
        assert!(!is_live(&lease("", 0, 60), now), "no holder");
        assert!(!is_live(&Lease::default(), now));
    }
}

//! One rollout per namespace at a time. A `coordination.k8s.io` Lease named `statuspage-rollout`
//! is held for the whole change: short ([`LEASE_SECONDS`]) and renewed in the background every
//! [`RENEW_EVERY`]. A second rollout that finds it held (and not expired) stops before changing
//! anything and says who holds it; a holder that died leaves a Lease that expires within
//! [`LEASE_SECONDS`] and is then taken over. A renewal that finds another holder stops this
//! rollout (see [`crate::stop`]).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client};

use crate::RolloutError;
use crate::stop::{Stop, StopReason};

/// The Lease's name.
pub const LEASE_NAME: &str = "statuspage-rollout";
/// How long the Lease lasts without a renewal.
pub const LEASE_SECONDS: i32 = 30;
/// How often it is renewed.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);

/// A held Lease, renewed in the background until [`release`].
#[derive(Debug)]
pub struct Held {
    holder: String,
    renewal: tokio::task::JoinHandle<()>,
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

fn spec(holder: &str, now: Timestamp) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(holder.to_string()),
        lease_duration_seconds: Some(LEASE_SECONDS),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        ..Default::default()
    }
}

/// Take the namespace's Lease or explain who holds it; once taken, it is renewed in the
/// background, and `stop` is triggered if a renewal finds another holder.
pub async fn acquire(client: &Client, namespace: &str, stop: &Stop) -> Result<Held, RolloutError> {
    let holder = take(client, namespace).await?;
    let renewal = tokio::spawn(renew(client.clone(), namespace.to_string(), holder.clone(), stop.clone()));
    Ok(Held { holder, renewal })
}

async fn take(client: &Client, namespace: &str) -> Result<String, RolloutError> {
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let holder = identity();
    let now = Timestamp::now();
    let spec = spec(&holder, now);
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
            Ok(holder)
        }
        None => {
            let lease = Lease {
                metadata: ObjectMeta { name: Some(LEASE_NAME.into()), ..Default::default() },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await.map_err(|e| busy_or(e, namespace))?;
            Ok(holder)
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
        other => RolloutError::Kube { what: format!("taking Lease/{LEASE_NAME}"), cause: other },
    }
}

/// Renew the Lease every [`RENEW_EVERY`] until aborted. Another holder stops the rollout; an
/// API error is retried at the next tick (the Lease lasts three ticks).
async fn renew(client: Client, namespace: String, holder: String, stop: Stop) {
    let api: Api<Lease> = Api::namespaced(client, &namespace);
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        let lease = match api.get_opt(LEASE_NAME).await {
            Ok(lease) => lease,
            Err(err) => {
                eprintln!("  renewing Lease/{LEASE_NAME}: {} (retrying)", crate::error::describe(&err));
                continue;
            }
        };
        let now = Timestamp::now();
        let result = match lease {
            Some(mut lease) => {
                let current = lease.spec.as_ref().and_then(|s| s.holder_identity.clone()).unwrap_or_default();
                if current != holder {
                    stop.trigger(StopReason::LeaseLost { holder: current });
                    return;
                }
                if let Some(spec) = lease.spec.as_mut() {
                    spec.renew_time = Some(MicroTime(now));
                }
                api.replace(LEASE_NAME, &PostParams::default(), &lease).await.map(drop)
            }
            None => {
                let lease = Lease {
                    metadata: ObjectMeta { name: Some(LEASE_NAME.into()), ..Default::default() },
                    spec: Some(spec(&holder, now)),
                };
                api.create(&PostParams::default(), &lease).await.map(drop)
            }
        };
        if let Err(err) = result {
            eprintln!("  renewing Lease/{LEASE_NAME}: {} (retrying)", crate::error::describe(&err));
        }
    }
}

/// Give the Lease back (only if this process still holds it). Best effort: an expired Lease
/// is taken over anyway.
pub async fn release(client: &Client, namespace: &str, held: Held) {
    held.renewal.abort();
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

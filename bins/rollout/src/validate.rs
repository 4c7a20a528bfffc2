//! Step 1, validate: nothing in the cluster changes before everything has passed (a missing
//! namespace is created for the dry run and deleted again when validation fails, after a dry run
//! and on a stop before any change: [`delete_namespaces`]).
//! Every object's kind is served (discovery), the render passes the local checks (HPA against
//! `replicas`, the release), the server-side dry run accepts every object, and what is live allows
//! the rollout (no paused Deployment, no migration Job of another template still running).

use std::collections::BTreeSet;

use futures_util::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch};
use kube::discovery::{Discovery, Scope};
use kube::runtime::wait::conditions;
use kube::{Api, Client};
use serde_json::Value;

use crate::manifests::{self, MIGRATION_COPY, Object, ROLE_ANNOTATION};
use crate::report::{Action, MigrationReport, MigrationResult, ObjectReport, Report};
use crate::status::JobState;
use crate::{Ctx, RolloutError, applyset, diff, prune, release};

/// A parsed object with what the API server told us about its kind and its live state.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The object as it will be applied.
    pub object: Object,
    /// Its resource.
    pub resource: ApiResource,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// The live object before anything was applied (None: absent).
    pub live: Option<DynamicObject>,
}

impl Resolved {
    /// The API for this object's kind (in its namespace).
    pub fn api(&self, client: &Client) -> Api<DynamicObject> {
        match (&self.object.object.metadata.namespace, self.namespaced) {
            (Some(ns), true) => Api::namespaced_with(client.clone(), ns, &self.resource),
            _ => Api::all_with(client.clone(), &self.resource),
        }
    }

    /// Its namespace ("" for cluster-scoped objects).
    pub fn namespace(&self) -> String {
        self.object.object.metadata.namespace.clone().filter(|_| self.namespaced).unwrap_or_default()
    }

    /// A report row.
    pub fn row(&self, action: Action) -> ObjectReport {
        ObjectReport {
            kind: self.object.gvk.kind.clone(),
            name: self.object.name().to_string(),
            namespace: self.namespace(),
            action,
            adopted_from: None,
        }
    }

    /// The live `resourceVersion` before this run.
    pub fn live_version(&self) -> Option<&str> {
        self.live.as_ref().and_then(|l| l.metadata.resource_version.as_deref())
    }
}

/// What validation found: the objects in apply order, the migration Job, what to prune, and the
/// dry-run report.
#[derive(Debug)]
pub struct Plan {
    /// Every object but the migration template, in apply order.
    pub objects: Vec<Resolved>,
    /// The per-template migration Job.
    pub migration: Option<Resolved>,
    /// Objects to delete after a successful rollout.
    pub to_prune: Vec<prune::PruneCandidate>,
    /// The dry run's report (actions `would …`); `objects` rows are in the order of `objects`.
    pub report: Report,
    /// Namespaces created (empty) for the dry run: deleted again unless the rollout goes on.
    pub created_namespaces: Vec<String>,
}

/// Validate `objects` against the cluster; nothing is left changed when this fails.
pub async fn validate(
    ctx: &Ctx<'_>,
    objects: Vec<Object>,
    discovery: &Discovery,
) -> Result<Plan, RolloutError> {
    let (mut resolved, mut migration) = resolve(ctx, objects, discovery)?;
    local_checks(ctx, &resolved, migration.as_ref())?;
    let created = create_missing_namespaces(ctx, &resolved).await?;
    let result = async {
        let rows = dry_run(ctx, &mut resolved).await?;
        if let Some(job) = migration.as_mut() {
            check_migration(ctx, job).await?;
        }
        live_checks(ctx, &resolved)?;
        let to_prune = prune_candidates(ctx, discovery, &resolved, migration.as_ref()).await?;
        Ok::<_, RolloutError>((rows, to_prune))
    }
    .await;
    let (mut rows, to_prune) = match result {
        Ok(found) => found,
        Err(err) => {
            delete_namespaces(ctx, &created).await;
            return Err(err);
        }
    };
    for candidate in &to_prune {
        ctx.out
            .line(format!("  {}/{} would prune (no longer in the render)", candidate.kind, candidate.name));
        rows.push(ObjectReport {
            kind: candidate.kind.clone(),
            name: candidate.name.clone(),
            namespace: ctx.namespace.clone(),
            action: Action::WouldPrune,
            adopted_from: None,
        });
    }
    let report = Report {
        version: 2,
        namespace: ctx.namespace.clone(),
        objects: rows,
        migration: migration.as_ref().map(|job| MigrationReport {
            job: job.object.name().to_string(),
            result: MigrationResult::Planned,
        }),
        ..Default::default()
    };
    Ok(Plan { objects: resolved, migration, to_prune, report, created_namespaces: created })
}

/// Delete the namespaces validation created for its dry run (a dry run, a refusal or a stop
/// before any change leaves none behind). Best effort: a failure is said, never an error.
pub async fn delete_namespaces(ctx: &Ctx<'_>, names: &[String]) {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    for name in names {
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => ctx.out.line(format!("  Namespace/{name} deleted again (created only for the dry run)")),
            Err(err) => ctx.out.line(format!("  Namespace/{name} created for the dry run is left: {err}")),
        }
    }
}

/// Every object's kind from discovery; namespaced objects without a namespace get the rollout's.
fn resolve(
    ctx: &Ctx<'_>,
    objects: Vec<Object>,
    discovery: &Discovery,
) -> Result<(Vec<Resolved>, Option<Resolved>), RolloutError> {
    let mut resolved = Vec::new();
    let mut migration = None;
    for mut object in objects {
        let Some((resource, caps)) = discovery.resolve_gvk(&object.gvk) else {
            return Err(RolloutError::UnknownKind {
                object: object.label(),
                api_version: object.object.types.as_ref().map(|t| t.api_version.clone()).unwrap_or_default(),
                kind: object.gvk.kind.clone(),
            });
        };
        let namespaced = caps.scope == Scope::Namespaced;
        if namespaced && object.object.metadata.namespace.is_none() {
            object.object.metadata.namespace = Some(ctx.namespace.clone());
        }
        if namespaced
            && !object.is_migration_template()
            && object.object.metadata.namespace.as_deref() == Some(ctx.namespace.as_str())
        {
            object
                .object
                .metadata
                .labels
                .get_or_insert_default()
                .insert(applyset::PART_OF.into(), applyset::id(&ctx.namespace));
        }
        let item = Resolved { object, resource, namespaced, live: None };
        if item.object.is_migration_template() {
            migration = Some(Resolved { object: manifests::migration_copy(&item.object), ..item });
        } else {
            resolved.push(item);
        }
    }
    Ok((resolved, migration))
}

/// Checks of the render alone: an HPA and `replicas` on the same workload, and `--release`.
fn local_checks(
    ctx: &Ctx<'_>,
    resolved: &[Resolved],
    migration: Option<&Resolved>,
) -> Result<(), RolloutError> {
    for hpa in resolved.iter().filter(|i| i.object.gvk.kind == "HorizontalPodAutoscaler") {
        let target = &hpa.object.object.data["spec"]["scaleTargetRef"];
        let (kind, name) =
            (target["kind"].as_str().unwrap_or_default(), target["name"].as_str().unwrap_or_default());
        let scaled = resolved.iter().find(|i| {
            i.object.gvk.kind == kind && i.object.name() == name && i.namespace() == hpa.namespace()
        });
        if let Some(workload) = scaled
            && workload.object.object.data.pointer("/spec/replicas").is_some_and(|r| !r.is_null())
        {
            return Err(RolloutError::Refused {
                object: workload.object.label(),
                message: format!(
                    "sets spec.replicas while {} scales it: every rollout would reset the autoscaler's count; \
                     remove replicas from the workload (the HPA's minReplicas sets the floor)",
                    hpa.object.label()
                ),
            });
        }
    }
    if let Some(release) = &ctx.config.release {
        let objects: Vec<&Object> = resolved.iter().chain(migration).map(|i| &i.object).collect();
        release::check_render(release, &objects)?;
    }
    Ok(())
}

/// Namespaces the render declares and the cluster lacks, created (empty) so the dry run of the
/// objects inside them can pass. Returns their names.
async fn create_missing_namespaces(
    ctx: &Ctx<'_>,
    resolved: &[Resolved],
) -> Result<Vec<String>, RolloutError> {
    let mut created = Vec::new();
    for item in resolved.iter().filter(|i| i.object.is("", "Namespace")) {
        let api = item.api(&ctx.client);
        let name = item.object.name();
        let mut live =
            api.get_opt(name).await.map_err(RolloutError::kube(format!("reading Namespace/{name}")))?;
        if let Some(ns) = live.take_if(|ns| ns.data["status"]["phase"] == "Terminating") {
            wait_deleted(ctx, name, ns.metadata.uid.unwrap_or_default()).await?;
        }
        if live.is_none() {
            api.patch(name, &ctx.apply, &Patch::Apply(&item.object.object))
                .await
                .map_err(|e| rejected(&item.object, e))?;
            ctx.out.line(format!("  Namespace/{name} created (the dry run of the objects inside needs it)"));
            created.push(name.to_string());
        }
    }
    Ok(created)
}

/// Wait (at most `--timeout`) until the Namespace `name` (uid `uid`) being deleted is gone, as
/// after a dry run that created and deleted it a moment ago; one still there after that is
/// refused (exit 2).
async fn wait_deleted(ctx: &Ctx<'_>, name: &str, uid: String) -> Result<(), RolloutError> {
    ctx.out.line(format!("  Namespace/{name} is being deleted: waiting until it is gone"));
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let gone = kube::runtime::wait::await_condition(api.clone(), name, conditions::is_deleted(&uid));
    match tokio::time::timeout(ctx.config.timeout, gone).await {
        Ok(Ok(_)) => Ok(()),
        // The watch failed: one read says whether it is gone, or what the API server says.
        Ok(Err(_)) => match api.get_opt(name).await {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err(still_terminating(ctx, name)),
            Err(err) => Err(RolloutError::kube(format!("reading Namespace/{name}"))(err)),
        },
        Err(_) => Err(still_terminating(ctx, name)),
    }
}

fn still_terminating(ctx: &Ctx<'_>, name: &str) -> RolloutError {
    RolloutError::Refused {
        object: format!("Namespace/{name}"),
        message: format!(
            "it is being deleted and was not gone within --timeout ({}s); wait until `kubectl get namespace {name}` says NotFound, or deploy to another namespace",
            ctx.config.timeout.as_secs()
        ),
    }
}

/// Read every object and dry-run it (up to 8 at a time); the rows say what would happen.
async fn dry_run(ctx: &Ctx<'_>, resolved: &mut [Resolved]) -> Result<Vec<ObjectReport>, RolloutError> {
    let dry = ctx.apply.clone().dry_run();
    let checks = futures_util::stream::iter(resolved.iter().map(|item| {
        let dry = &dry;
        async move {
            let api = item.api(&ctx.client);
            let live = api
                .get_opt(item.object.name())
                .await
                .map_err(RolloutError::kube(format!("reading {}", item.object.label())))?;
            let result = api
                .patch(item.object.name(), dry, &Patch::Apply(&item.object.object))
                .await
                .map_err(|e| rejected(&item.object, e))?;
            let (action, diff) = match &live {
                None => (Action::WouldCreate, String::new()),
                Some(live) if diff::comparable(live) == diff::comparable(&result) => {
                    (Action::Unchanged, String::new())
                }
                Some(live) => {
                    (Action::WouldConfigure, diff::object_diff(&item.object.gvk.kind, live, &result))
                }
            };
            Ok::<_, RolloutError>((live, action, diff))
        }
    }))
    .buffered(8)
    .collect::<Vec<_>>()
    .await;
    let mut rows = Vec::new();
    for (item, check) in resolved.iter_mut().zip(checks) {
        let (live, action, diff) = check?;
        item.live = live;
        let mut row = item.row(action);
        row.adopted_from = item.live.as_ref().and_then(crate::adopt::adopted_from);
        match &row.adopted_from {
            Some(from) => ctx.out.line(format!(
                "  {} {} (adopting the fields {from} owns: what the render drops is removed)",
                item.object.label(),
                action.as_str()
            )),
            None => ctx.out.line(format!("  {} {}", item.object.label(), action.as_str())),
        }
        if ctx.config.dry_run && !diff.is_empty() {
            let _group = ctx.out.group(&format!("diff {}", item.object.label()));
            for line in diff.lines() {
                ctx.out.line(format!("    {line}"));
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

/// The migration Job: a running Job of another template is refused; a new one is dry-run.
async fn check_migration(ctx: &Ctx<'_>, job: &mut Resolved) -> Result<(), RolloutError> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &job.namespace());
    let all = jobs.list(&ListParams::default()).await.map_err(RolloutError::kube("listing Jobs"))?;
    for other in &all.items {
        let name = other.metadata.name.as_deref().unwrap_or_default();
        let role = other.metadata.annotations.as_ref().and_then(|a| a.get(ROLE_ANNOTATION));
        if role.is_some_and(|r| r == MIGRATION_COPY)
            && name != job.object.name()
            && crate::migrate::job_state(ctx, other).await? == JobState::Running
        {
            return Err(RolloutError::Refused {
                object: format!("Job/{name}"),
                message: format!(
                    "a migration of another release (another pod template than {}) is still running; \
                     wait for it (`kubectl -n {} wait --for=condition=complete job/{name}`) or delete it",
                    job.object.name(),
                    job.namespace()
                ),
            });
        }
    }
    let api = job.api(&ctx.client);
    job.live = api
        .get_opt(job.object.name())
        .await
        .map_err(RolloutError::kube(format!("reading {}", job.object.label())))?;
    if job.live.is_none() {
        api.patch(job.object.name(), &ctx.apply.clone().dry_run(), &Patch::Apply(&job.object.object))
            .await
            .map_err(|e| rejected(&job.object, e))?;
    }
    ctx.out.line(format!("  {} (migration, from the template) valid", job.object.label()));
    Ok(())
}

/// What is live must allow the rollout: a paused Deployment would never roll out.
fn live_checks(ctx: &Ctx<'_>, resolved: &[Resolved]) -> Result<(), RolloutError> {
    for item in resolved.iter().filter(|i| i.object.is("apps", "Deployment")) {
        let live_paused =
            item.live.as_ref().is_some_and(|l| l.data.pointer("/spec/paused") == Some(&Value::Bool(true)));
        let render_paused = item.object.object.data.pointer("/spec/paused") == Some(&Value::Bool(true));
        if live_paused || render_paused {
            let name = item.object.name();
            return Err(RolloutError::Refused {
                object: item.object.label(),
                message: format!(
                    "is paused (kubectl rollout pause): it would hold the new template and never roll it out; \
                     resume it first with `kubectl -n {} rollout resume deployment/{name}`{}",
                    ctx.namespace,
                    if render_paused { " and remove spec.paused from the render" } else { "" }
                ),
            });
        }
    }
    Ok(())
}

async fn prune_candidates(
    ctx: &Ctx<'_>,
    discovery: &Discovery,
    resolved: &[Resolved],
    migration: Option<&Resolved>,
) -> Result<Vec<prune::PruneCandidate>, RolloutError> {
    if !ctx.config.prune {
        return Ok(Vec::new());
    }
    let keep: BTreeSet<(String, String)> = resolved
        .iter()
        .chain(migration)
        .map(|i| (i.object.gvk.kind.clone(), i.object.name().to_string()))
        .collect();
    let kinds: Vec<_> = resolved.iter().map(|i| i.object.gvk.clone()).collect();
    let recorded = applyset::recorded(&ctx.client, &ctx.namespace)
        .await
        .map_err(RolloutError::kube(format!("reading ConfigMap/{}", applyset::PARENT)))?;
    let inventory = prune::Inventory {
        id: applyset::id(&ctx.namespace),
        group_kinds: recorded,
        selector: ctx.config.prune_selector.clone(),
        field_manager: ctx.config.field_manager.clone(),
    };
    prune::candidates(&ctx.client, discovery, &ctx.namespace, &kinds, &keep, &inventory)
        .await
        .map_err(RolloutError::kube("listing objects to prune"))
}

/// The dry run's refusal of an object as the one-line error the contract asks for.
pub fn rejected(object: &Object, err: kube::Error) -> RolloutError {
    match err {
        kube::Error::Api(status) if status.code != 401 && status.code != 403 => RolloutError::Rejected {
            object: object.label(),
            message: if status.message.is_empty() { status.reason.clone() } else { status.message.clone() },
        },
        other => RolloutError::Kube { what: format!("dry run of {}", object.label()), cause: other },
    }
}

//! Bad input to statuspage-patch (issue 13): each case's exit code (README's contract: 2 for bad
//! input, 1 for `--check` finding the overlay not at the release), one message naming the flag,
//! file, line, field or value and the fix, no `caused by:` line repeating it, and nothing
//! changed: every file of a copy of the repository's `manifests/app` (the overlays patched and
//! their bases) is byte for byte the same after all cases, and no temporary file is left. The
//! real `kustomize build` renders the overlays.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use statuspage_integration_tests::{assert_one_error_line, bad_release_documents, copy_tree, run_binary};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";
const REGISTRY: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

/// A valid release of web, worker and scheduler.
fn release() -> Value {
    let image = |component: &str| {
        json!({"repository": format!("{REGISTRY}/statuspage-{component}"), "tag": SHA,
               "digest": format!("sha256:{}", "a".repeat(64)), "built": true})
    };
    json!({"version": 1, "commit": SHA,
           "images": {"web": image("web"), "worker": image("worker"), "scheduler": image("scheduler")}})
}

/// Every file under `dir` (relative path) with its bytes, and every folder (empty).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.insert(path.strip_prefix(root).unwrap().join(""), Vec::new());
                walk(root, &path, out);
            } else {
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

struct Case {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: String,
    code: i32,
    needles: Vec<String>,
}

/// A case that patches `overlay` (unless `args` names another `--overlay`) with `stdin`.
fn case(name: &str, args: &[&str], stdin: &str, code: i32, needles: &[&str]) -> Case {
    Case {
        name: name.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env: vec![],
        stdin: stdin.into(),
        code,
        needles: needles.iter().map(|n| n.to_string()).collect(),
    }
}

/// An overlay folder `name` next to production with these files, over the same base.
fn overlay(app: &Path, name: &str, files: &[(&str, &str)]) -> String {
    let dir = app.join("overlays").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir.to_str().unwrap().to_string()
}

fn overlay_cases(app: &Path, good: &str) -> Vec<Case> {
    let head =
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\n";
    let k = |body: &str| format!("{head}{body}");
    let empty = overlay(app, "empty", &[]);
    let several = overlay(app, "several", &[("kustomization.yaml", head), ("kustomization.yml", head)]);
    let yaml = overlay(
        app,
        "bad-yaml",
        &[("kustomization.yaml", &k("images:\n  - name: statuspage-web\n    newTag: [\n"))],
    );
    let list = overlay(app, "list", &[("kustomization.yaml", "- a\n- b\n")]);
    let mapping =
        overlay(app, "images-mapping", &[("kustomization.yaml", &k("images:\n  name: statuspage-web\n"))]);
    let flow_list = overlay(
        app,
        "flow-list",
        &[("kustomization.yaml", &k("images: [{name: statuspage-web, newTag: x}]\n"))],
    );
    let flow_entry = overlay(
        app,
        "flow-entry",
        &[("kustomization.yaml", &k("images:\n  - {name: statuspage-web, newTag: x}\n"))],
    );
    let quoted_key =
        overlay(app, "quoted-key", &[("kustomization.yaml", &k("\"images\":\n  - name: statuspage-web\n"))]);
    let broken = overlay(
        app,
        "missing-resource",
        &[(
            "kustomization.yaml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../no-such-base\n",
        )],
    );
    vec![
        case(
            "overlay missing",
            &["--overlay", "/nonexistent/overlay"],
            good,
            2,
            &["overlay /nonexistent/overlay is not a directory", "pass --overlay"],
        ),
        case(
            "overlay is a file",
            &["--overlay", &format!("{yaml}/kustomization.yaml")],
            good,
            2,
            &["is not a directory", "pass --overlay"],
        ),
        case(
            "no kustomization",
            &["--overlay", &empty],
            good,
            2,
            &["has no kustomization.yaml", "pass --overlay with a kustomize overlay folder"],
        ),
        case(
            "two kustomizations",
            &["--overlay", &several],
            good,
            2,
            &["several kustomization files", "keep only one"],
        ),
        case(
            "invalid YAML",
            &["--overlay", &yaml],
            good,
            2,
            &["bad-yaml/kustomization.yaml line", "is not valid YAML", "Fix the syntax"],
        ),
        case(
            "not a mapping",
            &["--overlay", &list],
            good,
            2,
            &["list/kustomization.yaml", "the document is not a mapping"],
        ),
        case(
            "images a mapping",
            &["--overlay", &mapping],
            good,
            2,
            &[
                "images-mapping/kustomization.yaml line 5",
                "images: is not a list",
                "a list of `- name: …` entries",
            ],
        ),
        case(
            "images a flow list",
            &["--overlay", &flow_list],
            good,
            2,
            &["images: is a flow list", "write it as a block list"],
        ),
        case(
            "entry in flow style",
            &["--overlay", &flow_entry],
            good,
            2,
            &["the entry for statuspage-web is written in flow style", "one key per line"],
        ),
        case(
            "images key quoted",
            &["--overlay", &quoted_key],
            good,
            2,
            &["the images: key is not a plain top-level key", "at the start of a line"],
        ),
        case(
            "base missing",
            &["--overlay", &broken],
            good,
            2,
            &["kustomize build of", "missing-resource (patched) failed", "Nothing was written"],
        ),
    ]
}

fn flag_cases(production: &str, folder: &str) -> Vec<Case> {
    let good = release().to_string();
    let mut migrate = release();
    migrate["images"]["migrate"] = migrate["images"]["web"].clone();
    migrate["images"]["migrate"]["repository"] = json!(format!("{REGISTRY}/statuspage-migrate"));
    let migrate = migrate.to_string();
    let on = |extra: &[&str]| {
        let mut args = vec!["--overlay", production];
        args.extend_from_slice(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let mut cases = vec![
        case(
            "--image-name without '='",
            &["--image-name", "web"],
            &good,
            2,
            &["--image-name value \"web\"", "COMPONENT=NAME"],
        ),
        case(
            "--image-name without component",
            &["--image-name", "=x"],
            &good,
            2,
            &["--image-name value \"=x\"", "COMPONENT=NAME"],
        ),
        case(
            "--image-name unknown component",
            &["--image-name", "wbe=x"],
            &good,
            2,
            &["--image-name value \"wbe=x\"", "no component \"wbe\"", "fix the component name"],
        ),
        case(
            "--image-name twice the same",
            &["--image-name", "web=same,worker=same"],
            &good,
            2,
            &["--image-name", "already uses the image name same", "give each its own"],
        ),
        case(
            "component the overlay does not know",
            &[],
            &migrate,
            2,
            &["no workload runs release image migrate", "statuspage-migrate", "Nothing was written"],
        ),
        case(
            "component the overlay does not know, --check",
            &["--check"],
            &migrate,
            1,
            &["no workload runs release image migrate", "Run statuspage-patch and look at the render"],
        ),
        case(
            "--check finds drift",
            &["--check"],
            &good,
            1,
            &[
                "production/kustomization.yaml line",
                "is not at the release",
                "statuspage-web is",
                "without --check",
            ],
        ),
        case(
            "kustomize missing",
            &["--kustomize", "/nonexistent/kustomize"],
            &good,
            2,
            &["cannot run /nonexistent/kustomize", "pass --kustomize PATH", "Nothing was written"],
        ),
        case(
            "--dry-run with --check",
            &["--dry-run", "--check"],
            &good,
            2,
            &["--dry-run", "--check", "cannot be used with"],
        ),
        case(
            "--release missing",
            &["--release", "/nonexistent/release.json"],
            "",
            2,
            &["cannot read release document /nonexistent/release.json", "pass --release"],
        ),
        case("--release a folder", &["--release", folder], "", 2, &["cannot read release document", folder]),
        case("unknown flag", &["--no-such-flag"], &good, 2, &["--no-such-flag"]),
    ];
    for c in &mut cases {
        c.args = on(&c.args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    cases.push(case("no --overlay", &[], &good, 2, &["--overlay <OVERLAY>", "required"]));
    cases.push(Case {
        name: "STATUSPAGE_OVERLAY missing".into(),
        args: vec![],
        env: vec![("STATUSPAGE_OVERLAY".into(), "/nonexistent/env-overlay".into())],
        stdin: good.clone(),
        code: 2,
        needles: vec!["overlay /nonexistent/env-overlay is not a directory".into()],
    });
    cases
}

#[test]
fn bad_input_exits_with_the_contract_code_names_the_thing_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    copy_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/app"), &app);
    let production = app.join("overlays/production").to_str().unwrap().to_string();
    let good = release().to_string();
    let mut cases: Vec<Case> = bad_release_documents(&release())
        .into_iter()
        .map(|d| Case {
            name: format!("document: {}", d.name),
            args: vec!["--overlay".into(), production.clone()],
            env: vec![],
            stdin: d.text,
            code: 2,
            needles: d.needles.iter().map(|n| n.to_string()).collect(),
        })
        .collect();
    cases.extend(overlay_cases(&app, &good));
    cases.extend(flag_cases(&production, dir.path().to_str().unwrap()));
    assert!(cases.len() >= 30, "at least 30 bad inputs, found {}", cases.len());
    let before = snapshot(&app);
    for c in &cases {
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = c.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (code, out, err) = run_binary("statuspage-patch", &args, &env, &c.stdin);
        assert_eq!(code, c.code, "{}: exit {code}\n{err}", c.name);
        assert!(out.is_empty(), "{}: nothing on stdout: {out}", c.name);
        for needle in &c.needles {
            assert!(err.contains(needle.as_str()), "{}: the message lacks {needle:?}:\n{err}", c.name);
        }
        assert_one_error_line(&c.name, &err);
        assert_eq!(snapshot(&app), before, "{}: a file under manifests/app changed", c.name);
    }
    // The same release patches the production overlay: the cases failed for their own reason.
    let (code, out, err) = run_binary("statuspage-patch", &["--overlay", &production], &[], &good);
    assert_eq!((code, out.as_str()), (0, good.as_str()), "{err}");
}

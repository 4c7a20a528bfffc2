//! The real `images/Dockerfile`, built by statuspage-build from the fixture source tree
//! (tests/fixtures/statuspage-src) FROM the stack's stand-in base, then each image started on the
//! stack's engine against the stack's PostgreSQL and Redis (TLS): it answers its liveness probe,
//! and it exits 78 naming the setting when a required one is missing.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use statuspage_build_images::run;
use statuspage_integration_tests::{build_config, stack, unique};

const SHA: &str = "5151515151515151515151515151515151515151";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn env(key: &str) -> String {
    std::env::var(key)
        .unwrap_or_else(|_| panic!("stack not running: run tests/stack/up.sh ({key} is not set)"))
}

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().expect("the docker CLI (tests/tools/install.sh)");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text.trim().to_string())
}

/// `docker run` arguments for the stack's data services, with every required setting but `skip`.
fn settings(skip: &str) -> Vec<String> {
    let secrets = PathBuf::from(env("STACK_DATA_SECRETS"));
    let read = |key: &str| std::fs::read_to_string(secrets.join(key)).unwrap().trim().to_string();
    let address = env("STACK_DATA_ADDRESS");
    let values = [
        ("SECRET_KEY", "images-test-secret-key-0123456789-0123456789-0123456789-abcdef".to_string()),
        ("ALLOWED_HOSTS", "*".into()),
        ("SITE_URL", "http://statuspage.local".into()),
        ("DATABASE_HOST", address.clone()),
        ("DATABASE_NAME", "statuspage".into()),
        ("DATABASE_USER", "statuspage".into()),
        ("DATABASE_PASSWORD", read("DATABASE_PASSWORD")),
        ("DATABASE_SSLMODE", "verify-full".into()),
        ("DATABASE_SSLROOTCERT", "/ca/ca.crt".into()),
        ("REDIS_HOST", address),
        ("REDIS_PASSWORD", read("REDIS_PASSWORD")),
        ("REDIS_SSL", "true".into()),
        ("SSL_CERT_FILE", "/ca/ca.crt".into()),
    ];
    let mut args = vec!["-v".to_string(), format!("{}:/ca/ca.crt:ro", env("STACK_CA_CERT"))];
    for (key, value) in values.into_iter().filter(|(key, _)| *key != skip) {
        args.extend(["-e".to_string(), format!("{key}={value}")]);
    }
    args
}

/// GET `url` until it answers 200 (or 60 s pass); the last status and body.
fn get_until_ok(url: &str) -> (String, String) {
    let mut last = (String::new(), String::new());
    for _ in 0..120 {
        let out = Command::new("curl")
            .args(["-s", "--max-time", "2", "-w", "\n%{http_code}", url])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, status) = text.rsplit_once('\n').unwrap_or(("", ""));
        last = (status.to_string(), body.to_string());
        if status == "200" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    last
}

#[tokio::test]
async fn the_real_dockerfile_builds_three_images_that_answer_liveness_and_exit_78_without_a_setting() {
    let s = stack();
    let prefix = unique("images-it");
    let targets: Vec<String> =
        ["web", "worker", "scheduler"].iter().map(|t| format!("{t}={prefix}/statuspage-{t}")).collect();
    let mut config = build_config(&repo().join("images"), &targets, SHA);
    config.source = Some(repo().join("tests/fixtures/statuspage-src"));
    config.build_args = [("BASE_IMAGE".to_string(), env("STACK_BASE_IMAGE"))].into();
    let outcome = run(&config, Arc::new(|_| {})).await.unwrap();
    assert_eq!(outcome.targets.len(), 3);
    let web_layers = &outcome.targets[0].layers;
    for built in &outcome.targets {
        let shared = web_layers.len().min(built.layers.len());
        assert_eq!(built.layers, web_layers[..shared], "{} shares every layer with web", built.target);
        println!("{}: {} MB", built.target, built.size / 1_000_000);
    }
    assert!(
        outcome.targets[0].size < 300_000_000,
        "web is {} bytes (goal < 300 MB)",
        outcome.targets[0].size
    );

    for (target, port) in [("web", 8000), ("worker", 9100), ("scheduler", 9100)] {
        let image = format!("{}/{prefix}/statuspage-{target}:{SHA}", s.registry);
        let name = unique(&format!("images-it-{target}"));
        let mut args =
            vec!["run".to_string(), "-d".into(), "--name".into(), name.clone(), "--read-only".into()];
        args.extend(["--tmpfs".into(), "/tmp".into()]);
        args.extend(settings(""));
        args.push(image.clone());
        let (ok, out) = docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(ok, "docker run {image}: {out}");
        let (_, ip) = docker(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &name]);
        let (status, body) = get_until_ok(&format!("http://{ip}:{port}/-/healthz"));
        let (_, logs) = docker(&["logs", &name]);
        docker(&["rm", "-f", &name]);
        assert_eq!((status.as_str(), body.trim()), ("200", "ok"), "{target} liveness; logs:\n{logs}");

        let mut args = vec!["run".to_string(), "--rm".into()];
        args.extend(settings("SECRET_KEY"));
        args.push(image);
        let out = Command::new("docker").args(&args).output().unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(78), "{target} without SECRET_KEY: {text}");
        assert!(text.contains("SECRET_KEY") && text.trim_start().starts_with('{'), "{target}: {text}");
    }
}

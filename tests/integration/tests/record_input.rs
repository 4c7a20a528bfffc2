//! Bad input to statuspage-record (issue 13): exit 2, one message naming the flag, variable,
//! file, field or value and the fix, no `caused by:` line repeating it, the token never printed,
//! and nothing changed: GitHub is a local server that counts every connection (none may arrive:
//! each bad input is refused before a request is sent), and the overlay `finish` would write back
//! is byte for byte the same.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};
use statuspage_integration_tests::{assert_one_error_line, bad_release_documents, run_binary};

const SHA: &str = "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d";
const TOKEN: &str = "ghs_statuspageRecordInputToken0123456789";

fn release() -> Value {
    let image = |component: &str| {
        json!({"repository": format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/statuspage-{component}"),
               "tag": SHA, "digest": format!("sha256:{}", "b".repeat(64)), "built": true})
    };
    json!({"version": 1, "commit": SHA, "images": {"web": image("web"), "worker": image("worker")}})
}

/// A server that answers 500 to anything and counts the connections it accepted.
fn counting_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut buffer = [0u8; 65536];
            let _ = stream.read(&mut buffer);
            let _ = write!(
                stream,
                "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, count)
}

struct Case {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: String,
    needles: Vec<String>,
}

fn case<S: AsRef<str>>(name: &str, args: &[S], env: &[(&str, &str)], stdin: &str, needles: &[&str]) -> Case {
    Case {
        name: name.into(),
        args: args.iter().map(|a| a.as_ref().to_string()).collect(),
        env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        stdin: stdin.into(),
        needles: needles.iter().map(|n| n.to_string()).collect(),
    }
}

fn cases(overlay: &str, report: &str) -> Vec<Case> {
    let good = release().to_string();
    let own = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<String>>();
    let start = |extra: &[&str]| [own(&["start", "--environment", "production"]), own(extra)].concat();
    let finish = |extra: &[&str]| [own(&["finish", "--environment", "production"]), own(extra)].concat();
    let mut cases: Vec<Case> = bad_release_documents(&release())
        .into_iter()
        .filter(|d| {
            ["empty", "array", "short commit", "skipped image, malformed digest", "unknown field"]
                .contains(&d.name)
        })
        .flat_map(|d| {
            [("start", start(&[])), ("finish", finish(&[]))].map(|(command, args)| Case {
                name: format!("{command}, document: {}", d.name),
                args,
                env: vec![],
                stdin: d.text.clone(),
                needles: d.needles.iter().map(|n| n.to_string()).collect(),
            })
        })
        .collect();
    cases.extend([
        case("no subcommand", &own(&[]), &[], &good, &["Usage", "start", "finish"]),
        case("start without --environment", &own(&["start"]), &[], &good, &["--environment <ENVIRONMENT>"]),
        case(
            "start with a blank --environment",
            &own(&["start", "--environment", " "]),
            &[],
            &good,
            &["--environment", "name is empty", "e.g. production"],
        ),
        case(
            "finish with an empty STATUSPAGE_ENVIRONMENT",
            &own(&["finish", "--result", "deployed"]),
            &[("STATUSPAGE_ENVIRONMENT", "")],
            &good,
            &["name is empty", "environment variable STATUSPAGE_ENVIRONMENT"],
        ),
        case(
            "repository empty",
            &start(&[]),
            &[("GITHUB_REPOSITORY", "")],
            &good,
            &["GITHUB_REPOSITORY \"\"", "owner/name"],
        ),
        case(
            "repository without owner",
            &start(&[]),
            &[("GITHUB_REPOSITORY", "status")],
            &good,
            &["GITHUB_REPOSITORY \"status\"", "owner/name"],
        ),
        case(
            "repository with a path",
            &start(&[]),
            &[("GITHUB_REPOSITORY", "a/b/c")],
            &good,
            &["GITHUB_REPOSITORY \"a/b/c\""],
        ),
        case(
            "no token",
            &start(&[]),
            &[("GITHUB_TOKEN", "")],
            &good,
            &["GITHUB_TOKEN", "pass the job's token"],
        ),
        case(
            "rate-limit wait",
            &start(&["--rate-limit-wait", "5x"]),
            &[],
            &good,
            &["--rate-limit-wait \"5x\"", "90s, 5m or 1h"],
        ),
        case(
            "release file missing",
            &start(&["--release", "/nonexistent/release.json"]),
            &[],
            "",
            &["cannot read release document /nonexistent/release.json", "pass --release"],
        ),
        case(
            "production flag",
            &start(&["--production-environment", "maybe"]),
            &[],
            &good,
            &["--production-environment", "maybe"],
        ),
        case(
            "finish result",
            &finish(&["--result", "exploded"]),
            &[],
            &good,
            &["--result \"exploded\"", "deployed, rolled-back, failed or stopped"],
        ),
        case(
            "API URL not a URL",
            &start(&[]),
            &[("GITHUB_API_URL", "not-a-url")],
            &good,
            &["GITHUB_API_URL \"not-a-url\"", "absolute http(s) URL"],
        ),
        case(
            "server URL without a host",
            &start(&[]),
            &[("GITHUB_SERVER_URL", "https://")],
            &good,
            &["GITHUB_SERVER_URL \"https://\"", "absolute http(s) URL"],
        ),
        case(
            "deployment id",
            &finish(&["--deployment-id", "abc"]),
            &[],
            &good,
            &["--deployment-id \"abc\"", "the number statuspage-record start printed"],
        ),
        case(
            "write-back mode",
            &finish(&["--write-back", "sideways"]),
            &[],
            &good,
            &["--write-back \"sideways\"", "commit, pull-request or off"],
        ),
        case(
            "write-back without overlay",
            &["finish", "--environment", "production", "--result", "deployed"],
            &[],
            &good,
            &["--overlay", "or --write-back off"],
        ),
        case(
            "overlay missing",
            &finish(&["--overlay", "/nonexistent/overlay"]),
            &[],
            &good,
            &["overlay /nonexistent/overlay is not a directory"],
        ),
        case(
            "image name",
            &finish(&["--overlay", overlay, "--image-name", "web"]),
            &[],
            &good,
            &["--image-name \"web\"", "COMPONENT=NAME"],
        ),
        case(
            "image name unknown component",
            &finish(&["--overlay", overlay, "--image-name", "wbe=x"]),
            &[],
            &good,
            &["no component \"wbe\""],
        ),
        case(
            "rollout report not JSON",
            &finish(&["--rollout-report", report]),
            &[],
            &good,
            &[report, "not JSON"],
        ),
        case(
            "write-back attempts",
            &finish(&["--write-back-attempts", "x"]),
            &[],
            &good,
            &["--write-back-attempts", "'x'"],
        ),
    ]);
    cases
}

#[test]
fn bad_input_exits_2_names_the_thing_sends_nothing_and_writes_nothing() {
    let (url, requests) = counting_server();
    let dir = tempfile::tempdir().unwrap();
    let overlay = dir.path().join("overlay");
    std::fs::create_dir_all(&overlay).unwrap();
    let kustomization = overlay.join("kustomization.yaml");
    std::fs::write(&kustomization, "resources: []\nimages:\n  - name: statuspage-web\n    newTag: x\n")
        .unwrap();
    let report = dir.path().join("report.json");
    std::fs::write(&report, "result: deployed\n").unwrap();
    let before = std::fs::read(&kustomization).unwrap();
    let cases = cases(overlay.to_str().unwrap(), report.to_str().unwrap());
    assert!(cases.len() >= 20, "at least 20 bad inputs, found {}", cases.len());
    for c in &cases {
        let mut env: Vec<(&str, &str)> = vec![
            ("GITHUB_TOKEN", TOKEN),
            ("GITHUB_API_URL", url.as_str()),
            ("GITHUB_REPOSITORY", "octo-org/status"),
            ("GITHUB_SHA", SHA),
        ];
        for (key, value) in &c.env {
            env.retain(|(k, _)| k != key);
            env.push((key.as_str(), value.as_str()));
        }
        let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
        let (code, out, err) = run_binary("statuspage-record", &args, &env, &c.stdin);
        assert_eq!(code, 2, "{}: exit {code}\n{err}", c.name);
        assert!(out.is_empty(), "{}: nothing on stdout: {out}", c.name);
        for needle in &c.needles {
            assert!(err.contains(needle.as_str()), "{}: the message lacks {needle:?}:\n{err}", c.name);
        }
        // Without a subcommand clap prints the help (which lists both) instead of an error line.
        if c.name != "no subcommand" {
            assert_one_error_line(&c.name, &err);
        }
        assert!(!err.contains(TOKEN), "{}: the token was printed", c.name);
        assert_eq!(requests.load(Ordering::SeqCst), 0, "{}: a request reached GitHub", c.name);
    }
    assert_eq!(std::fs::read(&kustomization).unwrap(), before, "the overlay was not written");
}

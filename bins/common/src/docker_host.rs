//! `DOCKER_HOST`, read once and checked the same way by every binary that talks to an engine.

/// Schemes a Docker Engine address may use (Docker CLI reference, "Environment variables").
pub const SCHEMES: &[&str] = &["unix://", "tcp://", "http://", "https://", "npipe://", "ssh://"];

/// The engine address: `DOCKER_HOST`, or the default socket.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
}

/// Why `host` cannot be an engine address and what to use instead, or `None` when its scheme is
/// one of [`SCHEMES`]: a configuration error (exit 2), not an unreachable engine. The caller names
/// `DOCKER_HOST` and the value.
pub fn problem(host: &str) -> Option<String> {
    (!SCHEMES.iter().any(|s| host.starts_with(s))).then(|| {
        format!(
            "not an engine address: set DOCKER_HOST to unix:///path/to/docker.sock or tcp://host:port ({}), or unset it for the default socket",
            SCHEMES.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_engine_schemes_pass() {
        assert!(problem("unix:///tmp/x.sock").is_none());
        assert!(problem("tcp://127.0.0.1:2375").is_none());
        let text = problem("bogus://x").unwrap();
        assert!(text.starts_with("not an engine address") && text.contains("unix://"), "{text}");
        assert!(problem("/var/run/docker.sock").is_some());
    }
}

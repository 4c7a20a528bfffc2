//! URL checks for values read from the environment before any request is made.

/// True when `value` is an absolute `http` or `https` URL with a non-empty host (RFC 3986), the
/// shape `GITHUB_API_URL` and the SDKs' `AWS_ENDPOINT_URL*` must have.
pub fn is_absolute_http(value: &str) -> bool {
    value.parse::<http::Uri>().is_ok_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some_and(|h| !h.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_absolute_http_urls_with_a_host_pass() {
        for good in
            ["https://api.github.com", "http://127.0.0.1:5000", "https://ecr.us-east-1.amazonaws.com/"]
        {
            assert!(is_absolute_http(good), "{good}");
        }
        for bad in ["not-a-url", "api.github.com", "/api/v3", "ftp://host", "https://", "", "http://:80"] {
            assert!(!is_absolute_http(bad), "{bad}");
        }
    }
}

//! GitHub's REST API as this step uses it: endpoints from the runner's standard variables, one
//! request path with bounded retries and rate-limit waits, errors that name the permission, and
//! a transcript of every request (never the token).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::RecordError;

/// Where GitHub is and what this run is, from `GITHUB_API_URL`, `GITHUB_SERVER_URL`,
/// `GITHUB_REPOSITORY`, `GITHUB_RUN_ID` and `GITHUB_SHA` (so GitHub Enterprise Server works too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// REST API base, e.g. `https://api.github.com`, without a trailing slash.
    pub api_url: String,
    /// Web base, e.g. `https://github.com`, without a trailing slash.
    pub server_url: String,
    /// `owner/name`.
    pub repository: String,
    /// The workflow run, for `log_url`; none outside Actions.
    pub run_id: Option<String>,
}

impl Endpoints {
    /// This run's page, the deployment's `log_url`.
    pub fn run_url(&self) -> Option<String> {
        self.run_id.as_ref().map(|id| format!("{}/{}/actions/runs/{id}", self.server_url, self.repository))
    }

    /// `/repos/owner/name` followed by `rest`.
    pub fn repo_path(&self, rest: &str) -> String {
        format!("/repos/{}{rest}", self.repository)
    }
}

/// One request as sent (and, in a dry run, as it would be sent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApiRequest {
    /// `GET`, `POST`, `PATCH`, `PUT`.
    pub method: &'static str,
    /// Path below the API base, with query.
    pub path: String,
    /// JSON body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// One answer.
#[derive(Debug, Clone, Default)]
pub struct ApiResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers that matter here, lowercase names (`retry-after`, `x-ratelimit-*`).
    pub headers: BTreeMap<String, String>,
    /// The body text.
    pub body: String,
}

/// A request and the status it got, for the transcript.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exchange {
    /// The request.
    #[serde(flatten)]
    pub request: ApiRequest,
    /// The status; 0 when the request never got an answer.
    pub status: u16,
    /// The start of the answer when it was not a success (GitHub's message), for diagnosis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
}

/// Sends requests. The real one is [`OctocrabTransport`]; tests and `--dry-run` use others.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// Send one request; `Err` is a transport failure (no HTTP answer).
    async fn send(&self, request: &ApiRequest) -> Result<ApiResponse, String>;
}

/// The real transport: octocrab's client (its raw request methods; the bodies are our models).
pub struct OctocrabTransport {
    client: octocrab::Octocrab,
}

impl OctocrabTransport {
    /// A client for `api_url` authenticating with `token`. GitHub accepts `application/json` as
    /// well as its vendor type; mocks of its OpenAPI description accept only the former.
    pub fn new(api_url: &str, token: &str) -> Result<Self, RecordError> {
        let bad = |e: String| RecordError::BadInput {
            what: format!("GITHUB_API_URL {api_url:?}"),
            fix: format!("give the API base, e.g. https://api.github.com ({e})"),
        };
        let client = octocrab::Octocrab::builder()
            .base_uri(api_url)
            .map_err(|e| bad(e.to_string()))?
            .personal_token(token.to_string())
            .add_header(http::header::ACCEPT, "application/json".to_string())
            .add_header(http::HeaderName::from_static("x-github-api-version"), "2022-11-28".to_string())
            .add_retry_config(octocrab::service::middleware::retry::RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(30)))
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self { client })
    }
}

#[async_trait::async_trait]
impl Transport for OctocrabTransport {
    async fn send(&self, request: &ApiRequest) -> Result<ApiResponse, String> {
        let uri = request.path.as_str();
        let body = request.body.as_ref();
        let result = match request.method {
            "GET" => self.client._get(uri).await,
            "POST" => self.client._post(uri, body).await,
            "PATCH" => self.client._patch(uri, body).await,
            "PUT" => self.client._put(uri, body).await,
            other => return Err(format!("method {other} not supported")),
        };
        let response = result.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter(|(name, _)| {
                let n = name.as_str();
                n == "retry-after" || n.starts_with("x-ratelimit-")
            })
            .filter_map(|(name, value)| Some((name.as_str().to_string(), value.to_str().ok()?.to_string())))
            .collect();
        let body = self.client.body_to_string(response).await.map_err(|e| e.to_string())?;
        Ok(ApiResponse { status, headers, body })
    }
}

/// `--dry-run`: sends nothing, prints each request, and answers with placeholders shaped like
/// GitHub's answers so the whole sequence can be shown.
pub struct DryRunTransport {
    /// The commit the branch is assumed to be at (so the plan shows the direct commit).
    pub head: String,
}

#[async_trait::async_trait]
impl Transport for DryRunTransport {
    async fn send(&self, request: &ApiRequest) -> Result<ApiResponse, String> {
        let body = request.body.as_ref().map(|b| format!(" {b}")).unwrap_or_default();
        println!("would send: {} {}{body}", request.method, request.path);
        let path = request.path.as_str();
        let answer = if path.ends_with("/deployments") {
            serde_json::json!({"id": 0})
        } else if path.contains("/git/ref/") {
            serde_json::json!({"object": {"sha": self.head}})
        } else if path.contains("/git/commits/") {
            serde_json::json!({"tree": {"sha": "<tree of the branch head>"}})
        } else if path.ends_with("/git/trees") {
            serde_json::json!({"sha": "<new tree>"})
        } else if path.ends_with("/git/commits") {
            serde_json::json!({"sha": "<new commit>", "html_url": "<new commit>"})
        } else if path.contains("/branches/") {
            serde_json::json!({"protected": false})
        } else if path.ends_with("/pulls") {
            serde_json::json!({"number": 0, "html_url": "<new pull request>"})
        } else {
            serde_json::json!({})
        };
        Ok(ApiResponse { status: 200, headers: BTreeMap::new(), body: answer.to_string() })
    }
}

/// How long to keep trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts for 5xx and transport failures.
    pub attempts: u32,
    /// First backoff; doubled each time.
    pub backoff: Duration,
    /// The longest total wait for rate limits (primary and secondary).
    pub rate_limit_bound: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 3, backoff: Duration::from_secs(2), rate_limit_bound: Duration::from_secs(300) }
    }
}

/// What a request is for, so an error can say what failed and which permission it needs.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    /// "create a deployment", …
    pub what: &'static str,
    /// The `permissions:` entry it needs, e.g. `deployments: write`.
    pub permission: &'static str,
}

/// A refusal the caller may handle (409, 422): status and GitHub's message.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// HTTP status.
    pub status: u16,
    /// `message` plus `errors[]`, as one line.
    pub message: String,
}

/// What [`Api::judge`] makes of one answer.
enum Judged {
    /// The request's result.
    Answer(Result<Result<Value, Refusal>, RecordError>),
    /// A rate limit: wait this long, then try again.
    RateLimited(Duration),
    /// A 5xx (`status message`): retried with backoff.
    ServerError(String),
}

/// The API client: requests with retries, rate-limit waits and error mapping; a transcript.
pub struct Api {
    transport: Box<dyn Transport>,
    endpoints: Endpoints,
    policy: RetryPolicy,
    transcript: Mutex<Vec<Exchange>>,
    waits: Mutex<Vec<Duration>>,
}

/// GitHub's `message` and `errors`, as one line.
fn github_message(body: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(body) else {
        return body.chars().take(200).collect();
    };
    let mut text = value.get("message").and_then(Value::as_str).unwrap_or("").to_string();
    if let Some(errors) = value.get("errors").and_then(Value::as_array) {
        let details: Vec<String> = errors
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => other
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| other.to_string()),
            })
            .collect();
        if !details.is_empty() {
            text.push_str(&format!(" ({})", details.join("; ")));
        }
    }
    text
}

/// How long a rate-limited answer asks us to wait, or `None` when the answer is no rate limit.
/// `now` is the Unix time in seconds (for `x-ratelimit-reset`).
pub fn rate_limit_wait(response: &ApiResponse, now: i64) -> Option<Duration> {
    if response.status != 403 && response.status != 429 {
        return None;
    }
    if let Some(seconds) = response.headers.get("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
        return Some(Duration::from_secs(seconds));
    }
    let exhausted = response.headers.get("x-ratelimit-remaining").is_some_and(|v| v.trim() == "0");
    if exhausted
        && let Some(reset) =
            response.headers.get("x-ratelimit-reset").and_then(|v| v.trim().parse::<i64>().ok())
    {
        return Some(Duration::from_secs(u64::try_from(reset - now).unwrap_or(0) + 1));
    }
    // A secondary rate limit without headers: GitHub says wait at least a minute.
    let message = github_message(&response.body).to_lowercase();
    if response.status == 429 || message.contains("rate limit") {
        return Some(Duration::from_secs(60));
    }
    None
}

impl Api {
    /// A client over `transport`.
    pub fn new(transport: Box<dyn Transport>, endpoints: Endpoints, policy: RetryPolicy) -> Self {
        Self {
            transport,
            endpoints,
            policy,
            transcript: Mutex::new(Vec::new()),
            waits: Mutex::new(Vec::new()),
        }
    }

    /// Where requests go.
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// Every request sent so far, in order, with its status.
    pub fn transcript(&self) -> Vec<Exchange> {
        self.transcript.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Every rate-limit and backoff wait so far.
    pub fn waits(&self) -> Vec<Duration> {
        self.waits.lock().map(|w| w.clone()).unwrap_or_default()
    }

    fn note(&self, request: &ApiRequest, status: u16, answer: Option<String>) {
        if let Ok(mut t) = self.transcript.lock() {
            t.push(Exchange { request: request.clone(), status, answer });
        }
    }

    async fn wait(&self, duration: Duration) {
        if let Ok(mut w) = self.waits.lock() {
            w.push(duration);
        }
        tokio::time::sleep(duration).await;
    }

    /// Send `method path body` for `op`. 2xx: the JSON answer. 409 and 422: `Ok(Err(refusal))`
    /// for the caller to handle. Rate limits are waited out within the bound; 5xx and
    /// transport failures are retried with backoff; the rest become errors naming what to fix.
    pub async fn request(
        &self,
        op: Operation,
        method: &'static str,
        path: String,
        body: Option<Value>,
    ) -> Result<Result<Value, Refusal>, RecordError> {
        let request = ApiRequest { method, path, body };
        let mut failures = 0u32;
        let mut rate_limited = Duration::ZERO;
        let mut backoff = self.policy.backoff;
        loop {
            // (what failed, as the retry line and the final error say it)
            let (retry, last) = match self.transport.send(&request).await {
                Err(message) => {
                    self.note(&request, 0, Some(message.clone()));
                    (format!("{method} {} failed ({message})", request.path), message)
                }
                Ok(response) => {
                    let failed = !(200..300).contains(&response.status);
                    self.note(
                        &request,
                        response.status,
                        failed.then(|| response.body.chars().take(2000).collect()),
                    );
                    match self.judge(&op, &response) {
                        Judged::Answer(answer) => return answer,
                        Judged::RateLimited(wait) => {
                            if rate_limited + wait > self.policy.rate_limit_bound {
                                return Err(RecordError::RateLimited {
                                    operation: op.what.to_string(),
                                    wait_seconds: wait.as_secs(),
                                    bound_seconds: self.policy.rate_limit_bound.as_secs(),
                                });
                            }
                            eprintln!(
                                "GitHub: rate limited ({}); waiting {}s before trying to {} again",
                                response.status,
                                wait.as_secs(),
                                op.what
                            );
                            rate_limited += wait;
                            self.wait(wait).await;
                            continue;
                        }
                        Judged::ServerError(last) => {
                            (format!("{} when trying to {}", response.status, op.what), last)
                        }
                    }
                }
            };
            failures += 1;
            if failures >= self.policy.attempts {
                return Err(RecordError::Unavailable {
                    operation: op.what.to_string(),
                    attempts: failures,
                    last,
                });
            }
            eprintln!("GitHub: {retry}; retrying in {}s", backoff.as_secs());
            self.wait(backoff).await;
            backoff *= 2;
        }
    }

    /// What one answer means for `op`: a result, a rate limit to wait out, or a server error to
    /// retry (`status message`).
    fn judge(&self, op: &Operation, response: &ApiResponse) -> Judged {
        let status = response.status;
        if (200..300).contains(&status) {
            if response.body.trim().is_empty() {
                return Judged::Answer(Ok(Ok(Value::Null)));
            }
            return Judged::Answer(serde_json::from_str(&response.body).map(Ok).map_err(|e| {
                RecordError::Unexpected {
                    operation: op.what.to_string(),
                    what: format!("the answer is not JSON: {e}"),
                }
            }));
        }
        if let Some(wait) = rate_limit_wait(response, chrono::Utc::now().timestamp()) {
            return Judged::RateLimited(wait);
        }
        let message = github_message(&response.body);
        let operation = op.what.to_string();
        let repository = self.endpoints.repository.clone();
        Judged::Answer(match status {
            401 => Err(RecordError::Unauthorized { operation }),
            403 => Err(RecordError::Forbidden { operation, repository, permission: op.permission, message }),
            404 => Err(RecordError::NotFound { operation, repository, permission: op.permission }),
            409 | 422 => Ok(Err(Refusal { status, message })),
            500..=599 => return Judged::ServerError(format!("{status} {message}")),
            _ => Err(RecordError::Rejected { operation, status, message }),
        })
    }

    /// [`Api::request`] where a 409 or 422 is an error too.
    pub async fn call(
        &self,
        op: Operation,
        method: &'static str,
        path: String,
        body: Option<Value>,
    ) -> Result<Value, RecordError> {
        self.request(op, method, path, body).await?.map_err(|refusal| RecordError::Rejected {
            operation: op.what.to_string(),
            status: refusal.status,
            message: refusal.message,
        })
    }
}

/// A string field of an answer, or an error naming it.
pub fn field<'a>(value: &'a Value, pointer: &str, op: Operation) -> Result<&'a str, RecordError> {
    value.pointer(pointer).and_then(Value::as_str).ok_or_else(|| RecordError::Unexpected {
        operation: op.what.to_string(),
        what: format!("no {pointer} in the answer"),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Arc;

    /// One scripted answer: status, headers, body.
    pub(crate) type Scripted<'a> = (u16, Vec<(&'a str, String)>, Value);

    /// A transport answering from a script, recording what it was sent.
    #[derive(Clone)]
    pub(crate) struct Fake {
        answers: Arc<Mutex<std::collections::VecDeque<ApiResponse>>>,
        sent: Arc<Mutex<Vec<ApiRequest>>>,
    }

    impl Fake {
        pub(crate) fn new(answers: Vec<(u16, Value)>) -> Self {
            Self::with_headers(answers.into_iter().map(|(s, b)| (s, vec![], b)).collect())
        }

        pub(crate) fn with_headers(answers: Vec<Scripted<'_>>) -> Self {
            let answers = answers
                .into_iter()
                .map(|(status, headers, body)| ApiResponse {
                    status,
                    headers: headers.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
                    body: body.to_string(),
                })
                .collect();
            Self { answers: Arc::new(Mutex::new(answers)), sent: Arc::new(Mutex::new(Vec::new())) }
        }

        pub(crate) fn sent(&self) -> Vec<ApiRequest> {
            self.sent.lock().unwrap().clone()
        }
    }

    #[async_trait::async_trait]
    impl Transport for Fake {
        async fn send(&self, request: &ApiRequest) -> Result<ApiResponse, String> {
            self.sent.lock().unwrap().push(request.clone());
            self.answers
                .lock()
                .unwrap()
                .pop_front()
                .ok_or_else(|| format!("unexpected request {}", request.path))
        }
    }

    pub(crate) fn api_over(fake: &Fake) -> Api {
        let endpoints = Endpoints {
            api_url: "https://api.github.com".into(),
            server_url: "https://github.com".into(),
            repository: "o/r".into(),
            run_id: Some("9".into()),
        };
        Api::new(Box::new(fake.clone()), endpoints, RetryPolicy { attempts: 3, ..RetryPolicy::default() })
    }

    const OP: Operation = Operation { what: "create a deployment", permission: "deployments: write" };

    async fn create(api: &Api) -> Result<Value, RecordError> {
        api.call(OP, "POST", "/repos/o/r/deployments".into(), Some(serde_json::json!({"ref": "main"}))).await
    }

    #[tokio::test(start_paused = true)]
    async fn primary_rate_limit_waits_until_the_reset() {
        let reset = (chrono::Utc::now().timestamp() + 30).to_string();
        let fake = Fake::with_headers(vec![
            (
                403,
                vec![("x-ratelimit-remaining", "0".into()), ("x-ratelimit-reset", reset)],
                serde_json::json!({"message": "API rate limit exceeded for installation ID 1."}),
            ),
            (201, vec![], serde_json::json!({"id": 5})),
        ]);
        let api = api_over(&fake);
        assert_eq!(create(&api).await.unwrap()["id"], 5);
        let waits = api.waits();
        assert_eq!(waits.len(), 1);
        assert!((29..=32).contains(&waits[0].as_secs()), "{waits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn secondary_rate_limit_honours_retry_after() {
        let fake = Fake::with_headers(vec![
            (
                403,
                vec![("retry-after", "45".into())],
                serde_json::json!({"message": "You have exceeded a secondary rate limit."}),
            ),
            (429, vec![], serde_json::json!({"message": "secondary rate limit"})),
            (201, vec![], serde_json::json!({"id": 5})),
        ]);
        let api = api_over(&fake);
        create(&api).await.unwrap();
        assert_eq!(api.waits(), [Duration::from_secs(45), Duration::from_secs(60)]);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limit_beyond_the_bound_is_an_outage() {
        let fake = Fake::with_headers(vec![(
            429,
            vec![("retry-after", "3600".into())],
            serde_json::json!({"message": "You have exceeded a secondary rate limit."}),
        )]);
        let api = api_over(&fake);
        let err = create(&api).await.unwrap_err();
        assert!(err.is_outage(), "{err}");
        assert!(err.to_string().contains("3600s") && err.to_string().contains("300s"), "{err}");
        assert!(api.waits().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn forbidden_names_the_permission() {
        let fake = Fake::new(vec![(
            403,
            serde_json::json!({"message": "Resource not accessible by integration", "documentation_url": "https://docs.github.com/rest"}),
        )]);
        let api = api_over(&fake);
        let err = create(&api).await.unwrap_err().to_string();
        assert!(
            err.contains("`deployments: write`") && err.contains("o/r") && err.contains("permissions:"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn not_found_names_the_repository() {
        let fake = Fake::new(vec![(404, serde_json::json!({"message": "Not Found"}))]);
        let err = create(&api_over(&fake)).await.unwrap_err().to_string();
        assert!(err.contains("repository o/r does not exist") && err.contains("GITHUB_REPOSITORY"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn unauthorized_says_which_token() {
        let fake = Fake::new(vec![(401, serde_json::json!({"message": "Bad credentials"}))]);
        let err = create(&api_over(&fake)).await.unwrap_err().to_string();
        assert!(err.contains("401") && err.contains("github.token"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn server_errors_are_retried_then_reported_as_an_outage() {
        let fake = Fake::new(vec![
            (502, serde_json::json!({"message": "Server Error"})),
            (503, serde_json::json!({"message": "Unavailable"})),
            (500, serde_json::json!({"message": "Server Error"})),
        ]);
        let api = api_over(&fake);
        let err = create(&api).await.unwrap_err();
        assert!(err.is_outage() && err.to_string().contains("after 3 attempts"), "{err}");
        assert_eq!(api.waits(), [Duration::from_secs(2), Duration::from_secs(4)]);
    }

    #[test]
    fn not_every_403_is_a_rate_limit() {
        let plain = ApiResponse {
            status: 403,
            body: r#"{"message":"Resource not accessible by integration"}"#.into(),
            ..Default::default()
        };
        assert_eq!(rate_limit_wait(&plain, 0), None);
    }
}
